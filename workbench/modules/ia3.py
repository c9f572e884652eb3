"""(IA)³ in PEFT's format: a vector l per target, delta form l − 1.

An output target scales the Linear's output rows (and its bias): diag(l)·W, l⊙b. A
feed-forward target (PEFT's `feedforward_modules`) scales the input columns: W·diag(l),
leaving the bias alone. Both modes combine l = 1 + Σ cᵢ(lᵢ − 1), so negation is 2 − l
(eq. 7) and a weighted negation is 1 − λ(l − 1), as the reference code does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import torch

from workbench.errors import IncompatibleError, ModuleFormatError
from workbench.modules.edits import Edits, Scaling
from workbench.modules.heads import PEFT_PREFIX, read_head, split_head
from workbench.modules.lora import check_peft_fields, matches_targets, peft_base_config
from workbench.modules.pem import PEM, Mode, strip_prefix
from workbench.modules.tensor_io import ConfigFields, read_safetensors, require_file

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"


@dataclass(frozen=True)
class IA3Vector:
    l: torch.Tensor  # flat: (in,) when feedforward, else (out,)  # noqa: E741
    feedforward: bool


class IA3Module(PEM[IA3Vector]):
    pem_type = "ia3"
    display_name = "(IA)³"
    description = "a vector l that rescales each target Linear's outputs (feed-forward targets: its inputs)"
    config_file, weights_file, peft_type = CONFIG, WEIGHTS, "IA3"

    @property
    def vectors(self) -> dict[str, IA3Vector]:
        """Per target, its vector l (`parts`)."""
        return self.parts

    @classmethod
    def load(cls, folder: Path) -> Self:
        fields = ConfigFields(require_file(folder, CONFIG, "(IA)³ adapter"))
        config = fields.data
        check_peft_fields(fields)
        feedforward_modules = fields.targets("feedforward_modules") or []
        path = require_file(folder, WEIGHTS, "(IA)³ adapter")
        vectors = {}
        tensors = read_safetensors(path)
        for key, tensor in tensors.items():
            match = re.fullmatch(r"(.+)\.ia3_l(?:\.[^.]+)?", strip_prefix(key))
            if match is None:
                continue  # a modules_to_save head, read below
            target = match.group(1)
            if not matches_targets(target, config.get("target_modules")):
                raise ModuleFormatError(f"{path}: {target} is not among the config's target_modules")
            feedforward = matches_targets(target, feedforward_modules) if feedforward_modules else False
            expected_ones = 0 if feedforward else 1  # PEFT stores (1, in) or (out, 1)
            if tensor.dim() != 2 or tensor.shape[expected_ones] != 1:
                kind = "feed-forward" if feedforward else "output"
                raise ModuleFormatError(
                    f"{path}: {target} is an {kind} target in the config, but ia3_l has shape {tuple(tensor.shape)}"
                )
            vectors[target] = IA3Vector(tensor.reshape(-1), feedforward)
        if not vectors:
            raise ModuleFormatError(f"{path} holds no ia3_l tensors")
        head = read_head(folder, split_head(tensors, PEFT_PREFIX, config.get("modules_to_save") or []))
        return cls(vectors, config, str(folder), head)

    def save(self, folder: Path) -> None:
        tensors = {
            f"base_model.model.{target}.ia3_l": v.l.reshape(1, -1) if v.feedforward else v.l.reshape(-1, 1)
            for target, v in self.vectors.items()
        }
        config = peft_base_config(self.config) | {
            "peft_type": "IA3",
            "target_modules": list(self.vectors),
            "feedforward_modules": [t for t, v in self.vectors.items() if v.feedforward],
            "init_ia3_weights": True,
            "modules_to_save": self.head.modules if self.head else None,
        }
        self.write_files(folder, config, tensors)

    @property
    def num_parameters(self) -> int:
        return sum(v.l.numel() for v in self.vectors.values())

    def expected_shapes(self) -> dict[str, tuple[int | None, ...]]:
        shapes: dict[str, tuple[int | None, ...]] = {}
        for target, v in self.vectors.items():
            n = v.l.numel()
            out_in = (None, n) if v.feedforward else (n, None)
            shapes[f"{target}.weight"] = out_in[::-1] if self.layout == "in_out" else out_in
        return shapes

    def edits(self) -> Edits:
        scalings = {}
        for target, v in self.vectors.items():
            if v.feedforward:
                scalings[target] = Scaling(layout=self.layout, in_scale=v.l)
            else:
                scalings[target] = Scaling(layout=self.layout, out_scale=v.l)
        return Edits(scalings=scalings)

    def delta_tensors(self) -> list[torch.Tensor]:
        return [v.l - 1 for v in self.vectors.values()]

    @classmethod
    def check_combinable(cls, terms: Sequence[tuple[float, Self]], mode: Mode) -> None:
        super().check_combinable(terms, mode)
        kinds: dict[str, bool] = {}
        for _, module in terms:
            for target, vector in module.vectors.items():
                if kinds.setdefault(target, vector.feedforward) != vector.feedforward:
                    raise IncompatibleError(f"(IA)³ modules disagree on whether {target} is a feed-forward target")

    @classmethod
    def combine(cls, terms: Sequence[tuple[float, Self]], mode: Mode) -> Self:
        cls.check_combinable(terms, mode)
        vectors = {}
        for target, present in cls.by_target(terms).items():
            if mode == "naive":  # the ablation: the stored vector scaled, so -1·(IA)³ is -l
                l = sum(c * v.l for c, v in present)  # noqa: E741
            else:
                l = 1 + sum(c * (v.l - 1) for c, v in present)  # noqa: E741
            vectors[target] = IA3Vector(l, present[0][1].feedforward)
        config = peft_base_config(terms[0][1].config)
        return cls(vectors, config)
