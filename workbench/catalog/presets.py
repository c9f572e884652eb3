"""Presets: the paper's Table 1 settings (and RED and LoTA variants) over zoo modules.

A preset names a zoo base, the zoo adapters it binds (expression name -> zoo adapter),
the expression, the grid and the tasks. The UI's preset menu and `sweep --preset` read
this one table. Modules are named for what they learned (`sentiment_s0`, `topic`,
`toxic`), so an expression and a plot legend read without a key. `guide` is the line the
first screen shows: what to look for, with the paper's table and our measured number
(docs/zoo-studies.md and the modules' cards, on the test splits).
"""

from __future__ import annotations

from dataclasses import field

import pydantic

from workbench.catalog.bases import ZooBaseName
from workbench.modules.pem import Mode


@pydantic.dataclasses.dataclass(frozen=True, config=pydantic.ConfigDict(strict=True))
class Preset:
    """Checked as it is made (pydantic): a preset with a wrong field fails at import, naming it."""

    name: str
    setting: str
    base: ZooBaseName
    adapters: dict[str, str]
    expression: str
    grid: str
    tasks: tuple[str, ...]
    values: dict[str, float] = field(default_factory=lambda: {"lam": 0.5})  # where the sliders start
    guide: str = ""
    mode: Mode | None = None  # the preset's own mode (an ablation's); None keeps the session's


# Test-split numbers from docs/zoo-studies.md (generalization: each half alone, then λ=0.5;
# multi-task: the two-task average at the λ chosen on validation, then the best module alone)
# and the toxic modules' cards (mean toxicity and perplexity, base then negated at the card's λ).
_GENERALIZATION = {"lora": (0.789, 0.816, 0.821), "ia3": (0.767, 0.794, 0.829),
                   "red": (0.703, 0.746, 0.819), "lota": (0.733, 0.830, 0.734)}  # fmt: skip
_MULTITASK = {"lora": (0.829, 0.657), "ia3": (0.832, 0.754), "red": (0.857, 0.775), "lota": (0.810, 0.704)}
_UNLEARNING = {"lora": (0.055, 0.031, 33.32, 34.25), "ia3": (0.055, 0.041, 33.32, 33.75),
               "red": (0.055, 0.033, 33.32, 34.04)}  # fmt: skip
# Where the sliders start: the λ the study chose on validation (multi-task) and the λ each toxic
# module's card chose ("it was **λ = X**"). Typed here, so importing the catalog reads no markdown;
# tests/test_published_numbers.py holds them, and the guides' numbers, to the documents.
_MULTITASK_LAMBDA = {"lora": 0.5, "ia3": 0.5, "red": 0.75, "lota": 0.75}
_UNLEARNING_LAMBDA = {"lora": 0.2, "ia3": 0.2, "red": 0.2}


def _generalization(pem: str) -> Preset:
    s0, s1, merged = _GENERALIZATION[pem]
    look = ("Look for the curve's middle above both ends" if merged > max(s0, s1) else
            "The paper finds the middle above both ends; here it is not")  # fmt: skip
    guide = (f"Distribution generalization (paper Table 2): two halves of a skewed sentiment set, merged. {look}; "
             f"ours on test: s0 {s0:.3f}, s1 {s1:.3f}, λ=0.5 {merged:.3f}.")
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
        "lam*sentiment + (1-lam)*topic", "lam=0:1:0.1", ("sentiment-validation", "topic-validation"),
        {"lam": _MULTITASK_LAMBDA[pem]}, guide=guide,
    )  # fmt: skip


def _unlearning(pem: str) -> Preset:
    base_tox, negated_tox, base_ppl, negated_ppl = _UNLEARNING[pem]
    lam = _UNLEARNING_LAMBDA[pem]
    guide = (f"Unlearning (paper Table 4): subtract a module trained on toxic text. Look for toxicity below the "
             f"base while perplexity stays within 5%; ours at λ={lam:g}: toxicity {base_tox:.3f} → {negated_tox:.3f}, "
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
        *(_unlearning(pem) for pem in ("lora", "ia3", "red")),
        *(_ablation(pem) for pem in ("lora", "ia3")),
    )
}  # fmt: skip


# Detoxifying an instruction model (paper Table 6): test numbers from docs/zoo-studies.md (Detoxification),
# θ_helpful then the composition at the λ chosen on validation: mean toxicity on the held-out toxic
# instructions, and token F1 on the definition questions. tests/test_detox.py holds them to the study.
_DETOX = {"lam": 0.2, "toxicity": (0.086, 0.059), "f1": (0.151, 0.149)}


def _detoxify() -> Preset:
    (helpful_tox, composed_tox), (helpful_f1, composed_f1), lam = _DETOX["toxicity"], _DETOX["f1"], _DETOX["lam"]
    guide = (f"Detoxification (paper Table 6): a helpful instruction module minus λ times what toxic instructions "
             f"added to it. Look for toxicity below θ_helpful's while its definitions stay as good; ours on test at "
             f"λ={lam:g}: toxicity {helpful_tox:.3f} → {composed_tox:.3f}, definition F1 {helpful_f1:.3f} → "
             f"{composed_f1:.3f}, the target missed (docs/zoo-studies.md; the live readout samples the paper's "
             f"prompt without the chat template).")  # fmt: skip
    return Preset(
        "detoxify-lora", "detoxification (θ₁ ⊖ λ·(θ_toxic ⊖ θ₁))", "smollm2-135m-instruct",
        {"helpful": "smollm2-instruct-helpful-lora", "toxic": "smollm2-instruct-toxic-lora"},
        "helpful - lam*(toxic - helpful)", "lam=0:1:0.1", ("toxicity", "austen-perplexity"), {"lam": lam},
        guide=guide,
    )  # fmt: skip


PRESETS |= {preset.name: preset for preset in (_detoxify(),)}


# Domain transfer (paper Table 5): test numbers from docs/zoo-studies.md (Domain transfer), per type: movie-review
# accuracy of the source classifier, the merge at the λ chosen on validation, the plain analogy (μ = 1) and the
# reference trained on the movie labels. tests/test_transfer.py holds them to the study.
_TRANSFER = {"lora": {"lam": 1.0, "source": 0.737, "merge": 0.737, "analogy": 0.706, "target": 0.784},
             "ia3": {"lam": 1.0, "source": 0.733, "merge": 0.733, "analogy": 0.623, "target": 0.801}}  # fmt: skip


def _domain_transfer(pem: str) -> Preset:
    t = _TRANSFER[pem]
    gain = t["merge"] - t["source"]
    verdict = "no gain here" if gain <= 0 else f"{100 * gain:+.1f} points (see the study for its interval)"
    guide = (f"Domain transfer (paper Table 5): a fine-food sentiment classifier moved towards movie reviews by the "
             f"difference of two masked-LM modules, with no movie label. Look for movie accuracy above the source "
             f"classifier's (λ=1); ours on test: source {t['source']:.3f}, merge at the λ validation chose "
             f"(λ={t['lam']:g}) {t['merge']:.3f}, the plain analogy cls + (lm_target − lm_source) {t['analogy']:.3f}, "
             f"a classifier trained on movie labels {t['target']:.3f}: {verdict} (docs/zoo-studies.md).")
    return Preset(
        f"domain-transfer-{pem}", "domain transfer (λ·θ_cls ⊕ (1−λ)·(θ_lm,t ⊖ θ_lm,s))", "minilm-l6",
        {"cls": f"minilm-sentiment-{pem}", "lm_target": f"minilm-movie-lm-{pem}",
         "lm_source": f"minilm-amazon-lm-{pem}"},
        "lam*cls + (1-lam)*(lm_target - lm_source)", "lam=0:1:0.1", ("movie-validation", "sentiment-validation"),
        {"lam": t["lam"]}, guide=guide,
    )  # fmt: skip


PRESETS |= {preset.name: preset for preset in (_domain_transfer(pem) for pem in _TRANSFER)}
