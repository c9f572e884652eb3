"""Presets: the paper's Table 1 settings (and RED and LoTA variants) over zoo modules.

A preset names a zoo base, the zoo adapters it binds (expression name -> zoo adapter),
the expression, the grid and the tasks. The UI's preset menu and `sweep --preset` read
this one table. Modules are named for what they learned (`sentiment_s0`, `topic`,
`toxic`), so an expression and a plot legend read without a key. `guide` is the line the
first screen shows: what to look for, with the paper's table and our measured number
(docs/zoo-studies.md and the modules' cards, on the test splits).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Preset:
    name: str
    setting: str
    base: str
    adapters: dict[str, str]
    expression: str
    grid: str
    tasks: tuple[str, ...]
    values: dict[str, float] = field(default_factory=lambda: {"lam": 0.5})  # where the sliders start
    guide: str = ""
    mode: str | None = None  # the preset's own mode (an ablation's); None keeps the session's


# Test-split numbers from docs/zoo-studies.md (generalization: each half alone, then λ=0.5;
# multi-task: the two-task average at the λ chosen on validation, then the best module alone)
# and the toxic modules' cards (mean toxicity and perplexity, base then negated at λ=0.2).
_GENERALIZATION = {"lora": (0.789, 0.816, 0.821), "ia3": (0.767, 0.794, 0.829),
                   "red": (0.598, 0.777, 0.792), "lota": (0.659, 0.821, 0.808)}  # fmt: skip
_MULTITASK = {"lora": (0.829, 0.657), "ia3": (0.832, 0.754), "red": (0.857, 0.775), "lota": (0.810, 0.704)}
_UNLEARNING = {"lora": (0.055, 0.031, 33.32, 34.25), "ia3": (0.055, 0.041, 33.32, 33.75),
               "red": (0.055, 0.033, 33.32, 34.04)}  # fmt: skip


def _generalization(pem: str) -> Preset:
    s0, s1, merged = _GENERALIZATION[pem]
    guide = (f"Distribution generalization (paper Table 2): two halves of a skewed sentiment set, merged. Look for "
             f"the curve's middle above both ends; ours on test: s0 {s0:.3f}, s1 {s1:.3f}, λ=0.5 {merged:.3f}.")
    return Preset(
        f"distribution-generalization-{pem}", "distribution generalization (θ₁ ⊕ θ₂)", "minilm-l6",
        {"sentiment_s0": f"minilm-sentiment-s0-{pem}", "sentiment_s1": f"minilm-sentiment-s1-{pem}"},
        "lam*sentiment_s0 + (1-lam)*sentiment_s1", "lam=0:1:0.1", ("sentiment-validation",), guide=guide,
    )  # fmt: skip


def _multitask(pem: str) -> Preset:
    merged, alone = _MULTITASK[pem]
    guide = (f"Multi-tasking (paper Table 3): a sentiment module and a topic module, merged. Look for the average "
             f"of both tasks above either module alone; ours on test: merged {merged:.3f}, best alone {alone:.3f}.")
    return Preset(
        f"multi-task-{pem}", "multi-tasking (θ₁ ⊕ θ₂)", "minilm-l6",
        {"sentiment": f"minilm-sentiment-{pem}", "topic": f"minilm-topic-{pem}"},
        "lam*sentiment + (1-lam)*topic", "lam=0:1:0.1", ("sentiment-validation", "topic-validation"), guide=guide,
    )  # fmt: skip


def _unlearning(pem: str, lam: float = 0.2) -> Preset:
    base_tox, negated_tox, base_ppl, negated_ppl = _UNLEARNING[pem]
    guide = (f"Unlearning (paper Table 4): subtract a module trained on toxic text. Look for toxicity below the "
             f"base while perplexity stays within 5%; ours at λ=0.2: toxicity {base_tox:.3f} → {negated_tox:.3f}, "
             f"perplexity {base_ppl:.2f} → {negated_ppl:.2f} (its card: 400 samples, 8,000 characters; the live "
             f"readout measures fewer).")
    return Preset(
        f"unlearning-{pem}", "unlearning (⊖θ)", "smollm2-135m-instruct", {"toxic": f"smollm2-toxic-{pem}"},
        "-lam*toxic", "lam=0:1:0.1", ("toxicity", "austen-perplexity"), {"lam": lam}, guide=guide,
    )  # fmt: skip


def _ablation(pem: str) -> Preset:
    effect = {"lora": "(−B)(−A) = BA, so at λ = 1 it is the toxic module itself",
              "ia3": "l becomes −λ·l, which flips every activation it scales"}[pem]  # fmt: skip
    guide = (f"Ablation (paper Table 11), beside unlearning-{pem}: the naive negation scales every parameter by "
             f"−λ; {effect}. Look for toxicity that does not fall where ⊖ lowers it (our measurements: "
             f"docs/zoo-studies.md, negation ablation). The Toxicity tab's ablation box shows both side by side.")
    return Preset(
        f"unlearning-ablation-{pem}", "negation ablation (naive −θ)", "smollm2-135m-instruct",
        {"toxic": f"smollm2-toxic-{pem}"}, "-lam*toxic", "lam=0:1:0.1", ("toxicity", "austen-perplexity"),
        {"lam": 1.0}, guide=guide, mode="naive",
    )  # fmt: skip


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        *(_generalization(pem) for pem in ("lora", "ia3", "red", "lota")),
        *(_multitask(pem) for pem in ("lora", "ia3", "red", "lota")),
        # sliders start at the λ each module's card chose: perplexity within 5% of the base
        *(_unlearning(pem) for pem in ("lora", "ia3", "red")),
        *(_ablation(pem) for pem in ("lora", "ia3")),
    )
}  # fmt: skip
