"""Point clouds: the cost is c(x_i, y_j), materialized once or recomputed block by block."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from ..._validation import check_finite, check_floating, check_tensor
from ..costs import Cosine, CostFn, SqEuclidean
from .base import Geometry

__all__ = ["PointCloud"]

CostCallable = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class PointCloud(Geometry):
    """The cost between two point clouds, c(x_i, y_j).

    Args:
        x: (n, d) or (B, n, d) source points.
        y: (m, d) or (B, m, d) target points; ``None`` means y = x.
        cost_fn: a :mod:`lutece.ot.costs` cost or any callable (x, y) -> (..., n, m).
        epsilon, relative_epsilon, scale_cost: as for :class:`Geometry`.
        batch_size: ``None`` materializes the (n, m) cost once. An int switches to online
            mode: every kernel operation recomputes the cost in (batch_size x batch_size)
            blocks, so memory is O(B (n + m) + batch_size^2) and n x m is never stored
            (OTT's ``batch_size``; GeomLoss's "online" backend).
    """

    _fn = "PointCloud"

    def __init__(self, x: torch.Tensor, y: torch.Tensor | None = None,
                 cost_fn: CostCallable | None = None, epsilon: float | None = None,
                 relative_epsilon: str | None = None, scale_cost: float | str = 1.0,
                 batch_size: int | None = None) -> None:
        fn = self._fn
        x = check_tensor(fn, "x", x, min_ndim=2)
        check_floating(fn, "x", x)
        y = x if y is None else check_tensor(fn, "y", y, min_ndim=2)
        check_floating(fn, "y", y)
        if x.ndim > 3 or y.ndim != x.ndim:
            raise ValueError(f"{fn}: x and y must both be (n, d) or both (B, n, d), got shapes "
                             f"{tuple(x.shape)} and {tuple(y.shape)}")
        if x.shape[-1] != y.shape[-1]:
            raise ValueError(f"{fn}: x and y must have the same feature dimension, got "
                             f"d = {x.shape[-1]} for x and d = {y.shape[-1]} for y")
        if x.ndim == 3 and x.shape[0] != y.shape[0]:
            raise ValueError(f"{fn}: x and y must have the same batch size, got "
                             f"{x.shape[0]} and {y.shape[0]}")
        if x.dtype != y.dtype:
            raise TypeError(f"{fn}: x and y must have the same dtype, got {x.dtype} and "
                            f"{y.dtype}")
        if x.shape[-2] == 0 or y.shape[-2] == 0:
            raise ValueError(f"{fn}: x and y need at least one point each, got n = "
                             f"{x.shape[-2]}, m = {y.shape[-2]}")
        check_finite(fn, "x", x)
        check_finite(fn, "y", y)
        if cost_fn is None:
            cost_fn = SqEuclidean()
        if not callable(cost_fn):
            raise TypeError(f"{fn}: cost_fn must be a cost (lutece.ot.costs) or a callable "
                            f"(x, y) -> cost matrix, got {type(cost_fn).__name__}")
        if isinstance(cost_fn, Cosine):
            for name, points in (("x", x), ("y", y)):
                if bool((points.norm(dim=-1) == 0).any()):
                    raise ValueError(f"{fn}: the Cosine cost is undefined for zero vectors, "
                                     f"and {name} has some")
        if batch_size is not None and (isinstance(batch_size, bool)
                                       or not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"{fn}: batch_size must be a positive int or None, got "
                             f"{batch_size!r}")
        self._batched = x.ndim == 3
        self.x = x if self._batched else x.unsqueeze(0)
        self.y = y if self._batched else y.unsqueeze(0)
        self.cost_fn = cost_fn
        self.batch_size = batch_size
        self._init_regularization(epsilon, relative_epsilon, scale_cost)

    @property
    def num_problems(self) -> int:
        return self.x.shape[0]

    @property
    def shape(self) -> tuple[int, int]:
        return self.x.shape[1], self.y.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.x.dtype

    @property
    def device(self) -> torch.device:
        return self.x.device

    @property
    def is_online(self) -> bool:
        return self.batch_size is not None

    def _unscaled_block(self, rows: slice, cols: slice) -> torch.Tensor:
        cost = self.cost_fn(self.x[:, rows], self.y[:, cols])
        expected = (self.num_problems, rows.stop - rows.start, cols.stop - cols.start)
        if tuple(cost.shape) != expected:
            raise ValueError(f"{self._fn}: cost_fn returned shape {tuple(cost.shape)} for "
                             f"blocks of {expected[1]} and {expected[2]} points; it must "
                             f"return (..., n, m)")
        return cost

    def _block(self, rows: slice, cols: slice) -> torch.Tensor:
        n, m = self.shape
        if not self.is_online and self._cost_cache is not None:
            return self._cost_cache[:, rows, cols]
        block = super()._block(rows, cols)
        if not self.is_online and (rows.stop - rows.start, cols.stop - cols.start) == (n, m):
            self._cost_cache = block
        return block

    def _log_kernel_block(self, f: torch.Tensor | None, g: torch.Tensor | None,
                          eps: torch.Tensor, rows: slice, cols: slice,
                          out: torch.Tensor | None = None) -> torch.Tensor:
        if not self._fuses_log_kernel():
            return super()._log_kernel_block(f, g, eps, rows, cols, out)
        # (f_i + g_j - |x_i - y_j|^2 / s) / eps is bilinear in augmented points:
        # <[2 x_i / (s eps), (f_i - |x_i|^2 / s) / eps, 1], [y_j, 1, (g_j - |y_j|^2 / s) / eps]>,
        # so the whole block is one matrix product, without forming the cost. Centring both
        # clouds first (the cost is translation invariant) limits the cancellation of the
        # expansion.
        x, y = self.x[:, rows], self.y[:, cols]
        center = y.mean(1, keepdim=True)
        x, y = x - center, y - center
        inverse = (self.cost_scale * eps).reciprocal()[:, None]        # 1 / (s eps), (B, 1)
        row_term = -x.pow(2).sum(-1) * inverse
        col_term = -y.pow(2).sum(-1) * inverse
        if f is not None:
            row_term = row_term + f[:, rows] / eps[:, None]
        if g is not None:
            col_term = col_term + g[:, cols] / eps[:, None]
        left = torch.cat([x * (2 * inverse)[..., None], row_term[..., None],
                          torch.ones_like(row_term)[..., None]], dim=-1)
        right = torch.cat([y, torch.ones_like(col_term)[..., None], col_term[..., None]],
                          dim=-1)
        if out is None:  # (an explicit out=None is not differentiable under torch.compile)
            return torch.bmm(left, right.transpose(1, 2))
        return torch.bmm(left, right.transpose(1, 2), out=out)

    def _fuses_log_kernel(self) -> bool:
        """Whether kernel blocks come from one product of augmented points (squared
        Euclidean cost) rather than from the cost matrix: always online, and in dense mode
        for low dimensions (where the product is cheaper than reading a stored cost) as long
        as the cost has not been materialized anyway."""
        if type(self.cost_fn) is not SqEuclidean:
            return False
        return self.is_online or (self._cost_cache is None and self.x.shape[-1] <= 32)

    def _blocks(self) -> Iterator[tuple[slice, slice]]:
        n, m = self.shape
        if not self.is_online:
            yield slice(0, n), slice(0, m)
            return
        size = self.batch_size
        assert size is not None
        for start_row in range(0, n, size):
            for start_col in range(0, m, size):
                yield (slice(start_row, min(start_row + size, n)),
                       slice(start_col, min(start_col + size, m)))

    def _tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.x, self.y)

    def _set_tensors(self, tensors: tuple[torch.Tensor, ...]) -> None:
        self.x, self.y = tensors

    def compile_spec(self) -> str | None:
        cost = self.cost_fn.spec() if isinstance(self.cost_fn, CostFn) else None
        if cost is None:
            return None
        return f"pointcloud|{int(self._batched)}|{self.batch_size or 0}|{cost}"

    def __repr__(self) -> str:
        batch = f"{self.num_problems} x " if self._batched else ""
        mode = f", online batch_size={self.batch_size}" if self.is_online else ""
        return (f"PointCloud({batch}{self.shape[0]} x {self.shape[1]} points in "
                f"d={self.x.shape[-1]}, cost_fn={self.cost_fn!r}{mode})")
