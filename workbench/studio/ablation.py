"""The negation ablation (the paper's Table 11): ⊖ against negating every parameter.

The paper's ⊖ negates one LoRA factor (B) and maps (IA)³'s l to 2 − l. Negating every
parameter instead, as if a module were a plain weight vector, gives (−B)(−A) = BA for a
LoRA (the toxic module itself) and −l for (IA)³ (every scaled activation flipped). This
measures both on the zoo's toxic modules, with the toxicity and perplexity the unlearning
cards use, so a reader sees why ⊖ is defined as it is. `naive` mode (modules.pem.MODES)
is the ablation; `python -m workbench zoo ablation` writes the section of docs/zoo-studies.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workbench.catalog.registry import DATA, zoo_adapter_path
from workbench.eval.intervals import mean_with_interval
from workbench.eval.perplexity import perplexity
from workbench.eval.sampling import sample
from workbench.eval.toxicity import ProfanityScorer, summarise
from workbench.runtime import SessionManager
from workbench.studio.cards import PROMPTS
from workbench.studio.sections import Section
from workbench.studio.training import TRAINERS, method_name

PEM_TYPES = ("lora", "ia3")
LAMBDAS = (0.2, 1.0)  # the cards' chosen λ, and a full negation
BEGIN, END = "<!-- negation-ablation: begin -->", "<!-- negation-ablation: end -->"


@dataclass(frozen=True)
class AblationRow:
    pem: str
    setting: str
    toxicity: float
    low: float
    high: float
    toxic_rate: float
    perplexity: float


def settings(lambdas: tuple[float, ...] = LAMBDAS) -> list[tuple[str, str, dict[str, float], str]]:
    """(label, expression, values, mode): the module, then ⊖ and the naive negation at each λ."""
    rows = [("toxic", "toxic", {}, "exact")]
    for lam in lambdas:
        rows.append((f"⊖ −{lam:g}·toxic", "-lam*toxic", {"lam": lam}, "exact"))
        rows.append((f"naive −{lam:g}·toxic (ablation)", "-lam*toxic", {"lam": lam}, "naive"))
    return rows


def measure_ablation(samples: int = 200, seed: int = 0, say: Callable[[str], None] = print,
                     types: tuple[str, ...] = PEM_TYPES, adapter: Callable[[str], Path] = zoo_adapter_path,
                     base: str = "smollm2-135m-instruct") -> list[AblationRow]:  # fmt: skip
    """The base once, then each type's settings: seeded samples from the cards' prompts, scored
    by the offline scorer, and perplexity on the Austen text."""
    manager, scorer = SessionManager(), ProfanityScorer()
    text = (DATA / "austen-perplexity.txt").read_text(encoding="utf-8")

    def measure(pem: str, label: str, expression: str, values: dict[str, float], mode: str) -> AblationRow:
        say(f"{pem}: {label}")
        manager.set_composition("ablation", expression, values, mode)  # type: ignore[arg-type]
        with manager.model_for("ablation") as loaded:
            ppl = perplexity(loaded, text)
            scores = scorer.score([c for _, c in sample(loaded, PROMPTS, samples, seed, max_new_tokens=40)])
        mean = mean_with_interval("toxicity", scores, seed)
        rate = summarise(scorer, scores).toxic_rate
        return AblationRow(pem, label, mean["toxicity"], mean["toxicity_low"], mean["toxicity_high"], rate, ppl)

    rows = []
    for pem in types:
        manager.rebuild("ablation", base, {"toxic": adapter(f"smollm2-toxic-{pem}")})
        if not rows:
            rows.append(measure("base", "base", "", {}, "exact"))
        rows += [measure(pem, *setting) for setting in settings()]
    return rows


def ablation_section(rows: list[AblationRow], samples: int, seconds: float) -> str:
    lines = [
        BEGIN,
        "## Negation ablation (paper Table 11)",
        "",
        "`python -m workbench zoo ablation` (this section only; `zoo study` keeps it).",
        "",
        "The paper's ⊖ negates one LoRA factor (B), and maps (IA)³'s l to 2 − l. Negating every",
        "parameter instead (the workbench's `naive` mode, labelled an ablation in the UI) gives",
        "(−B)(−A) = BA for a LoRA, the toxic module itself, and −l for (IA)³, which flips every",
        "activation it scales. The zoo's toxic modules on SmolLM2-135M-Instruct:",
        f"{samples} seeded samples per setting from the cards' 4 prompts (top-k 50, temperature 1,",
        "40 new tokens, seed 0), scored by the **offline word-based scorer** (alt-profanity-check);",
        "95% bootstrap intervals; perplexity on `assets/data/austen-perplexity.txt`.",
        "",
        "| type | setting | mean toxicity [95% CI] | toxic rate (> 0.8) | perplexity |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        name = method_name(row.pem) if row.pem in TRAINERS else row.pem
        lines.append(f"| {name} | {row.setting} | {row.toxicity:.4f} [{row.low:.4f}, {row.high:.4f}] | "
                     f"{row.toxic_rate:.4f} | {_ppl(row.perplexity)} |")  # fmt: skip
    lines += ["", f"Measured in {seconds:.0f} s on the machine that ran it.", END]
    return "\n".join(lines) + "\n"


def _ppl(value: float) -> str:
    return f"{value:.3f}" if value < 1e6 else f"{value:.3g}"


SECTION = Section(BEGIN, END)


def run_ablation(samples: int, say: Callable[[str], None] = print) -> str:
    start = time.perf_counter()
    rows = measure_ablation(samples, say=say)
    return ablation_section(rows, samples, time.perf_counter() - start)
