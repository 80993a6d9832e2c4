"""Weighted low-rank factorization by alternating ridge least squares, unrolled.

For X (d, n), weights W >= 0 (zero at unobserved entries) and ridge rho > 0, alternating
least squares minimizes

    sum_ij W_ij (X_ij - U_i . V_j)^2 + rho (||U||^2 + ||V||^2)

one block at a time, each block in closed form (Hastie, Mazumder, Lee & Zadeh, "Matrix
Completion and Low-Rank SVD via Fast Alternating Least Squares", JMLR 2015, eq. 4):

    U_i = (sum_j W_ij V_j V_j^T + rho I)^{-1} sum_j W_ij X_ij V_j
    V_j = (sum_i W_ij U_i U_i^T + rho I)^{-1} sum_i W_ij X_ij U_i

The (r, r) systems of all rows (then all columns) are solved as one batch. Each step is a
differentiable tensor expression, so a fixed number of steps is a differentiable map
X -> (U, V): the real-valued counterpart of the unrolled NMF of :mod:`.nmf`. The start
is the truncated SVD of X (unobserved entries filled with their row's observed mean),
computed without gradient.
"""

from __future__ import annotations

import torch

__all__ = ["alternating_least_squares", "svd_initialization"]


def svd_initialization(x: torch.Tensor, rank: int, mask: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """U S^(1/2), S^(1/2) V^T of the rank-``rank`` truncated SVD of ``x`` (d, n), with
    unobserved entries replaced by their row's observed mean; no gradient."""
    with torch.no_grad():
        filled = x.detach()
        if mask is not None:
            counts = mask.sum(-1, keepdim=True).clamp_min(1)
            means = torch.where(mask, filled, 0.0).sum(-1, keepdim=True) / counts
            filled = torch.where(mask, filled, means)
        left, singular, right = torch.linalg.svd(filled, full_matrices=False)
        root = singular[:rank].sqrt()
        return left[:, :rank] * root, root[:, None] * right[:rank]


def alternating_least_squares(x: torch.Tensor, rank: int, *,
                              weight: torch.Tensor | None = None, ridge: float = 1e-3,
                              iterations: int = 10,
                              init: tuple[torch.Tensor, torch.Tensor] | None = None
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank-``rank`` factors of ``x`` (d, n) by ``iterations`` ALS sweeps (U then V).

    Args:
        x: (d, n) floating matrix, finite where ``weight`` > 0 (elsewhere ignored; write 0
            there, NaN would spread through the products).
        rank: r >= 1.
        weight: (d, n) nonnegative entry weights (0 = unobserved); default all ones.
        ridge: rho > 0 (keeps every system invertible, also for rows with < r entries).
        iterations: number of sweeps.
        init: (U (d, r), V (r, n)); default :func:`svd_initialization` (only V is used).

    Returns:
        (U, V), differentiable w.r.t. ``x`` and ``weight`` through the unrolled sweeps.
    """
    d, n = x.shape
    if weight is None:
        weight = torch.ones_like(x)
    if init is None:
        init = svd_initialization(x, rank, weight > 0)
    u, v = init
    identity = ridge * torch.eye(rank, dtype=x.dtype, device=x.device)
    weighted = weight * x
    for _ in range(iterations):
        gram = torch.einsum("ij,aj,bj->iab", weight, v, v) + identity      # (d, r, r)
        u = torch.linalg.solve(gram, (weighted @ v.T).unsqueeze(-1)).squeeze(-1)
        gram = torch.einsum("ij,ia,ib->jab", weight, u, u) + identity      # (n, r, r)
        v = torch.linalg.solve(gram, (u.T @ weighted).T.unsqueeze(-1)).squeeze(-1).T
    return u, v
