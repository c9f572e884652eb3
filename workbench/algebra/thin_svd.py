"""The SVD of a low-rank product B·A from its factors, never forming the out×in matrix.

ΔW = s·B·A (B: out×k, A: k×in) has rank at most k, so its SVD comes from two thin QRs and
the SVD of a k×k core: O((out+in)·k²), where the dense SVD costs O(out·in·min(out, in)),
minutes for a 7B model's hundreds of targets. Rank truncation (`truncate.py`) and the
LoRA merges (`lora_merges.py`) both stand on it. The math runs in float64: the factors
are thin, so this is cheap, and a merge's orthogonalisation needs the precision.
"""

from __future__ import annotations

import torch


def thin_svd(B: torch.Tensor, A: torch.Tensor, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(U, σ, Vᵀ) with scale·B·A = U·diag(σ)·Vᵀ, σ descending, in float64; U is out×m and
    Vᵀ is m×in with m = min(k, out, in). Trailing σ may be (numerically) zero: see `rank_of`."""
    q_left, r_left = torch.linalg.qr(B.double())  # B = Q_B R_B
    q_right, r_right = torch.linalg.qr(A.double().T)  # Aᵀ = Q_A R_A
    core = scale * (r_left @ r_right.T)  # ΔW = Q_B · core · Q_Aᵀ
    u, sigma, vh = torch.linalg.svd(core, full_matrices=False)
    return q_left @ u, sigma, vh @ q_right.T


def rank_of(sigma: torch.Tensor, shape: tuple[int, int]) -> int:
    """How many of the descending singular values `sigma` of an out×in matrix are not
    rounding noise: σ > σ_max·max(out, in)·ε (numpy's matrix_rank rule, ε of float64).
    A zero coefficient or a rank-deficient factor leaves such noise, whose singular
    vectors are arbitrary directions a merge must not pick up."""
    if sigma.numel() == 0 or float(sigma[0]) == 0.0:
        return 0
    tolerance = float(sigma[0]) * max(shape) * torch.finfo(torch.float64).eps
    return int((sigma > tolerance).sum())
