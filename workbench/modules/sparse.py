"""Sparse task vectors: τ per tensor, W + τ. LoTA's output, or any fine-tune's delta.

Our format is a folder with `pem_config.json` (base, shapes, density) and
`pem_model.safetensors` holding `<param>.indices` (flat; int32 where the tensor has fewer
than 2³¹ entries, which halves the file, else int64) and `<param>.values`.
`from_finetuned` builds one from a fine-tuned checkpoint and its base, optionally
keeping only the global top-k of |τ| as LoTA's mask extraction does.

Both modes combine τ = Σ cᵢτᵢ; TIES, DARE and magnitude pruning are options of the
combination (see `workbench.algebra.merging`), applied per parameter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import torch

from workbench.errors import IncompatibleError, ModuleFormatError
from workbench.modules.edits import Edits, SparseDelta
from workbench.modules.heads import OUR_PREFIX, read_head, split_head
from workbench.modules.pem import PEM, Mode
from workbench.modules.tensor_io import ConfigFields, read_safetensors, require_file

CONFIG = "pem_config.json"
WEIGHTS = "pem_model.safetensors"


@dataclass(frozen=True)
class SparseTensor:
    shape: tuple[int, ...]
    indices: torch.Tensor  # flat positions, int64, sorted and unique
    values: torch.Tensor

    def dense(self) -> torch.Tensor:
        flat = torch.zeros(int(torch.Size(self.shape).numel()), dtype=self.values.dtype)
        flat[self.indices] = self.values
        return flat.view(self.shape)

    @staticmethod
    def from_dense(tensor: torch.Tensor) -> SparseTensor:
        flat = tensor.reshape(-1)
        indices = torch.nonzero(flat, as_tuple=True)[0]
        return SparseTensor(tuple(tensor.shape), indices, flat[indices].clone())


def weighted(stacked: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Scale each module's slice of `stacked` (dim 0) by its weight."""
    return stacked * weights.view(-1, *[1] * (stacked.dim() - 1))


def weighted_sum(stacked: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return weighted(stacked, weights).sum(0)


class SparseModule(PEM[SparseTensor]):
    """A sparse task vector. "sparse" is the type; LoTA (lottery ticket adaptation) is the
    method that trains one, so the display name mentions it."""

    pem_type = "sparse"
    display_name = "sparse task vector (LoTA)"
    description = "a sparse delta τ added to chosen entries of the weights (LoTA's, or any fine-tune's)"
    config_file, weights_file = CONFIG, WEIGHTS
    config_keys = ("base_model_name_or_path", "method", "density")
    merge_methods = ("ties", "dare_linear", "dare_ties", "magnitude_prune")

    @property
    def tensors(self) -> dict[str, SparseTensor]:
        """Per parameter, its τ (`parts`)."""
        return self.parts

    @classmethod
    def load(cls, folder: Path) -> Self:
        fields = ConfigFields(require_file(folder, CONFIG, "sparse task vector"))
        shapes = fields.shapes("shapes")
        fields.fraction("density")
        for field in ("base_model_name_or_path", "method"):
            fields.text(field)
        path = require_file(folder, WEIGHTS, "sparse task vector")
        stored = read_safetensors(path, integer_suffix=".indices")
        tensors = {}
        for name, shape in shapes.items():
            indices, values = stored.get(f"{name}.indices"), stored.get(f"{name}.values")
            if indices is None or values is None:
                missing = "indices" if indices is None else "values"
                raise ModuleFormatError(f"{path} has no {name}.{missing}, which pem_config.json lists")
            numel = math.prod(shape)
            if indices.shape != values.shape or indices.dim() != 1 or indices.is_floating_point():
                raise ModuleFormatError(f"{path}: {name} needs 1-D integer indices and values of the same length")
            if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= numel):
                raise ModuleFormatError(f"{path}: {name} has indices outside its shape {tuple(shape)}")
            tensors[name] = SparseTensor(shape, indices.long(), values)
        return cls(tensors, fields.data, str(folder), read_head(folder, split_head(stored, OUR_PREFIX)))

    @classmethod
    def from_finetuned(
        cls,
        finetuned: Callable[[], dict[str, torch.Tensor]],
        base: Callable[[], dict[str, torch.Tensor]],
        density: float | None = None,
        base_model: str | None = None,
    ) -> Self:
        """τ = finetuned − base over the floating tensors both hold; with `density`, keep
        the global top-k of |τ| (k = density · all entries), LoTA's mask extraction."""
        ft_tensors, base_tensors = finetuned(), base()
        deltas = {}
        for name, tensor in ft_tensors.items():
            reference = base_tensors.get(name)
            if reference is None or not tensor.is_floating_point():
                continue
            if reference.shape != tensor.shape:
                raise IncompatibleError(
                    f"{name} is {tuple(tensor.shape)} in the fine-tune, {tuple(reference.shape)} in the base"
                )
            deltas[name] = tensor.float() - reference.float()
        if not deltas:
            raise IncompatibleError("the fine-tuned checkpoint shares no tensors with the base")
        if density is not None:
            if not 0.0 < density <= 1.0:
                raise ModuleFormatError(f"density must be in (0, 1], got {density}")
            magnitudes = torch.cat([d.abs().reshape(-1) for d in deltas.values()])
            k = max(1, int(density * magnitudes.numel()))
            threshold = torch.topk(magnitudes, k, sorted=True).values[-1]
            deltas = {name: torch.where(d.abs() >= threshold, d, torch.zeros_like(d)) for name, d in deltas.items()}
        tensors = {name: SparseTensor.from_dense(d) for name, d in deltas.items()}
        config = {"base_model_name_or_path": base_model, "method": "finetune-delta", "density": density}
        return cls({n: t for n, t in tensors.items() if t.indices.numel()}, config)

    def save(self, folder: Path) -> None:
        stored = {}
        for name, t in self.tensors.items():
            small = math.prod(t.shape) < 2**31
            stored[f"{name}.indices"] = t.indices.to(torch.int32) if small else t.indices
            stored[f"{name}.values"] = t.values
        shapes = {name: list(t.shape) for name, t in self.tensors.items()}
        self.write_files(folder, {"pem_type": self.pem_type, "shapes": shapes, **self.config}, stored)

    @property
    def num_parameters(self) -> int:
        return sum(t.values.numel() for t in self.tensors.values())

    def expected_shapes(self) -> dict[str, tuple[int | None, ...]]:
        return {name: t.shape for name, t in self.tensors.items()}

    def edits(self) -> Edits:
        return Edits(deltas={name: [SparseDelta(t.indices, t.values)] for name, t in self.tensors.items()})

    def delta_tensors(self) -> list[torch.Tensor]:
        return [t.values for t in self.tensors.values()]

    @classmethod
    def combine(cls, terms: Sequence[tuple[float, Self]], mode: Mode) -> Self:
        return cls.merge(terms, weighted_sum)

    @classmethod
    def merge(
        cls,
        terms: Sequence[tuple[float, Self]],
        method: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        config: dict[str, Any] | None = None,
    ) -> Self:
        """Combine per parameter with `method(stacked dense τ's, weights)`; a module without
        a parameter contributes zeros there."""
        tensors = {}
        for name in sorted({n for _, module in terms for n in module.tensors}):
            shapes = {m.tensors[name].shape for _, m in terms if name in m.tensors}
            if len(shapes) > 1:
                raise IncompatibleError(f"sparse task vectors disagree on the shape of {name}: {sorted(shapes)}")
            shape = shapes.pop()
            stacked = torch.stack(
                [m.tensors[name].dense() if name in m.tensors else torch.zeros(shape) for _, m in terms]
            )
            weights = torch.tensor([c for c, _ in terms], dtype=stacked.dtype)
            tensors[name] = SparseTensor.from_dense(method(stacked, weights))
        merged = dict(terms[0][1].config) | (config or {})
        return cls(tensors, merged)
