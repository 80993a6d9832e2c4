"""Discrete solvers to perturb: each maps scores (..., *event) to a decision with the same
leading batch dimensions, batched (one call solves every row), never differentiated.

=====================  ===============  =========================  ==========
solver                 event            decision                   direction
=====================  ===============  =========================  ==========
argmax_one_hot         (n,)             one-hot (n,)               maximize
topk_mask(k)           (n,)             0/1 mask with k ones       maximize
ranks                  (n,)             1-based ascending ranks    maximize
sort                   (n,)             ascending sorted values    (a function)
shortest_path_grid     (H, W) costs     0/1 path mask (H, W)       minimize
assignment             (n, n) scores    permutation matrix (n, n)  maximize
=====================  ===============  =========================  ==========

``ranks`` maximizes <y, theta> over the permutations of (1, ..., n), so it follows the
convention of :func:`lutece.sorting.soft_rank`: rank n goes to the largest score.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from .._validation import check_finite, check_floating, check_tensor
from ._dijkstra import grid_shortest_paths
from ._sweeping import sweep_shortest_paths

__all__ = ["argmax_one_hot", "topk_mask", "ranks", "sort", "shortest_path_grid", "assignment"]

# Grid shortest paths: up to 128 grids are swept together (SIMD lanes; 128 was fastest at
# 12x12 and 30x30 here), fewer for large grids so that one chunk's costs and distances stay
# within ~2 MiB of cache. Past _MAX_SWEEPS (break-even with Dijkstra is ~150 sweeps at
# ~0.6 ns per cell and grid against ~100 ns per cell), a chunk falls back to Dijkstra.
_SWEEP_LANES = 128
_SWEEP_CACHE_BYTES = 1 << 20
_MAX_SWEEPS = 96


def _sweeps_win(batch: int, cells: int) -> bool:
    """Whether the sweeps beat the heap Dijkstra: sweeps grow with the grid's side and lose
    SIMD lanes to the cache budget, Dijkstra does not care about the batch. Measured here
    (float32 random costs, us per grid, sweeps vs Dijkstra): 64x64 165 vs 457 at batch 128,
    422 vs 475 at batch 8; 96x96 813 vs 1074 and 1222 vs 1126; 128x128 2769 vs 2109."""
    return cells <= 64 * 64 or (cells <= 96 * 96 and batch >= 32)


def _check(fn: str, scores: object, event_ndim: int) -> torch.Tensor:
    scores = check_tensor(fn, "scores", scores, min_ndim=event_ndim)
    check_floating(fn, "scores", scores)
    return check_finite(fn, "scores", scores)


def argmax_one_hot(scores: torch.Tensor) -> torch.Tensor:
    """One-hot vector of the largest entry of the last dimension (first one on ties).

    scores: (..., n) -> (..., n) in scores' dtype.
    """
    scores = _check("argmax_one_hot", scores, 1)
    index = scores.argmax(dim=-1, keepdim=True)
    return torch.zeros_like(scores).scatter_(-1, index, 1.0)


def topk_mask(k: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """A solver returning the 0/1 mask of the ``k`` largest entries of the last dimension.

    Returns ``solver(scores: (..., n)) -> (..., n)``; raises if k > n.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"topk_mask: k must be an int >= 0, got {k!r}")

    def solver(scores: torch.Tensor) -> torch.Tensor:
        scores = _check("topk_mask", scores, 1)
        n = scores.shape[-1]
        if k > n:
            raise ValueError(f"topk_mask: k = {k} exceeds the number of entries n = {n}")
        index = scores.topk(k, dim=-1).indices
        return torch.zeros_like(scores).scatter_(-1, index, 1.0)

    solver.__name__ = f"topk_mask(k={k})"
    solver.__qualname__ = solver.__name__
    return solver


def ranks(scores: torch.Tensor) -> torch.Tensor:
    """Hard 1-based ascending ranks of the last dimension (ties broken by position).

    scores: (..., n) -> (..., n) in scores' dtype.
    """
    scores = _check("ranks", scores, 1)
    order = scores.argsort(dim=-1)
    positions = torch.arange(1, scores.shape[-1] + 1, dtype=scores.dtype,
                             device=scores.device).expand_as(scores)
    return torch.empty_like(scores).scatter_(-1, order, positions)


def sort(scores: torch.Tensor) -> torch.Tensor:
    """Ascending sorted values of the last dimension: (..., n) -> (..., n)."""
    scores = _check("sort", scores, 1)
    return torch.sort(scores, dim=-1).values


def shortest_path_grid(costs: torch.Tensor, *, clamp_negative: bool = False) -> torch.Tensor:
    """Minimum-cost path from the top-left to the bottom-right cell of each grid.

    8-neighbourhood moves; a path's cost is the sum of the costs of the cells it visits, both
    ends included (the Warcraft shortest-path benchmark). Minimizes, so use
    ``maximize=False`` with :func:`perturbed`. Solved exactly for the whole batch at once by
    Gauss-Seidel sweeps of the Bellman equations vectorized across grids, with Dijkstra for
    grids the sweeps do not settle quickly (mazes) and for large grids (over 64x64, or 96x96
    in batches of 32 or more), where Dijkstra is faster; see ``_sweeping.py``. Path costs
    accumulate in the costs' dtype (float32 or float64; other dtypes in float32), as
    Dijkstra's would, so on near-ties a float32 path can be optimal only to float32 rounding.
    Equally short paths are broken deterministically.

    Args:
        costs: (..., H, W) non-negative cell costs. Negative costs raise unless
            ``clamp_negative`` (then they count as 0), which is what perturbed costs need
            when the noise can push them below zero.

    Returns:
        (..., H, W) 0/1 mask of the cells on the path, in costs' dtype and device.
    """
    fn = "shortest_path_grid"
    costs = _check(fn, costs, 2)
    if not clamp_negative and costs.numel() and float(costs.min()) < 0:
        raise ValueError(f"{fn}: costs must be >= 0 (Dijkstra), got a minimum of "
                         f"{float(costs.min())}; pass clamp_negative=True to clamp them")
    height, width = costs.shape[-2:]
    if height == 0 or width == 0:
        raise ValueError(f"{fn}: the grid must have at least one cell, got {height}x{width}")
    dtype = costs.dtype if costs.dtype in (torch.float32, torch.float64) else torch.float32
    flat = costs.detach().reshape(-1, height, width).to("cpu", dtype).contiguous().numpy()
    paths = np.empty_like(flat)
    if _sweeps_win(flat.shape[0], height * width):
        lane_bytes = (height + 2) * (width + 2) * flat.itemsize
        lanes = max(4, min(_SWEEP_LANES, _SWEEP_CACHE_BYTES // lane_bytes))
        unsettled = sweep_shortest_paths(flat, paths, lanes, _MAX_SWEEPS)  # clamps at 0
    else:
        unsettled = np.ones(flat.shape[0], dtype=bool)
    if unsettled.any():  # Dijkstra for what the sweeps left (or were not worth trying on)
        rest = np.maximum(flat[unsettled], 0)
        rest_paths = np.empty_like(rest)
        grid_shortest_paths(rest, rest_paths)
        paths[unsettled] = rest_paths
    return torch.from_numpy(paths).reshape(costs.shape).to(costs.device, costs.dtype)


def assignment(scores: torch.Tensor) -> torch.Tensor:
    """Permutation matrix P maximizing sum_ij scores_ij P_ij (linear assignment, scipy's
    ``linear_sum_assignment``, one call per matrix).

    scores: (..., n, n) -> (..., n, n) 0/1 in scores' dtype and device.
    """
    fn = "assignment"
    scores = _check(fn, scores, 2)
    n, m = scores.shape[-2:]
    if n != m:
        raise ValueError(f"{fn}: scores must be square (..., n, n), got (..., {n}, {m})")
    flat = scores.detach().reshape(-1, n, n).to("cpu", torch.float64).numpy()
    result = np.zeros_like(flat)
    for index, matrix in enumerate(flat):
        rows, cols = linear_sum_assignment(matrix, maximize=True)
        result[index, rows, cols] = 1.0
    return torch.from_numpy(result).reshape(scores.shape).to(scores.device, scores.dtype)
