"""What a PEM does to a base model, in the one shape every type folds into: `Edits`.

All four PEM types fold exactly into the base weights (DESIGN.md). An `Edits` holds
additive deltas per parameter (LoRA's s·B·A, a sparse τ) and scalings per Linear
(IA³'s l, RED's s and β). `fold` turns it into *patched tensors*: new values for only
the parameters it touches, so serving a composition costs no more than the base model.

Stacking order for mixed compositions (documented, and the same everywhere):
additive deltas first, then multiplicative scalings, RED's shift last:

    W' = diag(out_scale) · (W + ΣΔW) · diag(in_scale)
    b' = out_scale ⊙ (b + Σ Δb) + out_shift
"""

from __future__ import annotations

from collections.abc import Callable
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

    def add_to(self, weight: torch.Tensor) -> torch.Tensor:
        B = self.B.to(weight.device, weight.dtype)
        A = self.A.to(weight.device, weight.dtype)
        if self.layout == "in_out":
            return torch.addmm(weight, A.T, B.T, alpha=self.scale)
        return torch.addmm(weight, B, A, alpha=self.scale)

    @property
    def nbytes(self) -> int:
        return self.A.nbytes + self.B.nbytes


@dataclass(frozen=True)
class SparseDelta:
    """Values at flat indices of a parameter: a LoTA mask's task vector, or any sparse τ."""

    indices: torch.Tensor
    values: torch.Tensor

    def add_to(self, weight: torch.Tensor) -> torch.Tensor:
        flat = weight.reshape(-1).clone()
        flat.index_add_(0, self.indices.to(weight.device), self.values.to(weight.device, weight.dtype))
        return flat.view_as(weight)

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


def fold(edits: Edits, base: Callable[[str], torch.Tensor | None]) -> dict[str, torch.Tensor]:
    """Patched tensors for `edits` on a base whose parameters `base(name)` returns.

    The result holds a new tensor for each parameter the edits touch, on the base
    tensor's device and in its dtype; arithmetic runs in float32 at least. A bias is
    created (as zeros) where a shift needs one and the base Linear has none. Raises
    KeyError naming a parameter the base does not have.
    """
    patched: dict[str, torch.Tensor] = {}
    for name, items in edits.deltas.items():
        tensor = _require(base, name)
        work = tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor
        for delta in items:
            work = delta.add_to(work)
        patched[name] = work
    for path, scaling in edits.scalings.items():
        weight_name, bias_name = f"{path}.weight", f"{path}.bias"
        weight = patched.get(weight_name)
        if weight is None:
            weight = _require(base, weight_name).float()
        out_axis, in_axis = (0, 1) if scaling.layout == "out_in" else (1, 0)
        if scaling.out_scale is not None:
            weight = weight * _along(scaling.out_scale, out_axis, weight)
        if scaling.in_scale is not None:
            weight = weight * _along(scaling.in_scale, in_axis, weight)
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
