"""The dense geometry: a cost matrix, its entropic regularization, and the kernel operations
every solver is written against (Cuturi et al. 2022, OTT's geometry / solver split).

Shapes: a geometry holds one problem, cost (n, m), or a batch of them, cost (B, n, m).
Internally everything carries the batch dimension (B = 1 when unbatched); vectors on the
rows are (B, n), on the columns (B, m). Subclasses (point clouds, grids, low-rank costs)
change how the cost is produced and how the kernel is applied, never the solvers.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import torch

from ..._validation import check_choice, check_finite, check_floating, check_tensor
from .._numerics import stable_exp, stable_logsumexp

__all__ = ["Geometry", "DEFAULT_EPSILON_SCALE"]

#: epsilon = DEFAULT_EPSILON_SCALE x std(cost) when no epsilon is given (OTT's default since
#: ott-jax PR #578: in log-domain Sinkhorn, adding a constant to the cost should not change
#: epsilon, which the older mean(cost) / 20 default did).
DEFAULT_EPSILON_SCALE = 0.05

_SCALE_STATISTICS = ("mean", "max_cost", "median", "std")


def _check_positive_number(fn: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{fn}: {name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{fn}: {name} must be > 0 and finite, got {value}")
    return float(value)


class Geometry:
    """A cost matrix C with an entropic regularization epsilon.

    Args:
        cost_matrix: (n, m) or (B, n, m) floating tensor, finite.
        epsilon: the entropic regularization. ``None`` gives 0.05 x std(C) (computed per
            problem of a batch, without gradient); a float is absolute, unless
            ``relative_epsilon`` is "mean" or "std", which makes it a multiple of mean(C) or
            std(C) (``epsilon=None`` then means 0.05 x that statistic).
        relative_epsilon: None, "mean" or "std".
        scale_cost: the cost is divided by this: a positive float, or "mean", "max_cost",
            "median" or "std" of the cost (per problem, without gradient). Epsilon is resolved
            on the scaled cost.
    """

    _fn = "Geometry"

    def __init__(self, cost_matrix: torch.Tensor, epsilon: float | None = None,
                 relative_epsilon: str | None = None,
                 scale_cost: float | str = 1.0) -> None:
        fn = self._fn
        cost_matrix = check_tensor(fn, "cost_matrix", cost_matrix, min_ndim=2)
        check_floating(fn, "cost_matrix", cost_matrix)
        if cost_matrix.ndim > 3:
            raise ValueError(f"{fn}: cost_matrix must be (n, m) or (B, n, m), got shape "
                             f"{tuple(cost_matrix.shape)}")
        check_finite(fn, "cost_matrix", cost_matrix)
        self._batched = cost_matrix.ndim == 3
        self._raw_cost = cost_matrix if self._batched else cost_matrix.unsqueeze(0)
        self._init_regularization(epsilon, relative_epsilon, scale_cost)

    # ------------------------------------------------------------------ configuration
    def _init_regularization(self, epsilon: object, relative_epsilon: object,
                             scale_cost: object) -> None:
        fn = self._fn
        if epsilon is not None:
            epsilon = _check_positive_number(fn, "epsilon", epsilon)
        check_choice(fn, "relative_epsilon", relative_epsilon, (None, "mean", "std"))
        if isinstance(scale_cost, str):
            check_choice(fn, "scale_cost", scale_cost, _SCALE_STATISTICS)
        else:
            scale_cost = _check_positive_number(fn, "scale_cost", scale_cost)
        self._epsilon_arg = epsilon
        self._relative_epsilon = relative_epsilon
        self._scale_cost_arg = scale_cost
        self._scale: torch.Tensor | None = None     # (B,), resolved lazily
        self._epsilon: torch.Tensor | None = None   # (B,), resolved lazily
        self._cost_cache: torch.Tensor | None = None

    @property
    def batched(self) -> bool:
        """Whether the geometry holds a batch of problems (leading dimension B)."""
        return self._batched

    @property
    def num_problems(self) -> int:
        return self._raw_cost.shape[0]

    @property
    def shape(self) -> tuple[int, int]:
        """(n, m): the number of source and target points."""
        return tuple(self._raw_cost.shape[-2:])  # type: ignore[return-value]

    @property
    def dtype(self) -> torch.dtype:
        return self._raw_cost.dtype

    @property
    def device(self) -> torch.device:
        return self._raw_cost.device

    @property
    def is_online(self) -> bool:
        """True when the cost is recomputed block by block and never materialized."""
        return False

    # ------------------------------------------------------------------ the cost
    def _unscaled_block(self, rows: slice, cols: slice) -> torch.Tensor:
        """(B, r, c) block of the cost before scaling; subclasses override."""
        return self._raw_cost[:, rows, cols]

    def _block(self, rows: slice, cols: slice) -> torch.Tensor:
        """(B, r, c) block of the scaled cost, differentiable w.r.t. the geometry's data."""
        block = self._unscaled_block(rows, cols)
        if isinstance(self._scale_cost_arg, float) and self._scale_cost_arg == 1.0:
            return block
        return block / self.cost_scale[:, None, None]

    def _blocks(self) -> Iterator[tuple[slice, slice]]:
        """The tiling of the cost matrix used by kernel operations: one block when dense."""
        n, m = self.shape
        yield slice(0, n), slice(0, m)

    @property
    def cost_matrix(self) -> torch.Tensor:
        """The scaled cost, (n, m) or (B, n, m); materialized (and cached) on first use."""
        return self._squeeze(self._full_cost())

    def _full_cost(self) -> torch.Tensor:
        if self._cost_cache is None:
            n, m = self.shape
            self._cost_cache = self._block(slice(0, n), slice(0, m))
        return self._cost_cache

    def _unscaled_statistics(self, which: str) -> torch.Tensor:
        """A statistic of the unscaled cost per problem, (B,), without gradient."""
        with torch.no_grad():
            n, m = self.shape
            if not self.is_online:
                cost = self._unscaled_block(slice(0, n), slice(0, m)).reshape(
                    self.num_problems, -1)
                if which == "mean":
                    return cost.mean(1)
                if which == "std":
                    return cost.std(1, correction=0)
                if which == "max_cost":
                    return cost.amax(1)
                return cost.quantile(0.5, dim=1) if cost.shape[1] <= 2**24 else \
                    cost.double().median(1).values.to(cost.dtype)
            if which == "median":
                raise ValueError(f"{self._fn}: scale_cost='median' needs the whole cost "
                                 "matrix; it is not available in online mode (batch_size)")
            total = torch.zeros(self.num_problems, dtype=torch.float64, device=self.device)
            total_sq = torch.zeros_like(total)
            largest = torch.full_like(total, -math.inf)
            for rows, cols in self._blocks():
                block = self._unscaled_block(rows, cols).double().flatten(1)
                total += block.sum(1)
                total_sq += block.pow(2).sum(1)
                largest = torch.maximum(largest, block.amax(1))
            count = n * m
            mean = total / count
            if which == "mean":
                return mean.to(self.dtype)
            if which == "max_cost":
                return largest.to(self.dtype)
            return (total_sq / count - mean.pow(2)).clamp_min(0).sqrt().to(self.dtype)

    @property
    def cost_scale(self) -> torch.Tensor:
        """(B,) the divisor applied to the cost (1 unless ``scale_cost`` says otherwise)."""
        if self._scale is None:
            arg = self._scale_cost_arg
            if isinstance(arg, str):
                scale = self._unscaled_statistics(arg)
                if bool((scale <= 0).any()):
                    raise ValueError(f"{self._fn}: scale_cost={arg!r} is 0 for this cost, so "
                                     "it cannot divide it; pass a number instead")
            else:
                scale = torch.full((self.num_problems,), arg, dtype=self.dtype,
                                   device=self.device)
            self._scale = scale
        return self._scale

    def _scaled_statistics(self, which: str) -> torch.Tensor:
        return self._unscaled_statistics(which) / self.cost_scale

    # ------------------------------------------------------------------ epsilon
    @property
    def epsilon_(self) -> torch.Tensor:
        """(B,) the resolved entropic regularization of each problem (no gradient)."""
        if self._epsilon is None:
            arg, relative = self._epsilon_arg, self._relative_epsilon
            if relative is None and arg is not None:
                epsilon = torch.full((self.num_problems,), arg, dtype=self.dtype,
                                     device=self.device)
            else:
                statistic = self._scaled_statistics(relative or "std")
                epsilon = (DEFAULT_EPSILON_SCALE if arg is None else arg) * statistic
                if bool((epsilon <= 0).any()):
                    raise ValueError(
                        f"{self._fn}: epsilon resolved to 0 because the cost's "
                        f"{relative or 'std'} is 0 (a constant cost); pass epsilon= explicitly")
            self._epsilon = epsilon
        return self._epsilon

    @property
    def epsilon(self) -> float | torch.Tensor:
        """The resolved epsilon: a float for one problem, a (B,) tensor for a batch."""
        return self.epsilon_ if self._batched else float(self.epsilon_[0])

    def _squeeze(self, value: torch.Tensor) -> torch.Tensor:
        return value if self._batched else value.squeeze(0)

    # ------------------------------------------------------------------ kernel operations
    def _log_kernel_block(self, f: torch.Tensor | None, g: torch.Tensor | None,
                          eps: torch.Tensor, rows: slice, cols: slice,
                          out: torch.Tensor | None = None) -> torch.Tensor:
        """(B, r, c) block of (f_i + g_j - C_ij) / eps: the log of the plan at potentials
        (f, g), or of the Gibbs kernel when both are ``None`` (zero). f is (B, n) and g (B, m)
        over the whole problem (sliced here); -inf entries give -inf rows or columns.
        ``out``, for callers that need no gradient, receives the result in place."""
        cost = self._block(rows, cols)
        inverse = eps.reciprocal()
        if out is None:
            value = cost * (-inverse)[:, None, None]
        else:
            value = torch.mul(cost, (-inverse)[:, None, None], out=out)
        for potential, index, axis in ((f, rows, 2), (g, cols, 1)):
            if potential is not None:
                term = (potential[:, index] * inverse[:, None]).unsqueeze(axis)
                value = value.add_(term) if out is not None else value + term
        return value

    def lse(self, h: torch.Tensor, axis: int, eps: torch.Tensor) -> torch.Tensor:
        """Soft-min reduction of the cost against a potential, in the log domain.

        axis = 0: h on the rows (B, n) -> (B, m), out_j = eps log sum_i exp((h_i - C_ij)/eps);
        axis = 1: h on the columns (B, m) -> (B, n), out_i = eps log sum_j exp((h_j - C_ij)/eps).
        ``eps`` is (B,). This is the Sinkhorn update of Cuturi 2013 in log form (Peyre &
        Cuturi 2019, eq. 4.43), computed block by block in online mode.
        """
        # running log-sum-exp per block of the output axis, combined out of place so that
        # unrolled differentiation can go through it
        parts: dict[tuple[int, int], torch.Tensor] = {}
        for rows, cols in self._blocks():
            if axis == 0:
                part = stable_logsumexp(self._log_kernel_block(h, None, eps, rows, cols), 1)
                key = (cols.start, cols.stop)
            else:
                part = stable_logsumexp(self._log_kernel_block(None, h, eps, rows, cols), 2)
                key = (rows.start, rows.stop)
            parts[key] = part if key not in parts else torch.logaddexp(parts[key], part)
        ordered = [parts[key] for key in sorted(parts)]
        out = ordered[0] if len(ordered) == 1 else torch.cat(ordered, dim=1)
        return out * eps[:, None]

    def plan_block(self, f: torch.Tensor, g: torch.Tensor, eps: torch.Tensor, rows: slice,
                   cols: slice) -> torch.Tensor:
        """(B, r, c) block of the plan P_ij = exp((f_i + g_j - C_ij) / eps)."""
        return stable_exp(self._log_kernel_block(f, g, eps, rows, cols),
                          inplace=not torch.is_grad_enabled())

    def apply_plan(self, f: torch.Tensor | None, g: torch.Tensor | None, eps: torch.Tensor,
                   v: torch.Tensor, axis: int) -> torch.Tensor:
        """Apply the plan at potentials (f, g) to ``v`` without materializing it (block by
        block online); ``None`` potentials are zero, i.e. the Gibbs kernel is applied.

        axis = 1: v (B, m) or (B, m, k) -> (B, n[, k]), sum_j P_ij v_j;
        axis = 0: v (B, n) or (B, n, k) -> (B, m[, k]), sum_i P_ij v_i.
        """
        vector = v.ndim == 2
        if vector:
            v = v.unsqueeze(-1)
        n, m = self.shape
        parts = []
        reuse = not torch.is_grad_enabled()
        buffer: torch.Tensor | None = None
        for rows, cols in self._blocks():
            if reuse:
                # one buffer for every block (online mode: no allocation per block)
                size = v.shape[0] * (rows.stop - rows.start) * (cols.stop - cols.start)
                if buffer is None or buffer.numel() < size:
                    buffer = v.new_empty(size)
                block = buffer[:size].view(v.shape[0], rows.stop - rows.start,
                                           cols.stop - cols.start)
                plan = stable_exp(self._log_kernel_block(f, g, eps, rows, cols, out=block),
                                  inplace=True)
            else:
                plan = self.plan_block(f, g, eps, rows, cols)
            if axis == 1:
                parts.append((rows, plan @ v[:, cols]))
            else:
                parts.append((cols, plan.transpose(1, 2) @ v[:, rows]))
        if len(parts) == 1:
            out = parts[0][1]
        else:
            out = v.new_zeros((v.shape[0], n if axis == 1 else m, v.shape[-1]))
            for index, part in parts:
                out[:, index] += part
        return out.squeeze(-1) if vector else out

    def plan_cost(self, f: torch.Tensor, g: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """(B,) sum_ij P_ij C_ij, the transport cost of the plan."""
        total = None
        for rows, cols in self._blocks():
            cost = self._block(rows, cols)
            plan = self.plan_block(f, g, eps, rows, cols)
            part = (plan * cost).sum((1, 2))
            total = part if total is None else total + part
        assert total is not None
        return total

    def plan_matrix(self, f: torch.Tensor, g: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """(B, n, m) the materialized plan."""
        n, m = self.shape
        return self.plan_block(f, g, eps, slice(0, n), slice(0, m))

    # ------------------------------------------------------------------ autograd support
    def _tensors(self) -> tuple[torch.Tensor, ...]:
        """The tensors the cost is a differentiable function of."""
        return (self._raw_cost,)

    def _set_tensors(self, tensors: tuple[torch.Tensor, ...]) -> None:
        (self._raw_cost,) = tensors

    def _with_tensors(self, tensors: tuple[torch.Tensor, ...]) -> Geometry:
        """A copy of this geometry on other tensors, keeping the resolved epsilon and scale
        (implicit differentiation rebuilds the cost with gradients enabled)."""
        self.epsilon_  # noqa: B018 - resolve before copying
        _ = self.cost_scale
        clone = copy.copy(self)
        clone._cost_cache = None
        clone._set_tensors(tensors)
        return clone

    def compile_spec(self) -> str | None:
        """A string that rebuilds this geometry around ``_tensors()`` (see
        :func:`~lutece.ot.geometry.spec.geometry_from_spec`), so that compiled code can pass
        a geometry to an opaque operator; None when a string cannot carry it."""
        return f"dense|{int(self._batched)}"

    def __repr__(self) -> str:
        batch = f"{self.num_problems} x " if self._batched else ""
        return f"{type(self).__name__}({batch}{self.shape[0]} x {self.shape[1]})"

