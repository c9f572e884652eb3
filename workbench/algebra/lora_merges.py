"""Merges of LoRAs whose result is again a LoRA: KnOTS, TSV-M and Iso-C, target by target.

PEFT's add_weighted_adapter offers TIES/DARE/magnitude on the factors; mergekit and
FusionBench merge dense weights. These three work in the SVD of the task updates
ΔWᵢ = sᵢ·Bᵢ·Aᵢ, taken on the thin factors (`thin_svd`, never the out×in matrix), and give
back factors B (out×k), A (k×in) at scaling 1, so `LoraModule.save` writes a PEFT LoRA and
the runtime folds it like any other. Each method's docstring gives its formulas and
where the expression's coefficients cᵢ enter.

Per target, a term whose coefficient is 0 is left out (at that point the expression does
not hold it), and so is a module without that target; n counts the terms left. Singular
values at rounding level (`rank_of`) are dropped: their singular vectors are arbitrary.
`density` is the share each method keeps (KnOTS: entries, TSV-M: singular triplets);
Iso-C has none and ignores it, as linear does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from workbench.algebra.thin_svd import rank_of, thin_svd
from workbench.modules.lora import LoraFactor, LoraModule, peft_base_config

if TYPE_CHECKING:  # merging.py imports this file (the method names, merge_loras), so no import back at run time
    from workbench.algebra.merging import MergeOptions

Terms = Sequence[tuple[float, LoraFactor]]  # (cᵢ, factor) of the modules at one target
TargetMerge = Callable[[Terms, "MergeOptions"], LoraFactor]


def knots(terms: Terms, options: MergeOptions) -> LoraFactor:
    """KnOTS-TIES (Stoica et al. 2024, "Model merging with SVD to tie the KnOTS").

    Concatenate the task updates side by side and take one SVD:
        [ΔW₁ … ΔWₙ] = [s₁B₁ … sₙBₙ] · blockdiag(A₁ … Aₙ) = U Σ [V₁ᵀ … Vₙᵀ],
    so ΔWᵢ = U·(ΣVᵢᵀ) exactly: the tasks share the basis U, and ΣVᵢᵀ (k×in, k ≤ Σrᵢ) are
    their coordinates in it. TIES merges the coordinates, entry by entry: keep each task's
    top `density` share of ΣVᵢᵀ by magnitude, weight it by cᵢ, elect a sign per entry from
    the weighted sum, average the weighted entries that agree (`MergeOptions("ties")`, the
    same function as for sparse task vectors). With M that merge, ΔW = U·M, written as the
    LoRA B = U, A = M (M = Σ·V_mergedᵀ: Σ rides on A).

    cᵢ enter as TIES' weights on the aligned coordinates, where the reference code applies
    its scaling coefficients; U and Σ depend on the modules only. TIES runs on ΣVᵢᵀ, not
    Vᵢᵀ (the reference code's default, s_on_V): the trim ranks an entry by what it adds to
    ΔW. The paper's other variant, KnOTS-linear (Σᵢ cᵢ·ΣVᵢᵀ), gives U·Σᵢ cᵢΣVᵢᵀ = Σᵢ cᵢΔWᵢ
    exactly, which is `linear`, so it is not repeated here. density 1 trims nothing (the
    KnOTS code's LLaMA setting, topK 100); its ViT settings use 0.2.
    """
    reference = terms[0][1]
    n, inputs = len(terms), reference.A.shape[1]
    left = torch.cat([f.scale * f.B.double() for _, f in terms], dim=1)
    u, sigma, vh = thin_svd(left, torch.block_diag(*[f.A.double() for _, f in terms]))
    k = rank_of(sigma, (left.shape[0], n * inputs))
    coordinates = (sigma[:k, None] * vh[:k]).reshape(k, n, inputs).transpose(0, 1)  # n × k × in: ΣVᵢᵀ
    weights = torch.tensor([c for c, _ in terms], dtype=torch.float64)
    merged = options.model_copy(update={"method": "ties"}).function()(coordinates, weights)
    return _factor(u[:, :k], merged, reference)


def tsv_m(terms: Terms, options: MergeOptions) -> LoraFactor:
    """TSV-M (Gargiulo et al. 2025, "Task Singular Vectors: Reducing Task Interference in
    Model Merging").

    For each task, ΔWᵢ = cᵢsᵢBᵢAᵢ = Uᵢ Σᵢ Vᵢᵀ (thin SVD); keep its top
    kᵢ = max(1, ⌊density·rᵢ/n⌋) singular triplets. The paper keeps 1/T of each task's
    triplets; a LoRA's ΔWᵢ has only rᵢ nonzero ones, so that is 1/n of rᵢ (density 1), and
    n LoRAs of rank r merge into one of rank about r. Concatenate
        U = [U₁ … Uₙ] (out×K), Σ = blockdiag(Σ₁ … Σₙ), V = [V₁ … Vₙ] (in×K),
    decorrelate by the nearest matrices with orthonormal columns (orthogonal Procrustes):
    U = P S Qᵀ gives U⊥ = P Qᵀ, and the same for V, then ΔW = U⊥ Σ V⊥ᵀ, written as the
    LoRA B = U⊥Σ, A = V⊥ᵀ.

    cᵢ weight ΔWᵢ before its SVD: |cᵢ| scales Σᵢ and its sign rides on Uᵢ. The paper's
    global α (searched on validation in its code, for the merge of the summed task
    vectors) is thus the expression's overall scale: `alpha*(a + b)` is the paper's form.
    """
    reference = terms[0][1]
    shape = (reference.B.shape[0], reference.A.shape[1])
    lefts, sigmas, rights = [], [], []
    for c, factor in terms:
        u, sigma, vh = thin_svd(factor.B, factor.A, c * factor.scale)
        share = max(1, math.floor(options.density * factor.rank / len(terms) + 1e-9))
        kept = min(share, rank_of(sigma, shape))
        lefts.append(u[:, :kept])
        sigmas.append(sigma[:kept])
        rights.append(vh[:kept].T)
    sigma = torch.cat(sigmas)
    if sigma.numel() == 0:
        return _factor(torch.zeros(shape[0], 0), torch.zeros(0, shape[1]), reference)
    u_perp = nearest_orthonormal(torch.cat(lefts, dim=1))
    v_perp = nearest_orthonormal(torch.cat(rights, dim=1))
    return _factor(u_perp * sigma, v_perp.T, reference)


def iso_c(terms: Terms, options: MergeOptions) -> LoraFactor:
    """Iso-C (Marczak et al. 2025, "No Task Left Behind: Isotropic Model Merging with
    Common and Task-Specific Subspaces"), its definition of Δ_ISO-C in §4.

    Task arithmetic first, Δ_TA = Σᵢ cᵢsᵢBᵢAᵢ = U Σ Vᵀ (thin SVD of the stacked factors,
    as exact mode stacks them), then a flat spectrum: every singular value becomes their
    mean, ΔW = σ̄ · Σ_{j≤r} u_j v_jᵀ with σ̄ = (1/r) Σ_{j≤r} σ_j, written as the LoRA
    B = σ̄·U_r, A = V_rᵀ. This keeps the sum of the singular values (the nuclear norm:
    r·σ̄ = Σσ_j) and shrinks the Frobenius norm (√r·σ̄ ≤ ‖Δ_TA‖_F, equal only for a
    spectrum already flat).

    r is the rank of Δ_TA (at most Σrᵢ). The authors' code averages over all min(out, in)
    singular values of a full fine-tune's Δ_TA, all nonzero there; for a sum of LoRAs the
    rest are zero, and averaging over them would shrink σ̄ by r/min(out, in) and add
    arbitrary directions. cᵢ enter in Δ_TA, as in task arithmetic; σ̄ scales with them, so
    the paper's α is the expression's overall scale. `density` does not apply.
    """
    reference = terms[0][1]
    left = torch.cat([c * f.scale * f.B.double() for c, f in terms], dim=1)
    u, sigma, vh = thin_svd(left, torch.cat([f.A.double() for _, f in terms], dim=0))
    r = rank_of(sigma, (reference.B.shape[0], reference.A.shape[1]))
    return _factor(sigma[:r].mean() * u[:, :r] if r else u[:, :0], vh[:r], reference)


LORA_MERGES: dict[str, TargetMerge] = {"knots": knots, "tsv_m": tsv_m, "iso_c": iso_c}


def merge_loras(terms: Sequence[tuple[float, LoraModule]], options: MergeOptions) -> LoraModule:
    """The LoRA `options.method` makes of Σ cᵢ·LoRAᵢ, target by target (see the module
    docstring for which terms take part). Heads are not merged here: a composition's
    heads combine linearly by cᵢ (`combine_heads`), whatever the merge."""
    LoraModule.check_combinable(terms, "exact")
    merge = LORA_MERGES[options.method]
    factors = {}
    for target, every in LoraModule.by_target(terms).items():
        present = [(c, factor) for c, factor in every if c != 0]
        if present:
            factors[target] = merge(present, options)
        else:
            reference = every[0][1]
            factors[target] = _factor(reference.B[:, :0].double(), reference.A[:0].double(), reference)
    return LoraModule(factors, peft_base_config(terms[0][1].config))


def nearest_orthonormal(matrix: torch.Tensor) -> torch.Tensor:
    """P·Qᵀ for matrix = P·S·Qᵀ: the matrix with orthonormal columns nearest to `matrix` in
    Frobenius norm (the orthogonal Procrustes solution; its polar factor)."""
    p, _, qh = torch.linalg.svd(matrix, full_matrices=False)
    return p @ qh


def _factor(B: torch.Tensor, A: torch.Tensor, reference: LoraFactor) -> LoraFactor:
    """B·A as a LoRA factor at scaling 1 in `reference`'s dtype; a ΔW of zero (no rank
    left) as a rank-1 factor of zeros, since a LoRA target needs a rank of at least 1."""
    if B.shape[1] == 0:
        B, A = torch.zeros(B.shape[0], 1), torch.zeros(1, A.shape[1])
    dtype = reference.A.dtype
    return LoraFactor(A.to(dtype).contiguous(), B.to(dtype).contiguous(), 1.0)
