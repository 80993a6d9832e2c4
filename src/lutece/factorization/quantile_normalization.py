"""Row-wise quantile normalization onto learned, monotone target values.

Cuturi, Teboul, Niles-Weed & Vert, "Supervised Quantile Normalization for Low-rank Matrix
Factorization", ICML 2020 (arXiv 2002.03229). Quantile normalization (QN) of a row x in R^n
onto m sorted target values f_1 <= ... <= f_m replaces the entry of x at quantile level u by
the target whose mass window [(j - 1) / m, j / m] contains u: the optimal transport of the
row's empirical measure onto sum_j (1/m) delta_{f_j}. Its entropic relaxation (the soft
quantile normalization of :func:`lutece.ot.tools.soft_sort.quantile_normalization`),

    SQN(x; f)_i = n sum_j P_ij f_j,   P the Sinkhorn plan from the squashed row to the grid,

is differentiable in x and in f, so the targets f can be learned. Here every row i of a
(d, n) matrix has its own targets f^(i), parameterized to be increasing by construction:

    f^(i)_1 = first_i                      (softplus(first_i) when ``nonnegative``)
    f^(i)_j = f^(i)_1 + sum_{k < j} softplus(gap_ik),   j = 2..m,

so no optimizer step can break their order (the paper uses cumsum(softmax) over the row's
range, or cumsum(exp); softplus gaps keep the same guarantee with linear growth). The
module stores targets in each row's own units, f^(i) = offset_i + scale_i g^(i) with g^(i)
built as above and (offset_i, scale_i) fixed from the data (row mean and standard
deviation), so that one learning rate moves the targets of a row of values ~1e3 and of a
row of values ~1e-3 alike.

:func:`hard_quantile_normalization` is the epsilon -> 0 limit, computed exactly (the
north-west-corner coupling of the sorted row with the targets).

With missing entries (a ``mask``), :func:`masked_quantile_normalization` puts the row's
mass on its observed entries only (a_i = 1 / |observed| there, 0 elsewhere; squashing
statistics from the observed entries) and maps *every* entry by the plan's conditional
law, the out-of-sample extension of the entropic plan (P_ij = exp((f_i + g_j - C_ij) /
eps), so P_ij / sum_k P_ik = softmax_j((g_j - C_ij) / eps) needs only the potential g):

    QN(x)_i = sum_j softmax_j((g_j - C_ij) / eps) f_j,

which equals n sum_j P_ij f_j at observed entries when nothing is missing. An unobserved
entry thus takes no mass away from the observed ones (otherwise a model could park its
held-out predictions wherever it suits the fit of the observed entries).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_choice, check_finite, check_floating, check_tensor
from ..ot import LinearProblem, PointCloud, sinkhorn
from ..ot.tools import soft_sort

__all__ = ["QuantileNormalization", "hard_quantile_normalization",
           "masked_quantile_normalization", "masked_soft_sort", "monotone_targets",
           "inverse_softplus", "interpolate_rows"]

DEFAULT_NUM_QUANTILES = 16
DEFAULT_EPSILON = 1e-2
_INIT = ("uniform", "data")


def inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    """x with softplus(x) = y for y > 0, computed stably: y + log(-expm1(-y))."""
    return y + torch.log(-torch.expm1(-y))


def monotone_targets(first: torch.Tensor, gap_logits: torch.Tensor, *,
                     nonnegative: bool = False) -> torch.Tensor:
    """The increasing targets [f_1, f_1 + cumsum(softplus(gap_logits))] of each row.

    Args:
        first: (..., 1) first target of each row (before softplus when ``nonnegative``).
        gap_logits: (..., m - 1) unconstrained gaps.
        nonnegative: map the first value through softplus, so every target is > 0.

    Returns:
        (..., m), strictly increasing along the last dimension for finite inputs (up to
        floating-point absorption of gaps far below the targets' magnitude).
    """
    start = F.softplus(first) if nonnegative else first
    return torch.cat([start, start + torch.cumsum(F.softplus(gap_logits), dim=-1)], dim=-1)


def hard_quantile_normalization(x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Exact quantile normalization of each row of ``x`` onto ``targets`` (uniform weights).

    The entry of rank k (0-based, ties broken by position) owns the mass [k/n, (k + 1)/n]
    and target j the mass [j/m, (j + 1)/m]; the entry receives the targets' mean over its
    window, n sum_j |[k/n, (k+1)/n] cap [j/m, (j+1)/m]| f_j. When m divides n this is
    "sort, then give the k-th smallest entry f_{floor(k m / n)}"; with m = n it is the
    classical quantile normalization (the k-th smallest entry takes the k-th target).

    Args:
        x: (..., n) floating tensor.
        targets: (m,) or (..., m) nondecreasing values (broadcast against x's batch).

    Returns:
        (..., n) in x's dtype; piecewise constant in x (no useful gradient).
    """
    fn = "hard_quantile_normalization"
    x = check_tensor(fn, "x", x, min_ndim=1)
    targets = check_tensor(fn, "targets", targets, min_ndim=1)
    check_floating(fn, "x", x)
    check_floating(fn, "targets", targets)
    n, m = x.shape[-1], targets.shape[-1]
    if m > 1 and bool((targets.diff(dim=-1) < 0).any()):
        raise ValueError(f"{fn}: targets must be nondecreasing along the last dimension; "
                         "sort them first")
    edges_x = torch.arange(n + 1, dtype=torch.float64) / n
    edges_t = torch.arange(m + 1, dtype=torch.float64) / m
    overlap = (torch.minimum(edges_x[1:, None], edges_t[None, 1:])
               - torch.maximum(edges_x[:-1, None], edges_t[None, :-1])).clamp_min(0)
    overlap = (n * overlap).to(device=x.device, dtype=x.dtype)        # (n, m), rows sum to 1
    target_rows = targets.to(x.dtype).expand(*x.shape[:-1], m)
    sorted_values = target_rows @ overlap.T                            # value of rank k
    order = torch.argsort(x, dim=-1, stable=True)
    return torch.empty_like(x).scatter_(-1, order, sorted_values)


def interpolate_rows(values: torch.Tensor, knots: torch.Tensor,
                     knot_values: torch.Tensor) -> torch.Tensor:
    """Monotone piecewise-linear maps, one per row: knots[i] -> knot_values[i].

    Args:
        values: (d, n) points to map.
        knots: (d, m) strictly increasing abscissae of each row.
        knot_values: (d, m) nondecreasing ordinates.

    Returns:
        (d, n); constant beyond the first and last knots. Differentiable in all three.
    """
    m = knots.shape[-1]
    upper = torch.searchsorted(knots.detach().contiguous(), values.detach().contiguous())
    upper = upper.clamp(1, m - 1)
    lower = upper - 1
    k0, k1 = knots.gather(-1, lower), knots.gather(-1, upper)
    v0, v1 = knot_values.gather(-1, lower), knot_values.gather(-1, upper)
    width = (k1 - k0).clamp_min(torch.finfo(knots.dtype).tiny)   # equal knots: no 0 / 0
    weight = ((values - k0) / width).clamp(0.0, 1.0)
    return v0 + weight * (v1 - v0)


def _masked_plan(x: torch.Tensor, mask: torch.Tensor, m: int, epsilon: float,
                 sinkhorn_kwargs: dict[str, Any]) -> tuple[torch.Tensor, Any]:
    """Squashed rows and the Sinkhorn solution from the observed entries of each row of x
    (d, n) (weights 1 / count, 0 where unobserved) to the grid linspace(0, 1, m), uniform
    weights. Returns (log-conditional (d, n, m): log softmax_j((g_j - C_ij) / eps), the
    SinkhornOutput)."""
    weight = mask.to(x.dtype)
    count = weight.sum(-1, keepdim=True).clamp_min(1)
    values = torch.where(mask, x, torch.zeros_like(x))
    mean = values.sum(-1, keepdim=True) / count
    variance = ((values - mean).pow(2) * weight).sum(-1, keepdim=True) / count
    std = variance.clamp_min(torch.finfo(x.dtype).tiny).sqrt()
    squashed = torch.sigmoid((x - mean) / std)
    d = x.shape[0]
    grid = torch.linspace(0.0, 1.0, m, dtype=x.dtype, device=x.device)
    geom = PointCloud(squashed.unsqueeze(-1), grid.expand(d, m).unsqueeze(-1),
                      epsilon=epsilon)
    b = torch.full((d, m), 1.0 / m, dtype=x.dtype, device=x.device)
    out = sinkhorn(LinearProblem(geom, weight / count, b), **sinkhorn_kwargs)
    eps = torch.as_tensor(out.epsilon, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
    logits = (out.g.unsqueeze(-2) - geom.cost_matrix) / eps
    return torch.log_softmax(logits, dim=-1), out


def masked_quantile_normalization(x: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                                  *, epsilon: float = DEFAULT_EPSILON,
                                  **sinkhorn_kwargs: Any) -> torch.Tensor:
    """Soft quantile normalization of each row of ``x`` fitted on its observed entries and
    applied to all of them (see the module docstring).

    Args:
        x: (d, n) floating, finite everywhere (fill unobserved entries with any finite
            value: they are squashed and mapped, but carry no mass).
        targets: (d, m) nondecreasing target values per row (or (m,) shared).
        mask: (d, n) bool, True where observed; every row needs an observed entry.
        epsilon: entropic regularization on the squashed entries.
        **sinkhorn_kwargs: options of :func:`~lutece.ot.sinkhorn`.

    Returns:
        (d, n) in x's dtype, nondecreasing in x along each row; differentiable w.r.t. x
        and targets. Equals :func:`lutece.ot.tools.soft_sort.quantile_normalization` when
        every entry is observed.
    """
    log_conditional, _ = _masked_plan(x, mask, targets.shape[-1], epsilon,
                                      {"warn": False, **sinkhorn_kwargs})
    target_rows = targets.to(x.dtype).expand(x.shape[0], targets.shape[-1])
    return (log_conditional.exp() @ target_rows.unsqueeze(-1)).squeeze(-1)


def masked_soft_sort(x: torch.Tensor, mask: torch.Tensor, num_targets: int, *,
                     epsilon: float = DEFAULT_EPSILON, **sinkhorn_kwargs: Any
                     ) -> torch.Tensor:
    """(d, m) soft-sorted values of the observed entries of each row of ``x`` (d, n):
    S_j = sum_i P_ij x_i / b_j with the plan of :func:`masked_quantile_normalization`
    (the mean of the observed entries in the j-th 1/m quantile bin as epsilon -> 0)."""
    _, out = _masked_plan(x, mask, num_targets, epsilon, {"warn": False, **sinkhorn_kwargs})
    values = torch.where(mask, x, torch.zeros_like(x))
    return out.apply(values, axis=0) * num_targets


def _row_quantiles(x: torch.Tensor, mask: torch.Tensor | None, m: int) -> torch.Tensor:
    """(d, m) empirical quantiles of each row's observed entries at the bin centres
    (j + 1/2) / m (linear interpolation)."""
    levels = (torch.arange(m, dtype=x.dtype, device=x.device) + 0.5) / m
    observed = x if mask is None else torch.where(mask, x, torch.nan)
    return torch.nanquantile(observed, levels, dim=-1).movedim(0, -1)


class QuantileNormalization(nn.Module):
    """Differentiable row-wise quantile normalization of a (d, n) matrix onto learned,
    increasing target values, one set of m targets per row (Cuturi et al., ICML 2020).

    forward(x) = SQN(x_i; f^(i)) for each row i, built on
    :func:`lutece.ot.tools.soft_sort.quantile_normalization` (uniform target weights 1/m;
    the paper can also learn them, here the m values carry the flexibility).

    Args:
        num_rows: d, the number of rows (features), each with its own targets.
        num_quantiles: m >= 2 target values per row.
        epsilon: entropic regularization of the soft operator, on the squashed inputs
            (values in [0, 1]); smaller is sharper (closer to the hard operator) and slower.
        init: "uniform": targets evenly spaced over [0, 1], or over each row's range when
            :meth:`reset_parameters` is given data; "data": the rows' empirical quantiles
            at the bin centres (j + 1/2) / m, which needs data (call
            ``reset_parameters(x)`` before the first forward).
        nonnegative: keep every target > 0 (first value through softplus).
        dtype: of the parameters (default float64).
        **sinkhorn_kwargs: options of :func:`~lutece.ot.sinkhorn` (``threshold``, ...).

    Attributes:
        first: (d, 1) parameter, the first standardized target (its softplus preimage if
            nonnegative).
        gap_logits: (d, m - 1) parameter, softplus preimages of the standardized gaps.
        offset, scale: (d, 1) buffers, targets = offset + scale * standardized targets; set
            by :meth:`reset_parameters` from data (row mean and standard deviation; offset 0
            and scale the row's mean absolute value when nonnegative), else 0 and 1.
    """

    def __init__(self, num_rows: int, num_quantiles: int = DEFAULT_NUM_QUANTILES, *,
                 epsilon: float = DEFAULT_EPSILON, init: str = "uniform",
                 nonnegative: bool = False, dtype: torch.dtype = torch.float64,
                 **sinkhorn_kwargs: Any) -> None:
        super().__init__()
        fn = "QuantileNormalization"
        self.num_rows = _positive_int(fn, "num_rows", num_rows, 1)
        self.num_quantiles = _positive_int(fn, "num_quantiles", num_quantiles, 2)
        self.epsilon = _positive_float(fn, "epsilon", epsilon)
        check_choice(fn, "init", init, _INIT)
        if not isinstance(nonnegative, bool):
            raise TypeError(f"{fn}: nonnegative must be a bool, got {type(nonnegative).__name__}")
        self.init = init
        self.nonnegative = nonnegative
        self.sinkhorn_kwargs = {"warn": False, **sinkhorn_kwargs}
        self.first = nn.Parameter(torch.zeros(self.num_rows, 1, dtype=dtype))
        self.gap_logits = nn.Parameter(torch.zeros(self.num_rows, self.num_quantiles - 1,
                                                   dtype=dtype))
        self.register_buffer("offset", torch.zeros(self.num_rows, 1, dtype=dtype))
        self.register_buffer("scale", torch.ones(self.num_rows, 1, dtype=dtype))
        self.initialized = False
        if init == "uniform":
            self.reset_parameters()

    @property
    def targets(self) -> torch.Tensor:
        """(d, m) the current targets, strictly increasing along each row."""
        standardized = monotone_targets(self.first, self.gap_logits,
                                        nonnegative=self.nonnegative)
        return self.offset + self.scale * standardized

    @torch.no_grad()
    def set_targets(self, values: torch.Tensor) -> None:
        """Set the parameters so that :attr:`targets` equals ``values`` (d, m), which must
        be finite and nondecreasing along rows; ties are spread by a tiny gap (1e-9 of the
        row's spread, or 1e-9), and with ``nonnegative`` values <= 0 are raised likewise."""
        fn = "QuantileNormalization.set_targets"
        values = check_tensor(fn, "values", values, min_ndim=2)
        check_floating(fn, "values", values)
        check_finite(fn, "values", values)
        if values.shape != (self.num_rows, self.num_quantiles):
            raise ValueError(f"{fn}: values must have shape (num_rows, num_quantiles) = "
                             f"{(self.num_rows, self.num_quantiles)}, got {tuple(values.shape)}")
        values = values.to(self.first.dtype)
        if bool((values.diff(dim=-1) < 0).any()):
            raise ValueError(f"{fn}: values must be nondecreasing along each row")
        values = (values - self.offset) / self.scale
        spread = (values[:, -1:] - values[:, :1]).abs()
        tiny = 1e-9 * torch.where(spread > 0, spread, torch.ones_like(spread))
        start = values[:, :1]
        if self.nonnegative:
            start = torch.maximum(start, tiny)
            self.first.copy_(inverse_softplus(start))
        else:
            self.first.copy_(start)
        gaps = torch.maximum(values.diff(dim=-1), tiny)
        self.gap_logits.copy_(inverse_softplus(gaps))
        self.initialized = True

    @torch.no_grad()
    def reset_parameters(self, x: torch.Tensor | None = None,
                         mask: torch.Tensor | None = None) -> None:
        """Initialize the targets (see ``init``) from data ``x`` (d, n) if given, whose
        entries where ``mask`` (d, n, bool) is False are ignored."""
        fn = "QuantileNormalization.reset_parameters"
        m = self.num_quantiles
        dtype = self.first.dtype
        if x is None:
            if self.init == "data":
                raise ValueError(f"{fn}: init='data' needs the data: call "
                                 "reset_parameters(x) with a (num_rows, n) matrix")
            self.offset.fill_(0.0)
            self.scale.fill_(1.0)
            grid = torch.linspace(0.0, 1.0, m, dtype=dtype)
            self.set_targets(grid.expand(self.num_rows, m).clone())
            return
        x = self._check_input(fn, x, allow_nan=mask is not None)
        if mask is not None:
            mask = _check_mask(fn, mask, x)
        x = x.detach().to(dtype)
        self._set_units(x, mask)
        if self.init == "data":
            values = _row_quantiles(x, mask, m)
        else:
            observed = x if mask is None else torch.where(mask, x, torch.nan)
            low = torch.nan_to_num(observed, nan=math.inf).amin(-1, keepdim=True)
            high = torch.nan_to_num(observed, nan=-math.inf).amax(-1, keepdim=True)
            fraction = torch.linspace(0.0, 1.0, m, dtype=dtype)
            values = low + (high - low) * fraction
        self.set_targets(values)

    @torch.no_grad()
    def _set_units(self, x: torch.Tensor, mask: torch.Tensor | None) -> None:
        """offset, scale <- the observed rows' mean and standard deviation (nonnegative:
        0 and the mean absolute value); a constant row gets scale 1."""
        weight = torch.ones_like(x) if mask is None else mask.to(x.dtype)
        values = torch.where(weight > 0, x, 0.0)
        count = weight.sum(-1, keepdim=True).clamp_min(1)
        mean = values.sum(-1, keepdim=True) / count
        if self.nonnegative:
            offset = torch.zeros_like(mean)
            scale = values.abs().sum(-1, keepdim=True) / count
        else:
            offset = mean
            scale = ((values - mean).pow(2) * weight).sum(-1, keepdim=True).div(count).sqrt()
        self.offset.copy_(offset)
        self.scale.copy_(torch.where(scale > 0, scale, torch.ones_like(scale)))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Map each row of ``x`` onto its targets.

        Args:
            x: (..., d, n) floating, finite (without ``mask``); with ``mask``, (d, n) and
                finite at observed entries (the others carry no mass but are mapped too;
                a NaN there is mapped as the row's observed mean).
            mask: (d, n) bool, True where observed: the operator is fitted on the observed
                entries and applied to all (:func:`masked_quantile_normalization`).

        Returns:
            Same shape and dtype as x, nondecreasing in x along each row; differentiable
            w.r.t. x and the targets.
        """
        fn = "QuantileNormalization"
        x = self._check_input(fn, x, allow_nan=mask is not None)
        if not self.initialized:
            raise RuntimeError(f"{fn}: init='data' targets are not set yet; call "
                               "reset_parameters(x) first")
        targets = self.targets.to(x.dtype)
        if mask is not None:
            if x.ndim != 2:
                raise ValueError(f"{fn}: with a mask, x must be a (d, n) matrix, got shape "
                                 f"{tuple(x.shape)}")
            mask = _check_mask(fn, mask, x)
            _check_observed(fn, x, mask)
            # unobserved entries are mapped too (out of sample); only non-finite ones
            # (e.g. NaN placeholders) are replaced, by the row's observed mean
            filled = torch.where(mask | torch.isfinite(x), x, _observed_mean(x, mask))
            return masked_quantile_normalization(filled, targets, mask, epsilon=self.epsilon,
                                                 **self.sinkhorn_kwargs)
        targets = targets.reshape((1,) * (x.ndim - 2) + tuple(targets.shape))
        return soft_sort.quantile_normalization(x, targets, epsilon=self.epsilon,
                                                **self.sinkhorn_kwargs)

    def _check_input(self, fn: str, x: object, *, allow_nan: bool) -> torch.Tensor:
        x = check_tensor(fn, "x", x, min_ndim=2)
        check_floating(fn, "x", x)
        if x.shape[-2] != self.num_rows:
            raise ValueError(f"{fn}: x must have num_rows = {self.num_rows} rows (dimension "
                             f"-2), got shape {tuple(x.shape)}")
        if x.shape[-1] < 1:
            raise ValueError(f"{fn}: x needs at least one column, got shape {tuple(x.shape)}")
        if not allow_nan:
            check_finite(fn, "x", x)
        return x

    def extra_repr(self) -> str:
        return (f"num_rows={self.num_rows}, num_quantiles={self.num_quantiles}, "
                f"epsilon={self.epsilon:g}, init={self.init!r}, nonnegative={self.nonnegative}")


def _check_mask(fn: str, mask: object, x: torch.Tensor) -> torch.Tensor:
    mask = check_tensor(fn, "mask", mask)
    if mask.dtype != torch.bool:
        raise TypeError(f"{fn}: mask must be a bool tensor (True = observed), got {mask.dtype}")
    if mask.shape != x.shape:
        raise ValueError(f"{fn}: mask must have x's shape {tuple(x.shape)}, got "
                         f"{tuple(mask.shape)}")
    return mask


def _check_observed(fn: str, x: torch.Tensor, mask: torch.Tensor) -> None:
    if bool((mask.sum(-1) == 0).any()):
        raise ValueError(f"{fn}: every row needs at least one observed entry (mask True)")
    bad = mask & ~torch.isfinite(x)
    if bool(bad.any()):
        raise ValueError(f"{fn}: x has {int(bad.sum())} NaN or infinite value(s) at observed "
                         "entries (mask True)")


def _observed_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(d, 1) mean of each row's observed entries (no gradient)."""
    values = torch.where(mask, x, torch.zeros_like(x)).detach()
    return values.sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp_min(1)


def _positive_int(fn: str, name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{fn}: {name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{fn}: {name} must be >= {low}, got {value}")
    return value


def _positive_float(fn: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{fn}: {name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{fn}: {name} must be > 0 and finite, got {value}")
    return float(value)
