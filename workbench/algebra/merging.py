"""Merge methods: which exist, which compositions take them, and the per-parameter ones.

`MERGE_METHODS` is the one list: linear (any composition), the per-parameter merges of
sparse task vectors (TIES, DARE, magnitude pruning, below) and the LoRA merges (KnOTS,
TSV-M, Iso-C, registered in `lora_merges.py`). The per-parameter ones work on one
parameter at a time: `stacked` holds the modules' τ's on dim 0 and
`weights` their coefficients. DARE draws from a generator seeded by the options, so the
same options give the same merge. TIES follows Yadav et al.: trim to the top `density`
by magnitude, elect a sign per entry, and average the weighted values that agree with
it. We elect on the *weighted* values, so a negated term (x − y) votes with the sign it
contributes; PEFT's merge_utils elects before weighting. With equal positive weights
the two agree exactly, which the tests check.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

import torch

from workbench.algebra.lora_merges import LORA_MERGES
from workbench.errors import IncompatibleError, WorkbenchError
from workbench.modules.sparse import weighted, weighted_sum

SPARSE_MERGES = ("ties", "dare_linear", "dare_ties", "magnitude_prune")  # per parameter, sparse task vectors only
MERGE_METHODS = ("linear", *SPARSE_MERGES, *LORA_MERGES)
MAX_SEED = 2**63 - 1

MergeFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class MergeOptions:
    """How the modules combine (linear, or a merge method); part of every cache key."""

    method: str = "linear"
    density: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in MERGE_METHODS:
            raise WorkbenchError(f"unknown merge method {self.method!r}; choose one of {', '.join(MERGE_METHODS)}")
        if isinstance(self.density, bool) or not isinstance(self.density, int | float) or not 0 < self.density <= 1:
            raise WorkbenchError(f"density must be in (0, 1], got {self.density!r}")
        check_seed(self.seed)

    def function(self) -> MergeFn:
        """The per-parameter merge, with its own generator so DARE is reproducible (not for
        the LoRA merges, which work per target on factors: `lora_merges.merge_loras`)."""
        if self.method in LORA_MERGES:
            raise WorkbenchError(f"merge method {self.method} merges LoRA factors, not parameters one by one")
        generator = torch.Generator().manual_seed(self.seed)
        density = self.density
        if self.method == "linear":
            return weighted_sum
        if self.method == "magnitude_prune":
            return lambda stacked, weights: weighted_sum(magnitude_prune(stacked, density), weights)
        if self.method == "ties":
            return lambda stacked, weights: sign_elected_mean(weighted(magnitude_prune(stacked, density), weights))
        if self.method == "dare_linear":
            return lambda stacked, weights: weighted_sum(random_drop(stacked, density, generator), weights)
        return lambda stacked, weights: sign_elected_mean(weighted(random_drop(stacked, density, generator), weights))


def applicable_merges(pem_types: Collection[str]) -> tuple[str, ...]:
    """The merge methods a composition of these PEM types takes: linear always, the
    per-parameter merges when every module is a sparse task vector, the LoRA merges when
    every module is a LoRA. What the UI offers, and what `check_merge` accepts."""
    kinds = set(pem_types)
    if kinds == {"sparse"}:
        return ("linear", *SPARSE_MERGES)
    if kinds == {"lora"}:
        return ("linear", *LORA_MERGES)
    return ("linear",)


def check_merge(method: str, pem_types: Collection[str], mode: str) -> None:
    """Refuse, in one line, a merge method that these PEM types or this mode cannot take."""
    if method in LORA_MERGES and method not in applicable_merges(pem_types):
        kinds = " + ".join(sorted(set(pem_types)))
        raise IncompatibleError(f"merge method {method} merges LoRAs only, but this composition has {kinds} "
                                "modules; use linear")  # fmt: skip
    if method not in applicable_merges(pem_types):
        raise IncompatibleError(f"merge method {method} applies to sparse task vectors only; use linear")
    if method in LORA_MERGES and mode != "exact":
        raise IncompatibleError(f"merge method {method} combines the modules' ΔW itself, so it has no {mode} mode; "
                                "use exact mode")  # fmt: skip


def check_seed(seed: object) -> int:
    """Refuse a seed torch's generators cannot take (they hold 64 bits), in one line."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise WorkbenchError(f"the seed must be a whole number from 0 to 2**63-1 ({MAX_SEED}), got {seed!r}")
    return seed


def magnitude_prune(stacked: torch.Tensor, density: float) -> torch.Tensor:
    """Keep each module's top `density` share of entries by magnitude, zero the rest."""
    if density >= 1.0:
        return stacked
    flat = stacked.reshape(stacked.shape[0], -1)
    k = int(density * flat.shape[1])
    mask = torch.zeros_like(flat)
    if k > 0:
        mask.scatter_(1, flat.abs().topk(k, dim=1).indices, 1.0)
    return (flat * mask).view_as(stacked)


def random_drop(stacked: torch.Tensor, density: float, generator: torch.Generator) -> torch.Tensor:
    """DARE: keep each entry with probability `density` and rescale by 1/density."""
    if density >= 1.0:
        return stacked
    keep = torch.rand(stacked.shape, generator=generator) < density
    return stacked * keep / density


def sign_elected_mean(weighted_stack: torch.Tensor) -> torch.Tensor:
    """TIES' elect-and-merge on already weighted τ's: the mean of entries whose sign
    agrees with the sign of their total (ties go to +)."""
    majority = torch.where(weighted_stack.sum(0) >= 0, 1.0, -1.0)
    agrees = weighted_stack.sign() == majority
    kept = (weighted_stack * agrees).sum(0)
    return kept / agrees.sum(0).clamp(min=1)
