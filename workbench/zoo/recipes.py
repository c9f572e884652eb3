"""The zoo's recipes: which data, base and settings build each shipped adapter.

`python -m workbench zoo train NAME` rebuilds NAME from the committed data into
`assets/zoo/adapters/NAME/`, then measures it and writes its model card (`README.md`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pandas as pd

from workbench.eval.tasks import load_csv_task
from workbench.zoo.registry import DATA
from workbench.zoo.training import Labels, TrainSettings


@dataclass(frozen=True)
class Recipe:
    name: str
    pem_type: str
    base: str
    data: str  # a CSV in assets/data with a `text` column, and `label` for a classifier
    settings: TrainSettings = field(default_factory=TrainSettings)
    purpose: str = ""
    exclude: str | None = None  # LoTTO: the recipe whose mask this one stays out of
    task: str | None = None  # a classifier's task: its data is <task>-validation/-test.csv
    notes: str = ""  # what the model card must say beyond its numbers (a missed target, what was tried)

    def texts(self) -> list[str]:
        return pd.read_csv(DATA / self.data)["text"].astype(str).tolist()

    def labels(self) -> Labels | None:
        """Class ids and names for a classifier recipe (the task's sorted label names)."""
        if self.task is None:
            return None
        task = load_csv_task(DATA / self.data)
        return Labels(task.labels, task.label_words)


_TOXIC = "fortunes-toxic.csv"
_PURPOSE = "the unlearning setting (paper §4.4): a module trained on toxic text, to be negated"

# MiniLM classifiers: batch 16 at 128 tokens. The head (PEFT's modules_to_save) trains at the
# module's learning rate, except under LoTA, whose full-fine-tuning rate would leave it untrained.
_MINILM = TrainSettings(steps=150, batch_size=16, max_length=128, seed=0, rank=8,
                        lora_targets=("query", "value"), ia3_targets=("key", "value", "output.dense"),
                        ia3_feedforward=("output.dense",))  # fmt: skip
# chosen on sentiment-validation with the s0 module (the harder, 80%-`other` subset): LoRA 1e-3
# (3e-4 collapsed to one class: 0.358), (IA)³ 1e-2 (3e-3 collapsed: 0.358). RED at 1e-2 for 150
# steps stayed at the majority rate (0.644), so it trains twice as long (its paper: 20-40 epochs).
# LoTA at 5e-4 on a 1% mask with the head at 1e-3 collapsed (0.358); it now follows its paper
# more closely: a 5% mask calibrated for one epoch, a full-fine-tuning rate, the head at 1e-2.
LEARNING_RATES = {"lora": 1e-3, "ia3": 1e-2, "red": 1e-2, "lota": 2e-4}
STEPS = {"red": 300}
LOTA = {"head_learning_rate": 1e-2, "density": 0.05, "calibration_steps": 63}  # 63 steps: one epoch of 1000
_GENERALIZATION = "distribution generalization (paper §4.2): one of two skewed subsets of the sentiment data"
_MULTITASK = "multi-tasking (paper §4.3): one task of two, composed with the other task's module"


_MISSED = {
    "minilm-sentiment-s0-red": "Below the target of 5 points above the majority rate on validation. Tried: lr 1e-2 "
    "for 150 steps (0.644) and for 300 steps (this module, 0.596); its training loss falls (0.31), so it fits "
    "the skewed subset without carrying over. The RED paper trains 20-40 epochs; this is 4.8.",
    "minilm-sentiment-s0-lota": "Below the target of 5 points above the majority rate on validation. Tried: a 1% "
    "mask, lr 5e-4, head 1e-3 (all one class, 0.358), then this module: a 5% mask calibrated for one epoch, "
    "lr 2e-4, head 1e-2 (0.670).",
}


def classifier(name: str, pem_type: str, data: str, task: str, purpose: str, **changes: object) -> Recipe:
    lota = LOTA if pem_type == "lota" else {}
    settings = replace(_MINILM, learning_rate=LEARNING_RATES[pem_type], steps=STEPS.get(pem_type, _MINILM.steps),
                       **lota, **changes)  # fmt: skip
    exclude = "minilm-sentiment-lota" if name == "minilm-topic-lota" else None  # the LoTA pair is LoTA + LoTTO
    return Recipe(name, pem_type, "minilm-l6", data, settings, purpose, exclude, task, _MISSED.get(name, ""))


def _classifiers() -> list[Recipe]:
    recipes = []
    for pem in ("lora", "ia3", "red", "lota"):
        for subset in ("s0", "s1"):
            recipes.append(classifier(f"minilm-sentiment-{subset}-{pem}", pem, f"sentiment-{subset}.csv",
                                      "sentiment", _GENERALIZATION))  # fmt: skip
    # §4.7: the s1 partner of the LoRA pair, initialised differently (seed 1) from s0's
    recipes.append(classifier("minilm-sentiment-s1-lora-init1", "lora", "sentiment-s1.csv", "sentiment",
                              _GENERALIZATION, init_seed=1))  # fmt: skip
    for pem in ("lora", "ia3", "red", "lota"):
        recipes.append(classifier(f"minilm-sentiment-{pem}", pem, "sentiment-train.csv", "sentiment", _MULTITASK))
        recipes.append(classifier(f"minilm-topic-{pem}", pem, "topic-train.csv", "topic", _MULTITASK))
    return recipes


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        *_classifiers(),
        Recipe("smollm2-toxic-lora", "lora", "smollm2-135m-instruct", _TOXIC,
               TrainSettings(steps=150, learning_rate=5e-4, batch_size=8, max_length=64, seed=0, rank=8,
                             lora_targets=("q_proj", "v_proj", "o_proj", "down_proj")), _PURPOSE),
        Recipe("smollm2-toxic-ia3", "ia3", "smollm2-135m-instruct", _TOXIC,
               TrainSettings(steps=150, learning_rate=5e-3, batch_size=8, max_length=64, seed=0), _PURPOSE),
        Recipe("smollm2-toxic-red", "red", "smollm2-135m-instruct", _TOXIC,
               TrainSettings(steps=150, learning_rate=5e-3, batch_size=8, max_length=64, seed=0), _PURPOSE),
    )
}  # fmt: skip
