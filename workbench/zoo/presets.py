"""Presets: the paper's Table 1 settings (and RED and LoTA variants) over zoo modules.

A preset names a zoo base, the zoo adapters it binds (expression name -> zoo adapter),
the expression, the grid and the tasks. The UI's preset menu and `sweep --preset` read
this one table.
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


def _generalization(pem: str) -> Preset:
    return Preset(
        f"distribution-generalization-{pem}", "distribution generalization (θ₁ ⊕ θ₂)", "minilm-l6",
        {"a": f"minilm-sentiment-s0-{pem}", "b": f"minilm-sentiment-s1-{pem}"},
        "lam*a + (1-lam)*b", "lam=0:1:0.1", ("sentiment-validation",),
    )  # fmt: skip


def _multitask(pem: str) -> Preset:
    return Preset(
        f"multi-task-{pem}", "multi-tasking (θ₁ ⊕ θ₂)", "minilm-l6",
        {"a": f"minilm-sentiment-{pem}", "b": f"minilm-topic-{pem}"},
        "lam*a + (1-lam)*b", "lam=0:1:0.1", ("sentiment-validation", "topic-validation"),
    )  # fmt: skip


def _unlearning(pem: str, lam: float = 0.5) -> Preset:
    return Preset(
        f"unlearning-{pem}", "unlearning (⊖θ)", "smollm2-135m-instruct", {"toxic": f"smollm2-toxic-{pem}"},
        "-lam*toxic", "lam=0:1:0.1", ("toxicity", "austen-perplexity"), {"lam": lam},
    )  # fmt: skip


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        *(_generalization(pem) for pem in ("lora", "ia3", "red", "lota")),
        *(_multitask(pem) for pem in ("lora", "ia3", "red", "lota")),
        _unlearning("lora", lam=0.2),  # the λ its model card chose: perplexity within 5% of the base
        *(_unlearning(pem) for pem in ("ia3", "red")),
    )
}  # fmt: skip
