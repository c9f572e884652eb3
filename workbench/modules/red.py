"""RED edit vectors: a scaling s and a bias β on each FFN output projection.

The edited output is s ⊙ (W x + b) + β, which folds into diag(s)·W and s⊙b + β (a Linear
without a bias gets one). Delta form (s − 1, β); both modes combine s = 1 + Σ cᵢ(sᵢ − 1)
and β = Σ cᵢβᵢ.

Our format is a folder with `pem_config.json` and `pem_model.safetensors` holding
`<target>.activation_scaling` and `<target>.activation_bias`. The official code's
`delta_vector.pth` (keys `...<target>.delta_vector.activation_scaling`) is imported with
`from_official`, read with weights_only=True.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import torch

from workbench.errors import ModuleFormatError
from workbench.modules.edits import Edits, Scaling
from workbench.modules.heads import OUR_PREFIX, read_head, split_head
from workbench.modules.pem import PEM, Mode
from workbench.modules.tensor_io import ConfigFields, read_safetensors, read_torch_weights, require_file

CONFIG = "pem_config.json"
WEIGHTS = "pem_model.safetensors"
OFFICIAL = "delta_vector.pth"  # the official code's file, imported by `from_official`

# The Linear RED edits, per architecture (from the official code).
RED_TARGETS = {
    "gpt2": r".*mlp\.c_proj",
    "llama": r".*mlp\.down_proj",
    "bert": r".*layer\.\d+\.output\.dense",
    "roberta": r".*layer\.\d+\.output\.dense",
    "t5": r".*DenseReluDense\.wo",
}
CONV1D_MODEL_TYPES = {"gpt2"}


@dataclass(frozen=True)
class RedVector:
    scaling: torch.Tensor  # (out,)
    bias: torch.Tensor  # (out,)


class RedModule(PEM[RedVector]):
    pem_type = "red"
    display_name = "RED"
    description = "a scaling and a bias on each feed-forward block's output projection"
    config_file, weights_file = CONFIG, WEIGHTS
    config_keys = ("base_model_name_or_path", "fan_in_fan_out", "model_type")

    @property
    def vectors(self) -> dict[str, RedVector]:
        """Per target, its scaling and bias (`parts`)."""
        return self.parts

    @classmethod
    def detect(cls, folder: Path) -> bool:
        """Our folder, or one holding only the official code's `delta_vector.pth`."""
        if (folder / CONFIG).is_file():
            return super().detect(folder)
        return (folder / OFFICIAL).is_file()

    @classmethod
    def load(cls, folder: Path) -> Self:
        if not (folder / CONFIG).is_file() and (folder / OFFICIAL).is_file():
            return cls.from_official(folder / OFFICIAL)
        fields = ConfigFields(require_file(folder, CONFIG, "RED"))
        config = fields.data
        for field in ("base_model_name_or_path", "model_type"):
            fields.text(field)
        fields.flag("fan_in_fan_out")
        path = require_file(folder, WEIGHTS, "RED")
        tensors = read_safetensors(path)
        head = read_head(folder, split_head(tensors, OUR_PREFIX))
        own = [key for key in tensors if not key.startswith(OUR_PREFIX)]
        targets = fields.name_list("target_modules") or sorted({k.rsplit(".", 1)[0] for k in own})
        vectors = {}
        for target in targets:
            scaling = tensors.get(f"{target}.activation_scaling")
            bias = tensors.get(f"{target}.activation_bias")
            if scaling is None or bias is None:
                missing = "activation_scaling" if scaling is None else "activation_bias"
                raise ModuleFormatError(f"{path} has no {target}.{missing}, which pem_config.json lists")
            if scaling.shape != bias.shape or scaling.dim() != 1:
                raise ModuleFormatError(
                    f"{path}: {target} has scaling {tuple(scaling.shape)}, bias {tuple(bias.shape)}"
                )
            vectors[target] = RedVector(scaling, bias)
        if not vectors:
            raise ModuleFormatError(f"{path} holds no RED vectors")
        return cls(vectors, config, str(folder), head)

    @classmethod
    def from_official(cls, path: Path, base_model: str | None = None, model_type: str | None = None) -> Self:
        """Import the official code's `delta_vector.pth`; a missing half defaults to no change."""
        parts: dict[str, dict[str, torch.Tensor]] = {}
        for key, tensor in read_torch_weights(path).items():
            match = re.fullmatch(r"(?:base_model\.)?(.+)\.delta_vector\.activation_(scaling|bias|ln\..+)", key)
            if match is None:
                continue
            if match.group(2).startswith("ln"):
                raise ModuleFormatError(f"{path}: RED with a LayerNorm ('ln' layer type) cannot fold into weights")
            parts.setdefault(match.group(1), {})[match.group(2)] = tensor.reshape(-1)
        if not parts:
            raise ModuleFormatError(f"{path} holds no delta_vector.activation_scaling/bias tensors")
        vectors = {}
        for target, pair in parts.items():
            reference = next(iter(pair.values()))
            vectors[target] = RedVector(
                pair.get("scaling", torch.ones_like(reference)), pair.get("bias", torch.zeros_like(reference))
            )
        config = {
            "base_model_name_or_path": base_model,
            "model_type": model_type,
            "fan_in_fan_out": model_type in CONV1D_MODEL_TYPES,
        }
        return cls(vectors, config, str(path))

    def save(self, folder: Path) -> None:
        tensors = {}
        for target, v in self.vectors.items():
            tensors[f"{target}.activation_scaling"] = v.scaling
            tensors[f"{target}.activation_bias"] = v.bias
        config = {"pem_type": self.pem_type, "target_modules": list(self.vectors), **self.config}
        self.write_files(folder, config, tensors)

    @property
    def num_parameters(self) -> int:
        return sum(2 * v.scaling.numel() for v in self.vectors.values())

    def expected_shapes(self) -> dict[str, tuple[int | None, ...]]:
        shapes: dict[str, tuple[int | None, ...]] = {}
        for target, v in self.vectors.items():
            n = v.scaling.numel()
            shapes[f"{target}.weight"] = (None, n) if self.layout == "in_out" else (n, None)
        return shapes

    def edits(self) -> Edits:
        return Edits(
            scalings={
                target: Scaling(layout=self.layout, out_scale=v.scaling, out_shift=v.bias)
                for target, v in self.vectors.items()
            }
        )

    def delta_tensors(self) -> list[torch.Tensor]:
        return [t for v in self.vectors.values() for t in (v.scaling - 1, v.bias)]

    @classmethod
    def combine(cls, terms: Sequence[tuple[float, Self]], mode: Mode) -> Self:
        cls.check_combinable(terms, mode)
        vectors = {}
        for target, present in cls.by_target(terms).items():
            if mode == "naive":  # the ablation: the stored scaling vector scaled, so -1·RED is -s
                scaling = sum(c * v.scaling for c, v in present)
            else:
                scaling = 1 + sum(c * (v.scaling - 1) for c, v in present)
            bias = sum(c * v.bias for c, v in present)
            vectors[target] = RedVector(scaling, bias)
        return cls(vectors, terms[0][1].config)
