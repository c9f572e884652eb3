"""What a PEM does to a base model, in the one shape every type folds into: `Edits`.

All four PEM types fold exactly into the base weights (docs/architecture.md, the
algebra). An `Edits` holds additive deltas per parameter (LoRA's s·B·A, a sparse τ) and
scalings per Linear (IA³'s l, RED's s and β). `fold` turns it into *patched tensors*: new values for only
the parameters it touches, so serving a composition costs no more than the base model.

Stacking order for mixed compositions (documented, and the same everywhere):
additive deltas first, then multiplicative scalings, RED's shift last:

    W' = diag(out_scale) · (W + ΣΔW) · diag(in_scale)
    b' = out_scale ⊙ (b + Σ Δb) + out_shift
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch

Layout = Literal["out_in", "in_out"]  # nn.Linear stores (out, in); GPT-2's Conv1D stores (in, out)


@dataclass(frozen=True)
class LowRankDelta:
    """scale · B @ A, transposed for Conv1D layouts; never materialised until folded."""

    B: torch.Tensor
    A: torch.Tensor
    scale: float
    layout: Layout = "out_in"

    def add_to(self, weight: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """weight + delta, written to `out` when given (which may be `weight` itself)."""
        B = self.B.to(weight.device, weight.dtype)
        A = self.A.to(weight.device, weight.dtype)
        left, right = (A.T, B.T) if self.layout == "in_out" else (B, A)
        if out is None:
            return torch.addmm(weight, left, right, alpha=self.scale)
        if out is weight:
            return out.addmm_(left, right, alpha=self.scale)
        return torch.addmm(weight, left, right, alpha=self.scale, out=out)

    @property
    def nbytes(self) -> int:
        return self.A.nbytes + self.B.nbytes


@dataclass(frozen=True)
class SparseDelta:
    """Values at flat indices of a parameter: a LoTA mask's task vector, or any sparse τ."""

    indices: torch.Tensor
    values: torch.Tensor

    def add_to(self, weight: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """weight + delta, written to `out` when given (which may be `weight` itself)."""
        if out is None:
            out = weight.clone()
        elif out is not weight:
            out.copy_(weight)
        flat = out.view(-1)
        flat.index_add_(0, self.indices.to(weight.device), self.values.to(weight.device, weight.dtype))
        return out

    @property
    def nbytes(self) -> int:
        return self.indices.nbytes + self.values.nbytes


Delta = LowRankDelta | SparseDelta


@dataclass(frozen=True)
class Scaling:
    """Per-Linear multiplicative edits: y = out_scale ⊙ (W (in_scale ⊙ x) + b) + out_shift."""

    layout: Layout = "out_in"
    out_scale: torch.Tensor | None = None
    in_scale: torch.Tensor | None = None
    out_shift: torch.Tensor | None = None

    def then(self, later: Scaling) -> Scaling:
        """The scaling equal to applying `self`, then `later`, to the same Linear."""

        def product(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
            if a is None or b is None:
                return a if b is None else b
            return a * b

        shift = self.out_shift
        if shift is not None and later.out_scale is not None:
            shift = shift * later.out_scale
        if later.out_shift is not None:
            shift = later.out_shift if shift is None else shift + later.out_shift
        return Scaling(
            layout=self.layout,
            out_scale=product(self.out_scale, later.out_scale),
            in_scale=product(self.in_scale, later.in_scale),
            out_shift=shift,
        )


@dataclass
class Edits:
    """Additive deltas keyed by parameter name, scalings keyed by Linear module path."""

    deltas: dict[str, list[Delta]] = field(default_factory=dict)
    scalings: dict[str, Scaling] = field(default_factory=dict)

    def then(self, later: Edits) -> Edits:
        """Stack `later` on top of `self` (deltas add up; scalings compose in order)."""
        deltas = {name: list(items) for name, items in self.deltas.items()}
        for name, items in later.deltas.items():
            deltas.setdefault(name, []).extend(items)
        scalings = dict(self.scalings)
        for path, scaling in later.scalings.items():
            scalings[path] = scalings[path].then(scaling) if path in scalings else scaling
        return Edits(deltas, scalings)

    def renamed(self, resolve: Callable[[str], str | None]) -> Edits:
        """The same edits under the model's own parameter names (`resolve` maps a name to
        the model's, or None to keep it), e.g. `encoder.x` for an adapter's `bert.encoder.x`."""

        def param(name: str) -> str:
            return resolve(name) or name

        def path(module_path: str) -> str:
            return param(f"{module_path}.weight").removesuffix(".weight")

        return Edits(
            deltas={param(name): items for name, items in self.deltas.items()},
            scalings={path(p): scaling for p, scaling in self.scalings.items()},
        )

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor the edits hold, under a descriptive name: what a check of the numbers
        reads without folding (LoRA factors stay factors)."""
        named: dict[str, torch.Tensor] = {}
        for name, items in self.deltas.items():
            for index, delta in enumerate(items):
                named |= _tensor_fields(f"{name}[{index}]", delta)
        for path, scaling in self.scalings.items():
            named |= _tensor_fields(path, scaling)
        return named

    @property
    def parameter_names(self) -> set[str]:
        """The base parameters these edits replace (a bias may be new: see `fold`)."""
        names = set(self.deltas)
        for path, scaling in self.scalings.items():
            if scaling.out_scale is not None or scaling.in_scale is not None:
                names.add(f"{path}.weight")
            if scaling.out_scale is not None or scaling.out_shift is not None:
                names.add(f"{path}.bias")
        return names


def fold(
    edits: Edits,
    base: Callable[[str], torch.Tensor | None],
    reuse: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Patched tensors for `edits` on a base whose parameters `base(name)` returns.

    The result holds a new tensor for each parameter the edits touch, on the base
    tensor's device and in its dtype; arithmetic runs in float32 at least. A bias is
    created (as zeros) where a shift needs one and the base Linear has none. Raises
    KeyError naming a parameter the base does not have.

    `reuse` offers spare tensors (from an evicted composition) to write into, by name:
    on a CPU, writing into memory already touched is several times faster than into
    fresh pages, which is most of a cold recompose. They must be referenced nowhere else.
    """
    patched: dict[str, torch.Tensor] = {}
    for name, items in edits.deltas.items():
        tensor = _require(base, name)
        work = tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor
        out = _spare(reuse, name, work)
        for delta in items:
            work = delta.add_to(work, out)
            out = work
        patched[name] = work
    for path, scaling in edits.scalings.items():
        weight_name, bias_name = f"{path}.weight", f"{path}.bias"
        weight = patched.get(weight_name)
        owned = weight is not None
        if weight is None:
            weight = _require(base, weight_name).float()
        out_axis, in_axis = (0, 1) if scaling.layout == "out_in" else (1, 0)
        for vector, axis in ((scaling.out_scale, out_axis), (scaling.in_scale, in_axis)):
            if vector is None:
                continue
            out = weight if owned else _spare(reuse, weight_name, weight)
            weight = (
                torch.mul(weight, _along(vector, axis, weight), out=out)
                if out is not None
                else weight * _along(vector, axis, weight)
            )
            owned = True
        if scaling.out_scale is not None or scaling.in_scale is not None:
            patched[weight_name] = weight
        if scaling.out_scale is None and scaling.out_shift is None:
            continue
        bias = patched.get(bias_name)
        if bias is None:
            bias = base(bias_name)
        if bias is None:
            if scaling.out_shift is None:
                continue
            bias = torch.zeros(weight.shape[out_axis], device=weight.device)
        bias = bias.float()
        if scaling.out_scale is not None:
            bias = bias * scaling.out_scale.to(bias.device)
        if scaling.out_shift is not None:
            bias = bias + scaling.out_shift.to(bias.device)
        patched[bias_name] = bias
    return {name: _like_base(base, name, tensor) for name, tensor in patched.items()}


def _tensor_fields(prefix: str, edit: Delta | Scaling) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{key}": value for key, value in vars(edit).items() if isinstance(value, torch.Tensor)}


def _spare(reuse: Mapping[str, torch.Tensor] | None, name: str, like: torch.Tensor) -> torch.Tensor | None:
    if reuse is None:
        return None
    spare = reuse.get(name)
    if spare is None or spare.shape != like.shape or spare.dtype != like.dtype or spare.device != like.device:
        return None
    return spare


def _require(base: Callable[[str], torch.Tensor | None], name: str) -> torch.Tensor:
    tensor = base(name)
    if tensor is None:
        raise KeyError(name)
    return tensor


def _along(vector: torch.Tensor, axis: int, like: torch.Tensor) -> torch.Tensor:
    shape = [1] * like.dim()
    shape[axis] = -1
    return vector.to(like.device, like.dtype).view(shape)


def _like_base(base: Callable[[str], torch.Tensor | None], name: str, tensor: torch.Tensor) -> torch.Tensor:
    reference = base(name)
    if reference is None:
        reference = base(name.rsplit(".", 1)[0] + ".weight")
    return tensor.to(reference.device, reference.dtype).contiguous()
