"""Measures on a d-dimensional Cartesian grid with a separable cost (OTT's ``Grid``).

The cost between grid points i = (i_1..i_d) and j = (j_1..j_d) is sum_k c_k(x^k_{i_k},
x^k_{j_k}), so the Gibbs kernel is a Kronecker product and a kernel application is d small
ones, one per axis (Solomon et al. 2015, convolutional Wasserstein distances): for
n = n_1 ... n_d points it costs O(n sum_k n_k) instead of O(n^2), and nothing of size n^2 is
ever formed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..._validation import check_finite, check_floating, check_tensor
from ..costs import CostFn, SqEuclidean
from .base import Geometry

__all__ = ["Grid"]


class Grid(Geometry):
    """A grid of n = n_1 x ... x n_d points, both measures living on it.

    Args:
        x: a sequence of d 1-D tensors, the coordinates along each axis.
        grid_size: instead of ``x``, the number of points per axis; coordinates are then
            linspace(0, 1, n_k) in ``dtype`` (default float32).
        cost_fns: one cost for every axis, or one per axis, applied to scalar coordinates
            (default SqEuclidean, so the total cost is the squared Euclidean distance).
        epsilon, relative_epsilon, scale_cost: as for :class:`Geometry` ("median" excepted).

    Vectors on the grid are flattened in C order: index i_1 n_2 ... n_d + ... + i_d.
    """

    _fn = "Grid"

    def __init__(self, x: Sequence[torch.Tensor] | None = None,
                 grid_size: Sequence[int] | None = None,
                 cost_fns: CostFn | Sequence[CostFn] | None = None,
                 epsilon: float | None = None, relative_epsilon: str | None = None,
                 scale_cost: float | str = 1.0, dtype: torch.dtype | None = None) -> None:
        fn = self._fn
        if (x is None) == (grid_size is None):
            raise ValueError(f"{fn}: give exactly one of x (coordinates per axis) and "
                             "grid_size")
        if x is None:
            assert grid_size is not None
            if not grid_size or any(isinstance(s, bool) or not isinstance(s, int) or s < 1
                                    for s in grid_size):
                raise ValueError(f"{fn}: grid_size must be a non-empty sequence of positive "
                                 f"ints, got {grid_size!r}")
            x = [torch.linspace(0, 1, size, dtype=dtype or torch.float32)
                 for size in grid_size]
        if isinstance(x, torch.Tensor) or not len(x):
            raise TypeError(f"{fn}: x must be a non-empty sequence of 1-D tensors, one per "
                            "axis")
        for axis, coordinates in enumerate(x):
            check_tensor(fn, f"x[{axis}]", coordinates)
            check_floating(fn, f"x[{axis}]", coordinates)
            if coordinates.ndim != 1 or coordinates.numel() == 0:
                raise ValueError(f"{fn}: x[{axis}] must be a non-empty 1-D tensor, got shape "
                                 f"{tuple(coordinates.shape)}")
            check_finite(fn, f"x[{axis}]", coordinates)
        if len({c.dtype for c in x}) > 1:
            raise TypeError(f"{fn}: all coordinate tensors must have the same dtype")
        if cost_fns is None:
            cost_fns = SqEuclidean()
        if callable(cost_fns):
            cost_fns = [cost_fns] * len(x)
        if len(cost_fns) != len(x):
            raise ValueError(f"{fn}: got {len(cost_fns)} cost_fns for a {len(x)}-d grid")
        if scale_cost == "median":
            raise ValueError(f"{fn}: scale_cost='median' is not available on a grid; use "
                             "'mean', 'max_cost', 'std' or a number")
        self._batched = False
        self.x = tuple(x)
        self.cost_fns = tuple(cost_fns)
        self.grid_size = tuple(c.numel() for c in self.x)
        self._init_regularization(epsilon, relative_epsilon, scale_cost)

    @property
    def num_problems(self) -> int:
        return 1

    @property
    def shape(self) -> tuple[int, int]:
        n = math.prod(self.grid_size)
        return n, n

    @property
    def dtype(self) -> torch.dtype:
        return self.x[0].dtype

    @property
    def device(self) -> torch.device:
        return self.x[0].device

    def _axis_costs(self) -> list[torch.Tensor]:
        """The unscaled (n_k, n_k) cost of each axis."""
        costs = []
        for coordinates, cost_fn in zip(self.x, self.cost_fns):
            points = coordinates[None, :, None]
            costs.append(cost_fn(points, points)[0])
        return costs

    def _unscaled_block(self, rows: slice, cols: slice) -> torch.Tensor:
        total = None
        for axis, cost in enumerate(self._axis_costs()):
            term = _place(cost, axis, len(self.grid_size))
            total = term if total is None else total + term
        assert total is not None
        n = self.shape[0]
        return total.reshape(1, n, n)[:, rows, cols]

    def _unscaled_statistics(self, which: str) -> torch.Tensor:
        # Over all (i, j) pairs the per-axis indices are independent and uniform, so means
        # and variances of the per-axis costs add up exactly.
        with torch.no_grad():
            costs = [c.reshape(-1) for c in self._axis_costs()]
            if which == "mean":
                value = sum(c.mean() for c in costs)
            elif which == "std":
                value = torch.sqrt(sum(c.var(correction=0) for c in costs))
            elif which == "max_cost":
                value = sum(c.amax() for c in costs)
            else:
                raise ValueError(f"{self._fn}: unknown statistic {which!r}")
            return torch.as_tensor(value, dtype=self.dtype, device=self.device).reshape(1)

    def _separable_lse(self, h: torch.Tensor, axis: int, eps: torch.Tensor,
                       log_kernels: Sequence[torch.Tensor]) -> torch.Tensor:
        """log sum_i exp(h_i / eps + sum_k log_kernels[k][i_k, j_k]), axis by axis (axis 0
        sums over the first index of every per-axis kernel, axis 1 over the second)."""
        values = (h / eps[:, None]).reshape(h.shape[0], *self.grid_size)
        for k, log_kernel in enumerate(log_kernels):
            kernel = log_kernel if axis == 0 else log_kernel.transpose(0, 1)
            moved = values.movedim(k + 1, -1)
            moved = torch.logsumexp(moved.unsqueeze(-1) + kernel, dim=-2)
            values = moved.movedim(-1, k + 1)
        return values.reshape(h.shape[0], -1)

    def _log_kernels(self, eps: torch.Tensor) -> list[torch.Tensor]:
        scale = self.cost_scale[0]
        return [-(cost / scale) / eps[0] for cost in self._axis_costs()]

    def lse(self, h: torch.Tensor, axis: int, eps: torch.Tensor) -> torch.Tensor:
        return self._separable_lse(h, axis, eps, self._log_kernels(eps)) * eps[:, None]

    def apply_plan(self, f: torch.Tensor | None, g: torch.Tensor | None, eps: torch.Tensor,
                   v: torch.Tensor, axis: int) -> torch.Tensor:
        # sum_j exp((f_i + g_j - C_ij)/eps) v_j through the separable log-domain kernel; a
        # signed v goes through it as its positive and negative parts
        vector = v.ndim == 2
        columns = v.unsqueeze(-1) if vector else v
        batch, n = v.shape[0], self.shape[0]
        zeros = torch.zeros(batch, n, dtype=v.dtype, device=v.device)
        f = zeros if f is None else f
        g = zeros if g is None else g
        inner, outer = (g, f) if axis == 1 else (f, g)
        log_kernels = self._log_kernels(eps)
        signed = bool((columns < 0).any())
        parts = ((1.0, columns.clamp_min(0)), (-1.0, (-columns).clamp_min(0))) if signed \
            else ((1.0, columns),)
        results = []
        for index in range(columns.shape[-1]):
            total = torch.zeros_like(outer)
            for sign, part in parts:
                shifted = inner + eps[:, None] * torch.log(part[..., index])
                log_sum = self._separable_lse(shifted, 1 - axis, eps, log_kernels)
                total = total + sign * torch.exp(outer / eps[:, None] + log_sum)
            results.append(total)
        out = torch.stack(results, dim=-1)
        return out.squeeze(-1) if vector else out

    def plan_cost(self, f: torch.Tensor, g: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        # sum_ij P_ij C_ij = sum_k sum_ij P_ij c_k(i_k, j_k): for each axis k, the kernel of
        # axis k is multiplied by c_k (log c_k added in the log domain; c_k >= 0 needed).
        scale = self.cost_scale[0]
        costs = [cost / scale for cost in self._axis_costs()]
        if any(bool((cost < 0).any()) for cost in costs):
            return super().plan_cost(f, g, eps)
        log_kernels = [-cost / eps[0] for cost in costs]
        total = torch.zeros(f.shape[0], dtype=f.dtype, device=f.device)
        for k, cost in enumerate(costs):
            kernels = list(log_kernels)
            kernels[k] = kernels[k] + torch.log(cost)
            log_sum = self._separable_lse(g, 1, eps, kernels)
            total = total + torch.exp(f / eps[:, None] + log_sum).sum(1)
        return total

    def _tensors(self) -> tuple[torch.Tensor, ...]:
        return self.x

    def _set_tensors(self, tensors: tuple[torch.Tensor, ...]) -> None:
        self.x = tuple(tensors)

    def compile_spec(self) -> str | None:
        specs = [cost.spec() if isinstance(cost, CostFn) else None for cost in self.cost_fns]
        if any(spec is None for spec in specs):
            return None
        return "grid|" + ",".join(specs)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"Grid({' x '.join(str(s) for s in self.grid_size)})"


def _place(cost: torch.Tensor, axis: int, dims: int) -> torch.Tensor:
    """View an (n_k, n_k) per-axis cost as broadcastable over (i_1..i_d, j_1..j_d)."""
    shape = [1] * (2 * dims)
    shape[axis] = cost.shape[0]
    shape[dims + axis] = cost.shape[1]
    return cost.reshape(shape)
