"""What a training run is told: its settings and, for a classifier, its labels.

These are data, so recipes (the catalog) can name them without importing the trainers
(the studio), which sit at the top of the layers (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import pydantic
from pydantic import Field

Positive = Annotated[int, Field(ge=1)]
Rate = Annotated[float, Field(gt=0, lt=1)]


@pydantic.dataclasses.dataclass(frozen=True, config=pydantic.ConfigDict(strict=True))
class TrainSettings:
    """Checked as it is made (pydantic): a recipe with a bad setting fails at import, naming the field."""

    steps: Positive = 200
    learning_rate: Rate = 1e-3
    batch_size: Positive = 8
    max_length: Positive = 64
    seed: Annotated[int, Field(ge=0)] = 0
    rank: Positive = 8
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    ia3_targets: tuple[str, ...] = ("k_proj", "v_proj", "down_proj")
    ia3_feedforward: tuple[str, ...] = ("down_proj",)
    density: Annotated[float, Field(gt=0, le=1)] = 0.01  # LoTA: share of weights in the mask
    calibration_steps: Positive = 20  # LoTA phase 1
    init_seed: Annotated[int, Field(ge=0)] | None = None  # the PEM's and head's initialisation, if not `seed`
    head_learning_rate: Rate | None = None  # a classifier's head, when it differs from `learning_rate`
    schedule: Literal["constant", "linear"] = "constant"  # linear: warm up, then decay to 0 (RED's GLUE recipe)
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.0  # of the steps, under the linear schedule
    optimiser: Literal["AdamW", "RMSprop"] = "AdamW"  # RMSprop, with PyTorch's defaults: the LoTA paper's

    @property
    def initialisation(self) -> int:
        return self.seed if self.init_seed is None else self.init_seed

    @property
    def warmup_steps(self) -> int:
        return round(self.warmup_ratio * self.steps)

    @property
    def optimisation(self) -> str:
        """The optimiser, its rate and schedule, as a model card states them."""
        if self.schedule == "constant":
            return f"{self.optimiser} lr {self.learning_rate}"
        return f"{self.optimiser} lr {self.learning_rate}, {self.warmup_steps} warmup steps then linear decay to 0"


@dataclass(frozen=True)
class Labels:
    """Classification targets: one class index per text, and the names of the classes."""

    ids: Sequence[int]
    names: tuple[str, ...]
