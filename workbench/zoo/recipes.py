"""The zoo's recipes: which data, base and settings build each shipped adapter.

`python -m workbench zoo train NAME` rebuilds NAME from the committed data into
`assets/zoo/adapters/NAME/`, then measures it and writes its model card (`README.md`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from workbench.zoo.registry import DATA
from workbench.zoo.training import TrainSettings


@dataclass(frozen=True)
class Recipe:
    name: str
    pem_type: str
    base: str
    data: str  # a CSV in assets/data with a `text` column
    settings: TrainSettings = field(default_factory=TrainSettings)
    purpose: str = ""

    def texts(self) -> list[str]:
        return pd.read_csv(DATA / self.data)["text"].astype(str).tolist()


_TOXIC = "fortunes-toxic.csv"
_PURPOSE = "the unlearning setting (paper §4.4): a module trained on toxic text, to be negated"

RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe("smollm2-toxic-lora", "lora", "smollm2-135m-instruct", _TOXIC,
               TrainSettings(steps=150, learning_rate=5e-4, batch_size=8, max_length=64, seed=0, rank=8,
                             lora_targets=("q_proj", "v_proj", "o_proj", "down_proj")), _PURPOSE),
        Recipe("smollm2-toxic-ia3", "ia3", "smollm2-135m-instruct", _TOXIC,
               TrainSettings(steps=150, learning_rate=5e-3, batch_size=8, max_length=64, seed=0), _PURPOSE),
        Recipe("smollm2-toxic-red", "red", "smollm2-135m-instruct", _TOXIC,
               TrainSettings(steps=150, learning_rate=5e-3, batch_size=8, max_length=64, seed=0), _PURPOSE),
    )
}  # fmt: skip
