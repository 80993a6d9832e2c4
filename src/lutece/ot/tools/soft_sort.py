"""Soft sorting, ranking, quantiles and top-k masks by entropic optimal transport.

Cuturi, Teboul & Vert, "Differentiable Ranks and Sorting using Optimal Transport", NeurIPS
2019 (arXiv 1905.11885). Sorting n values is the optimal assignment of the n values to any
increasing family of n targets; relaxed to a weighted target measure on m increasing values
and regularized by entropy, the assignment becomes a Sinkhorn plan and everything read from it
is differentiable.

For one row x in R^n (every function here works row by row along ``dim``):

* squash: z = s(x) in [0, 1]^n, by default s(x) = sigmoid((x - mean(x)) / std(x)), so that one
  epsilon fits inputs of any scale (the paper's "squashing" of the inputs; OTT's default);
* targets: y_j = (j - 1) / (m - 1), j = 1..m (y = 0 when m = 1), with weights b in the simplex;
  the inputs have uniform weights a_i = 1 / n;
* plan: P = argmin_{P 1 = a, P^T 1 = b} <C, P> + epsilon KL(P | a b^T), C_ij = (z_i - y_j)^2,
  solved by :func:`~lutece.ot.sinkhorn` (log domain, implicit differentiation);

and then, with bbar = cumsum(b) the cumulative target weights (the paper's S- and R-operators,
the entropic versions of its K-sort and K-rank):

    soft sort      S = (P^T x) / b                          (m,)  S_j = sum_i P_ij x_i / b_j
    soft rank      R = n (P bbar) / a                        (n,)  with m = n, b = 1 / n
    top-k mask     M = (P [0, 1]^T) / a                      (n,)  m = 2, b = ((n-k)/n, k/n)
    quantile       Q_t = (P^T x)_2 / b_2                     m = 3, b = (t - w/2, w, 1 - t - w/2)
    normalization  N = (P f) / a                             (n,)  targets f (m,), weights b

As epsilon -> 0 the plan tends to the monotone (north-west corner) coupling of the sorted
inputs with the targets and these tend to the hard sort, the 1-based ranks, the indicator of
the k largest entries, the q-quantile (mean of the sorted values over the mass window
[q - w/2, q + w/2]) and the quantile normalization of x onto f. The squared cost on the line
makes the plan totally positive of order 2, so S is nondecreasing and R is increasing in x
for every epsilon. Sinkhorn's last update makes the row marginal P 1 = a exact, so
sum_j b_j S_j = mean(x) exactly; sums that read the column marginal P^T 1 = b hold up to the
solver's threshold (the L1 error of P^T 1 - b): |sum_i R_i - n (n + 1) / 2| <= n^2 threshold,
so tighten ``threshold`` for large n.

epsilon is absolute, on the squashed cost (values in [0, 1]); its default, 1e-2, is that of
OTT's ``soft_sort.transport_for_sort``. Cost O(T n m) time and O(n m) memory for T Sinkhorn
iterations (T grows like 1 / epsilon); pass ``sinkhorn`` options (``threshold``,
``max_iterations``, ``implicit_diff``, ...) as keyword arguments.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..._validation import (
    check_dim,
    check_finite,
    check_floating,
    check_tensor,
    data_checks_enabled,
)
from ..geometry import PointCloud
from ..problems import LinearProblem
from ..solvers.sinkhorn import SinkhornOutput, sinkhorn

__all__ = ["sort", "ranks", "quantile", "quantile_normalization", "topk_mask"]

#: the default entropic regularization, on the squashed inputs (OTT's ``transport_for_sort``)
DEFAULT_EPSILON = 1e-2

Squash = Callable[[torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------------------- rows
class _Rows:
    """x moved to (B, n) rows in a Sinkhorn dtype, and the way back to x's layout."""

    def __init__(self, fn: str, x: object, dim: object) -> None:
        x = check_tensor(fn, "x", x, min_ndim=1)
        check_floating(fn, "x", x)
        self.dim = check_dim(fn, dim, x.ndim)
        n = x.shape[self.dim]
        if n == 0:
            raise ValueError(f"{fn}: x needs at least one entry along dim {dim}, got shape "
                             f"{tuple(x.shape)}")
        check_finite(fn, "x", x)
        self.dtype = x.dtype
        compute = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        moved = x.movedim(self.dim, -1)
        self.batch_shape = moved.shape[:-1]
        self.rows = moved.reshape(-1, n).to(compute)
        self.n = n

    @property
    def empty(self) -> bool:
        return self.rows.shape[0] == 0

    def restore(self, values: torch.Tensor) -> torch.Tensor:
        """(B, k) -> x's layout with k entries along ``dim``, in x's dtype."""
        out = values.reshape(*self.batch_shape, values.shape[-1]).movedim(-1, self.dim)
        return out.to(self.dtype)


def _check_epsilon(fn: str, epsilon: object) -> float:
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)):
        raise TypeError(f"{fn}: epsilon must be a number, got {type(epsilon).__name__}")
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"{fn}: epsilon must be > 0 and finite, got {epsilon}")
    return float(epsilon)


def _check_int(fn: str, name: str, value: object, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{fn}: {name} must be an int, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{fn}: {name} must be {bound}, got {value}")
    return value


def _squash(fn: str, rows: torch.Tensor, squashing_fun: Squash | None) -> torch.Tensor:
    """(B, n) -> (B, n) values in [0, 1]: sigmoid of the standardized rows by default."""
    if squashing_fun is None:
        mean = rows.mean(-1, keepdim=True)
        variance = (rows - mean).pow(2).mean(-1, keepdim=True)
        # a constant row (or n = 1) has x - mean = 0: keep 0 / tiny = 0 and a finite gradient
        std = variance.clamp_min(torch.finfo(rows.dtype).tiny).sqrt()
        return torch.sigmoid((rows - mean) / std)
    if not callable(squashing_fun):
        raise TypeError(f"{fn}: squashing_fun must be None or a callable, got "
                        f"{type(squashing_fun).__name__}")
    squashed = squashing_fun(rows)
    if not isinstance(squashed, torch.Tensor) or squashed.shape != rows.shape:
        got = tuple(squashed.shape) if isinstance(squashed, torch.Tensor) else \
            type(squashed).__name__
        raise ValueError(f"{fn}: squashing_fun must map the (B, n) = {tuple(rows.shape)} rows "
                         f"to a tensor of the same shape, got {got}")
    squashed = squashed.to(rows.dtype)
    check_finite(fn, "squashing_fun(x)", squashed)
    return squashed


def _transport(fn: str, rows: torch.Tensor, target_weights: torch.Tensor, epsilon: float,
               squashing_fun: Squash | None, sinkhorn_kwargs: dict[str, Any]
               ) -> SinkhornOutput:
    """The Sinkhorn plan from the squashed rows (B, n), uniform weights, to the targets
    y = linspace(0, 1, m) with weights ``target_weights`` (m,) or (B, m), summing to 1."""
    batch, n = rows.shape
    m = target_weights.shape[-1]
    squashed = _squash(fn, rows, squashing_fun)
    grid = torch.linspace(0.0, 1.0, m, dtype=rows.dtype, device=rows.device)
    geom = PointCloud(squashed.unsqueeze(-1), grid.expand(batch, m).unsqueeze(-1),
                      epsilon=epsilon)
    a = torch.full((batch, n), 1.0 / n, dtype=rows.dtype, device=rows.device)
    b = target_weights.to(rows.dtype).expand(batch, m)
    return sinkhorn(LinearProblem(geom, a, b), **sinkhorn_kwargs)


def _uniform(m: int, rows: torch.Tensor) -> torch.Tensor:
    return torch.full((m,), 1.0 / m, dtype=rows.dtype, device=rows.device)


# ---------------------------------------------------------------------------- operators
def sort(x: torch.Tensor, *, dim: int = -1, descending: bool = False,
         num_targets: int | None = None, epsilon: float = DEFAULT_EPSILON,
         squashing_fun: Squash | None = None, **sinkhorn_kwargs: Any) -> torch.Tensor:
    """Soft sorted values of ``x`` along ``dim``: S_j = sum_i P_ij x_i / b_j.

    Args:
        x: (..., n) (``n`` along ``dim``) floating tensor, finite. float16 and bfloat16 are
            computed in float32.
        dim: the dimension sorted.
        descending: return the values in decreasing order (the ascending result reversed).
        num_targets: m, the number of sorted values returned (default n). With m < n, the
            j-th value is a soft mean of the inputs in the j-th 1/m-quantile bin.
        epsilon: entropic regularization on the squashed inputs (> 0).
        squashing_fun: maps the (B, n) rows (sorted dimension last) into [0, 1]; default
            sigmoid((x - mean) / std) per row.
        **sinkhorn_kwargs: options of :func:`~lutece.ot.sinkhorn`.

    Returns:
        (..., m) with m along ``dim``, same dtype as ``x``; nondecreasing (nonincreasing if
        ``descending``), with mean(S) = mean(x). Differentiable w.r.t. ``x``.
    """
    fn = "sort"
    prepared = _Rows(fn, x, dim)
    _check_flag(fn, "descending", descending)
    m = prepared.n if num_targets is None else _check_int(fn, "num_targets", num_targets, 1)
    eps = _check_epsilon(fn, epsilon)
    rows = prepared.rows
    if prepared.empty:
        return prepared.restore(rows.new_zeros(0, m))
    b = _uniform(m, rows)
    out = _transport(fn, rows, b, eps, squashing_fun, sinkhorn_kwargs)
    values = out.apply(rows, axis=0) / b
    return prepared.restore(values.flip(-1) if descending else values)


def ranks(x: torch.Tensor, *, dim: int = -1, descending: bool = False,
          epsilon: float = DEFAULT_EPSILON, squashing_fun: Squash | None = None,
          **sinkhorn_kwargs: Any) -> torch.Tensor:
    """Soft 1-based ranks of ``x`` along ``dim``: R_i = n sum_j P_ij bbar_j / a_i.

    With n targets of weight 1/n, bbar_j = j / n and a_i = 1 / n, so R_i = n sum_j P_ij j
    is the expected target index of x_i under the plan: ~1 for the smallest entry and ~n for
    the largest as epsilon -> 0 (the reverse with ``descending``, R -> n + 1 - R).

    Args:
        x: (..., n) floating tensor, finite.
        dim, epsilon, squashing_fun, **sinkhorn_kwargs: as for :func:`sort`.
        descending: rank 1 goes to the largest entry.

    Returns:
        (..., n), same shape and dtype as ``x``, in [1, n]; increasing in x along each row;
        each row sums to n (n + 1) / 2 up to the Sinkhorn marginal error.
    """
    fn = "ranks"
    prepared = _Rows(fn, x, dim)
    _check_flag(fn, "descending", descending)
    eps = _check_epsilon(fn, epsilon)
    rows, n = prepared.rows, prepared.n
    if prepared.empty:
        return prepared.restore(rows.new_zeros(0, n))
    b = _uniform(n, rows)
    out = _transport(fn, rows, b, eps, squashing_fun, sinkhorn_kwargs)
    cumulative = torch.arange(1, n + 1, dtype=rows.dtype, device=rows.device) / n
    values = n * n * out.apply(cumulative.expand_as(rows), axis=1)  # n bbar P / a, a = 1/n
    return prepared.restore(n + 1 - values if descending else values)


def topk_mask(x: torch.Tensor, k: int, *, dim: int = -1, epsilon: float = DEFAULT_EPSILON,
              squashing_fun: Squash | None = None, **sinkhorn_kwargs: Any) -> torch.Tensor:
    """Soft indicator of the k largest entries of ``x`` along ``dim``.

    Transport to two targets y = (0, 1) with weights b = ((n - k) / n, k / n):
    M_i = P_i2 / a_i = n P_i2, the mass x_i sends to the "top" target.

    Args:
        x: (..., n) floating tensor, finite.
        k: 0 <= k <= n (k = 0 and k = n give the constant masks without a solve).
        dim, epsilon, squashing_fun, **sinkhorn_kwargs: as for :func:`sort`.

    Returns:
        (..., n), same shape and dtype as ``x``, in [0, 1]; each row sums to k up to the
        Sinkhorn marginal error; tends to the hard top-k indicator as epsilon -> 0.
    """
    fn = "topk_mask"
    prepared = _Rows(fn, x, dim)
    n = prepared.n
    k = _check_int(fn, "k", k, 0, n)
    eps = _check_epsilon(fn, epsilon)
    rows = prepared.rows
    if prepared.empty or k in (0, n):
        return prepared.restore(rows * 0 + (1.0 if k == n else 0.0))
    b = torch.tensor([(n - k) / n, k / n], dtype=rows.dtype, device=rows.device)
    out = _transport(fn, rows, b, eps, squashing_fun, sinkhorn_kwargs)
    top = torch.tensor([0.0, 1.0], dtype=rows.dtype, device=rows.device)
    return prepared.restore(n * out.apply(top.expand(rows.shape[0], 2), axis=1))


def _quantile_levels(fn: str, q: object) -> tuple[list[float], bool]:
    """q as a list of floats in [0, 1] and whether it was a scalar."""
    if not isinstance(q, torch.Tensor) and hasattr(q, "ndim") and hasattr(q, "tolist"):
        q = torch.as_tensor(q)  # numpy arrays and scalars
    if isinstance(q, torch.Tensor):
        if q.ndim > 1:
            raise ValueError(f"{fn}: q must be a number or a 1-d sequence of levels, got a "
                             f"tensor of shape {tuple(q.shape)}")
        scalar, levels = q.ndim == 0, q.detach().reshape(-1).tolist()
    elif isinstance(q, (int, float)) and not isinstance(q, bool):
        scalar, levels = True, [q]
    elif isinstance(q, Sequence) and not isinstance(q, str):
        scalar, levels = False, list(q)
    else:
        raise TypeError(f"{fn}: q must be a number, a sequence of numbers or a tensor, got "
                        f"{type(q).__name__}")
    if not levels:
        raise ValueError(f"{fn}: q needs at least one level")
    for level in levels:
        if isinstance(level, bool) or not isinstance(level, (int, float)):
            raise TypeError(f"{fn}: q must hold numbers, got {type(level).__name__}")
        if not (math.isfinite(level) and 0 <= level <= 1):
            raise ValueError(f"{fn}: q must be in [0, 1], got {level}")
    return [float(level) for level in levels], scalar


def _quantile_targets(levels: list[float], weight: float) -> tuple[list[float], list[int]]:
    """Target weights for the distinct sorted ``levels`` and the index of each level's target.

    Level t owns the mass window [t - h, t + h] clipped to [0, 1], with h = weight / 2 shrunk
    so that neighbouring windows do not overlap; filler targets take the mass between windows
    (those with no mass are left out). With one level in (w/2, 1 - w/2) this is the paper's
    b = (t - w/2, w, 1 - t - w/2)."""
    half = weight / 2
    for left, right in zip(levels, levels[1:]):
        half = min(half, (right - left) / 2)
    weights: list[float] = []
    owners: list[int] = []
    edge = 0.0
    for level in levels:
        low, high = max(0.0, level - half), min(1.0, level + half)
        if low > edge:
            weights.append(low - edge)
        owners.append(len(weights))
        weights.append(high - low)
        edge = high
    if edge < 1.0:
        weights.append(1.0 - edge)
    return weights, owners


def quantile(x: torch.Tensor, q: float | Sequence[float] | torch.Tensor, *, dim: int = -1,
             epsilon: float = DEFAULT_EPSILON, weight: float = 0.05,
             squashing_fun: Squash | None = None, **sinkhorn_kwargs: Any) -> torch.Tensor:
    """Soft q-quantiles of ``x`` along ``dim`` (the paper's S-quantile).

    For one level t the targets are y = (0, 1/2, 1) with weights b = (t - w/2, w, 1 - t - w/2)
    and the quantile is the middle soft-sorted value Q_t = sum_i P_i2 x_i / w: the soft mean
    of the sorted inputs over the mass window [t - w/2, t + w/2]. Several levels share one
    solve with 2K + 1 targets (windows interleaved with filler targets, on
    y = linspace(0, 1, .)); windows are clipped to [0, 1] and shrunk so as not to overlap.
    As epsilon -> 0 and with a window inside one input's mass (1/n), Q_t is the inverted-CDF
    quantile x_(ceil(n t)) (``numpy.quantile(..., method="inverted_cdf")``).

    Args:
        x: (..., n) floating tensor, finite.
        q: a level in [0, 1], or a 1-d sequence / tensor of K levels (treated as constants).
        weight: w in (0, 1], the target mass of each quantile's window.
        dim, epsilon, squashing_fun, **sinkhorn_kwargs: as for :func:`sort`.

    Returns:
        For a scalar q, x's shape without ``dim``; otherwise (..., K) with the K quantiles
        along ``dim`` in the order of q (unlike ``torch.quantile``, which puts q first).
    """
    fn = "quantile"
    prepared = _Rows(fn, x, dim)
    levels, scalar = _quantile_levels(fn, q)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise TypeError(f"{fn}: weight must be a number, got {type(weight).__name__}")
    if not 0 < weight <= 1:
        raise ValueError(f"{fn}: weight must be in (0, 1], got {weight}")
    eps = _check_epsilon(fn, epsilon)
    rows = prepared.rows
    distinct = sorted(set(levels))
    if prepared.empty:
        values = rows.new_zeros(0, len(distinct))
    else:
        target_weights, owners = _quantile_targets(distinct, float(weight))
        b = torch.tensor(target_weights, dtype=rows.dtype, device=rows.device)
        out = _transport(fn, rows, b, eps, squashing_fun, sinkhorn_kwargs)
        values = (out.apply(rows, axis=0) / b)[:, owners]
    order = torch.tensor([distinct.index(level) for level in levels], device=rows.device)
    result = prepared.restore(values[:, order])
    return result.squeeze(prepared.dim) if scalar else result


def quantile_normalization(x: torch.Tensor, targets: torch.Tensor,
                           weights: torch.Tensor | None = None, *, dim: int = -1,
                           epsilon: float = DEFAULT_EPSILON,
                           squashing_fun: Squash | None = None,
                           **sinkhorn_kwargs: Any) -> torch.Tensor:
    """Map ``x`` onto the target values keeping its order: N_i = sum_j P_ij f_j / a_i.

    The soft counterpart of quantile normalization (Cuturi, Teboul, Niles-Weed & Vert 2020,
    "Supervised Quantile Normalization"): the entry of x at quantile level u takes the target
    value f_j whose cumulative weight window contains u. With targets = sorted(x) and uniform
    weights it returns x as epsilon -> 0.

    Args:
        x: (..., n) floating tensor, finite.
        targets: f, nondecreasing target values, (m,) shared by every row, or laid out like x
            with m entries along ``dim`` (other dimensions broadcast to x's).
        weights: b >= 0 with positive sum, the same shape as ``targets`` (normalized to sum
            to 1 per row); default uniform 1/m.
        dim, epsilon, squashing_fun, **sinkhorn_kwargs: as for :func:`sort`.

    Returns:
        Same shape and dtype as ``x``, nondecreasing in x along each row; its mean is
        sum_j b_j f_j up to the Sinkhorn marginal error. Differentiable w.r.t. ``x``,
        ``targets`` and ``weights``.
    """
    fn = "quantile_normalization"
    prepared = _Rows(fn, x, dim)
    eps = _check_epsilon(fn, epsilon)
    rows = prepared.rows
    target_rows = _per_row(fn, "targets", targets, prepared, x)
    m = target_rows.shape[-1]
    if data_checks_enabled() and m > 1 and bool((target_rows.diff(dim=-1) < 0).any()):
        raise ValueError(f"{fn}: targets must be nondecreasing along dim; sort them first "
                         "(with their weights)")
    if weights is None:
        b = _uniform(m, rows)
    else:
        weight_rows = _per_row(fn, "weights", weights, prepared, x)
        if weight_rows.shape != target_rows.shape or weights.shape != targets.shape:
            raise ValueError(f"{fn}: weights must have the shape of targets, "
                             f"{tuple(targets.shape)}, got {tuple(weights.shape)}")
        if data_checks_enabled() and bool((weight_rows < 0).any()):
            raise ValueError(f"{fn}: weights must be >= 0, got a minimum of "
                             f"{float(weight_rows.min())}")
        total = weight_rows.sum(-1, keepdim=True)
        if data_checks_enabled() and bool((total <= 0).any()):
            raise ValueError(f"{fn}: weights must have a positive sum in every row")
        b = weight_rows / total
    if prepared.empty:
        return prepared.restore(rows.new_zeros(0, prepared.n))
    out = _transport(fn, rows, b, eps, squashing_fun, sinkhorn_kwargs)
    values = prepared.n * out.apply(target_rows.expand(rows.shape[0], m), axis=1)
    return prepared.restore(values)


def _per_row(fn: str, name: str, value: object, prepared: _Rows, x: torch.Tensor
             ) -> torch.Tensor:
    """``value`` (m,) or laid out like x with m along dim -> (1, m) or (B, m) rows."""
    value = check_tensor(fn, name, value, min_ndim=1)
    check_floating(fn, name, value)
    check_finite(fn, name, value)
    rows = prepared.rows
    if value.ndim != 1 and value.ndim != x.ndim:
        raise ValueError(f"{fn}: {name} must be 1-d (m,) or have x's {x.ndim} dimensions with "
                         f"m along dim, got shape {tuple(value.shape)}")
    moved = value.movedim(prepared.dim if value.ndim > 1 else 0, -1)
    if moved.shape[-1] == 0:
        raise ValueError(f"{fn}: {name} needs at least one entry along dim")
    if value.ndim == 1:
        return value.to(rows.dtype).unsqueeze(0)
    try:
        expanded = moved.expand(*prepared.batch_shape, moved.shape[-1])
    except RuntimeError:
        raise ValueError(f"{fn}: {name} of shape {tuple(value.shape)} does not broadcast to "
                         f"x's shape {tuple(x.shape)} outside dim") from None
    return expanded.reshape(-1, moved.shape[-1]).to(rows.dtype)


def _check_flag(fn: str, name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{fn}: {name} must be a bool, got {type(value).__name__}")
