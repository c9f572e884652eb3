"""Rank truncation of a LoRA: the closest rank-R LoRA, for engines that cap the rank.

Exact mode writes Σ cᵢsᵢBᵢAᵢ as one LoRA of rank Σrᵢ, which a serving engine refuses
above its rank cap (vLLM's max_lora_rank). By Eckart–Young, keeping the top R singular
triplets of each target's ΔW = s·B·A gives the rank-R matrix nearest to ΔW in Frobenius
norm, and what it drops is exactly √(Σ dropped σ²): the error is known, not estimated.

ΔW has rank at most r, so its SVD is taken on the thin factors (`thin_svd`: two thin QRs
and the SVD of an r×r core, in float64); the new factors take the input factors' dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from workbench.algebra.compose import Composition, export_label, export_part
from workbench.algebra.thin_svd import thin_svd
from workbench.errors import IncompatibleError, WorkbenchError
from workbench.modules.lora import LoraFactor, LoraModule


@dataclass(frozen=True)
class TruncatedDelta:
    """One target's rank-truncated ΔW as LoRA factors with scaling 1: ΔW_R = B @ A.

    `dropped` is Σ of the dropped σ², `total` is Σ σ² = ‖ΔW‖²_F."""

    B: torch.Tensor  # (out, kept)
    A: torch.Tensor  # (kept, in)
    dropped: float
    total: float

    @property
    def error(self) -> float:
        """‖ΔW − ΔW_R‖_F / ‖ΔW‖_F (0 for a ΔW of zero: nothing was lost)."""
        return math.sqrt(self.dropped / self.total) if self.total > 0 else 0.0


def truncate_delta(B: torch.Tensor, A: torch.Tensor, scale: float, rank: int) -> TruncatedDelta:
    """The best rank-`rank` approximation of ΔW = scale·B·A (B: out×r, A: r×in), with the
    singular values split evenly (√σ each) between the new B and A, so neither factor
    carries the whole scale. A ΔW of rank below `rank` keeps its own rank."""
    if rank < 1:
        raise WorkbenchError(f"a truncation rank must be at least 1, got {rank}")
    u, sigma, vh = thin_svd(B, A, scale)
    kept = min(rank, sigma.numel())
    root = sigma[:kept].sqrt()
    new_B = u[:, :kept] * root
    new_A = root[:, None] * vh[:kept]
    squares = sigma.square()
    return TruncatedDelta(
        B=new_B.to(B.dtype).contiguous(),
        A=new_A.to(A.dtype).contiguous(),
        dropped=float(squares[kept:].sum()),
        total=float(squares.sum()),
    )


@dataclass(frozen=True)
class Truncation:
    """What truncating a LoRA to `rank` cost: per-target and overall relative Frobenius
    errors, ‖ΔW − ΔW_R‖_F / ‖ΔW‖_F, the overall one over all targets taken together."""

    rank: int  # the rank limit asked for
    from_rank: int  # the LoRA's largest rank before
    to_rank: int  # its largest rank after: the limit, or less where no ΔW has a rank that high
    errors: dict[str, float]  # target -> its relative error
    overall: float

    @property
    def truncated(self) -> bool:
        return self.from_rank > self.rank

    @property
    def worst_target(self) -> str:
        return max(self.errors, key=lambda target: self.errors[target]) if self.errors else ""

    @property
    def worst(self) -> float:
        return self.errors[self.worst_target] if self.errors else 0.0

    def summary(self) -> str:
        """One line: what was done and what it cost."""
        if not self.truncated:
            return f"rank {self.from_rank} ≤ {self.rank}: no truncation needed (the adapter is written as composed)"
        return (f"truncated to rank {self.to_rank} (from {self.from_rank}) by SVD: relative Frobenius error "
                f"{self.overall:.4g} overall, worst {self.worst:.4g} at {self.worst_target}")  # fmt: skip


def truncate_lora(module: LoraModule, rank: int) -> tuple[LoraModule, Truncation]:
    """`module` with each target's ΔW cut to at most `rank`, and what that cost.

    A LoRA whose ranks are all ≤ `rank` comes back unchanged. Otherwise every target gets
    scaling 1 (targets of rank ≤ `rank` keep their factors, s folded into B), as in
    `LoraModule.unit_scaled`: PEFT and an engine that reads only r and lora_alpha then
    agree on every target's scaling. Head and config are kept."""
    if rank < 1:
        raise WorkbenchError(f"a truncation rank must be at least 1, got {rank}")
    from_rank = max(factor.rank for factor in module.factors.values())
    if from_rank <= rank:
        return module, Truncation(rank, from_rank, from_rank, {target: 0.0 for target in module.factors}, 0.0)
    factors: dict[str, LoraFactor] = {}
    errors: dict[str, float] = {}
    dropped = total = 0.0
    for target, factor in module.factors.items():
        if factor.rank <= rank:
            unit = factor.unit_scaled()
            cut = TruncatedDelta(unit.B, unit.A, 0.0, _squared_norm(factor))
        else:
            cut = truncate_delta(factor.B, factor.A, factor.scale, rank)
        factors[target] = LoraFactor(cut.A, cut.B, 1.0)
        errors[target] = cut.error
        dropped, total = dropped + cut.dropped, total + cut.total
    overall = math.sqrt(dropped / total) if total > 0 else 0.0
    to_rank = max(factor.rank for factor in factors.values())
    truncation = Truncation(rank, from_rank, to_rank, errors, overall)
    return LoraModule(factors, module.config, module.source, module.head), truncation


def truncated_export(composition: Composition, rank: int) -> tuple[LoraModule, Truncation]:
    """The LoRA `save_composition` would write for `composition`, truncated to `rank`.
    Refuses a composition that is not one LoRA: only a LoRA has a rank to cut."""
    part = export_part(composition)
    if not isinstance(part, LoraModule):
        raise IncompatibleError(f"rank truncation applies to a single LoRA, but this composition exports as "
                                f"{export_label(composition)}; export it without a rank limit")  # fmt: skip
    return truncate_lora(part, rank)


def _squared_norm(factor: LoraFactor) -> float:
    """‖s·B·A‖²_F from the r×r Gram matrices: trace(BᵀB · AAᵀ), never the out×in product."""
    B, A = factor.B.double(), factor.A.double()
    return float(factor.scale**2 * ((B.T @ B) * (A @ A.T)).sum())
