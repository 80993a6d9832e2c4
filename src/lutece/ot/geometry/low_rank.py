"""Costs given as low-rank factors: C = scale_factor * A B^T + bias (OTT's LRCGeometry)."""

from __future__ import annotations

import math

import torch

from .pointcloud import PointCloud

__all__ = ["LRCGeometry"]


class _FactorProduct:
    """(A, B) -> scale_factor * A B^T + bias, the cost of a low-rank geometry."""

    def __init__(self, scale_factor: float, bias: float) -> None:
        self.scale_factor = scale_factor
        self.bias = bias

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(torch.full((), self.bias, dtype=a.dtype, device=a.device)
                             .expand(a.shape[0], a.shape[1], b.shape[1]),
                             a, b.transpose(1, 2), alpha=self.scale_factor)

    def __repr__(self) -> str:
        return f"{self.scale_factor:g} * A B^T + {self.bias:g}"


class LRCGeometry(PointCloud):
    """A cost of rank r given by its factors: C = scale_factor * cost_1 cost_2^T + bias.

    Args:
        cost_1: (n, r) or (B, n, r) left factor.
        cost_2: (m, r) or (B, m, r) right factor.
        bias, scale_factor: numbers, as in OTT's ``LRCGeometry``.
        epsilon, relative_epsilon, scale_cost, batch_size: as for :class:`PointCloud`
            (``batch_size`` recomputes the cost from the factors block by block).

    :meth:`apply_cost` multiplies by C in O((n + m) r) without forming it, which is what
    low-rank solvers use; Sinkhorn's kernel exp(-C / epsilon) is not low-rank, so Sinkhorn
    materializes C (or tiles it in online mode).
    """

    _fn = "LRCGeometry"

    def __init__(self, cost_1: torch.Tensor, cost_2: torch.Tensor, bias: float = 0.0,
                 scale_factor: float = 1.0, epsilon: float | None = None,
                 relative_epsilon: str | None = None, scale_cost: float | str = 1.0,
                 batch_size: int | None = None) -> None:
        for name, value in (("bias", bias), ("scale_factor", scale_factor)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ValueError(f"{self._fn}: {name} must be a finite number, got {value!r}")
        super().__init__(cost_1, cost_2, cost_fn=_FactorProduct(float(scale_factor),
                                                                float(bias)),
                         epsilon=epsilon, relative_epsilon=relative_epsilon,
                         scale_cost=scale_cost, batch_size=batch_size)

    def compile_spec(self) -> str | None:
        fn = self.cost_fn
        return (f"lowrank|{int(self._batched)}|{self.batch_size or 0}|{fn.scale_factor!r}|"
                f"{fn.bias!r}")

    @property
    def cost_1(self) -> torch.Tensor:
        return self._squeeze(self.x)

    @property
    def cost_2(self) -> torch.Tensor:
        return self._squeeze(self.y)

    @property
    def rank(self) -> int:
        return self.x.shape[-1]

    def apply_cost(self, v: torch.Tensor, axis: int = 1) -> torch.Tensor:
        """C v (axis=1, v: (..., m[, k]) -> (..., n[, k])) or C^T v (axis=0, v on the rows),
        in O((n + m) r) operations, on the scaled cost."""
        batched = self.batched
        vector = v.ndim == (2 if batched else 1)
        v = v if batched else v.unsqueeze(0)
        v = v.unsqueeze(-1) if vector else v
        factor_in, factor_out = (self.y, self.x) if axis == 1 else (self.x, self.y)
        if v.shape[1] != factor_in.shape[1]:
            raise ValueError(f"{self._fn}.apply_cost: v has {v.shape[1]} entries along the "
                             f"applied axis, expected {factor_in.shape[1]}")
        fn = self.cost_fn
        out = fn.scale_factor * (factor_out @ (factor_in.transpose(1, 2) @ v)) \
            + fn.bias * v.sum(1, keepdim=True)
        out = out / self.cost_scale[:, None, None]
        out = out.squeeze(-1) if vector else out
        return self._squeeze(out)
