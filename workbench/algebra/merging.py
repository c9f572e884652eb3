"""Merge methods: which exist, which compositions take them, and the per-parameter ones.

`MERGE_METHODS` is the one list: linear (any composition), the per-parameter merges of
sparse task vectors (TIES, DARE, magnitude pruning, below) and the LoRA merges (KnOTS,
TSV-M, Iso-C, registered in `lora_merges.py`). Which PEM type takes which is on the type
(`PEM.merge_methods`): a composition takes a method beyond linear when all its modules
are of one type that takes it.

The per-parameter merges work on one parameter at a time: `stacked` holds the modules' τ's
on dim 0 and `weights` their coefficients. They are built from PEFT's (`peft.utils.
merge_utils`: magnitude pruning, majority sign, disjoint merge), with our own code for two
things only:
- DARE's random drop draws from a generator seeded by the options, so the same options
  give the same merge (PEFT draws from torch's global generator);
- TIES (Yadav et al.: trim to the top `density` by magnitude, elect a sign per entry,
  average the weighted values that agree with it) elects on the *weighted* values, so a
  negated term (x − y) votes with the sign it contributes; PEFT's `ties` elects before
  weighting. With equal positive weights the two agree exactly, which the tests check.
  A tie in the vote (a sum of exactly 0) elects +, as in PEFT.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Annotated, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from workbench.algebra.lora_merges import LORA_MERGES, merge_loras
from workbench.errors import IncompatibleError, WorkbenchError, validation_line
from workbench.modules.pem import PEM
from workbench.modules.registry import PEM_TYPES
from workbench.modules.sparse import SparseModule, weighted, weighted_sum

SPARSE_MERGES = ("ties", "dare_linear", "dare_ties", "magnitude_prune")  # per parameter, sparse task vectors only
MERGE_METHODS = ("linear", *SPARSE_MERGES, *LORA_MERGES)
MAX_SEED = 2**63 - 1
Seed = Annotated[int, Field(strict=True, ge=0, le=MAX_SEED)]  # torch's generators hold 64 bits

MergeFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _share(density: object) -> float:
    if isinstance(density, bool) or not isinstance(density, int | float) or not 0 < density <= 1:  # NaN fails too
        raise PydanticCustomError("density", "density must be in (0, 1] (the share each module keeps)")
    return float(density)


class MergeFields(BaseModel):
    """The merge options' fields and their rules, as composition.json holds them."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    method: Literal[MERGE_METHODS] = "linear"  # type: ignore[valid-type]
    density: Annotated[float, PlainValidator(_share)] = 1.0
    seed: Seed = 0


class MergeOptions(MergeFields):
    """How the modules combine (linear, or a merge method); part of every cache key.

    Built as it always was, `MergeOptions("ties", 0.5, seed=3)`; a bad value raises
    WorkbenchError naming the field."""

    def __init__(self, method: str = "linear", density: float = 1.0, seed: int = 0) -> None:
        try:
            super().__init__(method=method, density=density, seed=seed)
        except ValidationError as exc:
            raise WorkbenchError(validation_line(exc, "merge options")) from None

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


def merge_terms(terms: Sequence[tuple[float, PEM]], options: MergeOptions) -> PEM:
    """The one PEM a merge method beyond linear makes of one type's terms; `check_merge`
    has let it through, so the type takes the method."""
    if options.method in LORA_MERGES:
        return merge_loras(terms, options)  # type: ignore[arg-type]
    settings = {"method": options.method, "density": options.density}
    return SparseModule.merge(terms, options.function(), settings)  # type: ignore[arg-type]


def applicable_merges(pem_types: Collection[str]) -> tuple[str, ...]:
    """The merge methods a composition of these PEM types takes: linear always, and those
    its type takes (`PEM.merge_methods`) when every module is of that one type. What the
    UI offers, and what `check_merge` accepts."""
    kinds = set(pem_types)
    return ("linear", *PEM_TYPES[kinds.pop()].merge_methods) if len(kinds) == 1 else ("linear",)


def check_merge(method: str, pem_types: Collection[str], mode: str) -> None:
    """Refuse, in one line, a merge method that these PEM types or this mode cannot take."""
    if method not in applicable_merges(pem_types):
        kinds = " + ".join(sorted(set(pem_types)))
        takes = "merges LoRAs" if method in LORA_MERGES else "applies to sparse task vectors"
        raise IncompatibleError(f"merge method {method} {takes} only, but this composition has {kinds} modules; "
                                "use linear")  # fmt: skip
    if method in LORA_MERGES and mode != "exact":
        raise IncompatibleError(f"merge method {method} combines the modules' ΔW itself, so it has no {mode} mode; "
                                "use exact mode")  # fmt: skip


_SEED = TypeAdapter(Seed)


def check_seed(seed: object) -> int:
    """Refuse a seed torch's generators cannot take (`Seed`), in one line."""
    try:
        return _SEED.validate_python(seed)
    except ValidationError:
        raise WorkbenchError(f"the seed must be a whole number from 0 to 2**63-1 ({MAX_SEED}), got {seed!r}") from None


def magnitude_prune(stacked: torch.Tensor, density: float) -> torch.Tensor:
    """Keep each module's top `density` share of entries by magnitude, zero the rest (PEFT's
    pruning, module by module; density 1 returns `stacked` itself, without PEFT's warning)."""
    from peft.utils.merge_utils import magnitude_based_pruning  # importing PEFT takes seconds: only when merging

    if density >= 1.0:
        return stacked
    return torch.stack([magnitude_based_pruning(tensor, density) for tensor in stacked])


def random_drop(stacked: torch.Tensor, density: float, generator: torch.Generator) -> torch.Tensor:
    """DARE: keep each entry with probability `density` and rescale by 1/density."""
    if density >= 1.0:
        return stacked
    keep = torch.rand(stacked.shape, generator=generator) < density
    return stacked * keep / density


def sign_elected_mean(weighted_stack: torch.Tensor) -> torch.Tensor:
    """TIES' elect-and-merge on already weighted τ's: the mean of the entries whose sign
    agrees with the sign of their total (PEFT's majority sign, "total", and disjoint merge)."""
    from peft.utils.merge_utils import calculate_majority_sign_mask, disjoint_merge

    return disjoint_merge(weighted_stack, calculate_majority_sign_mask(weighted_stack, method="total"))
