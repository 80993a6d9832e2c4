"""The debiased Sinkhorn divergence (Ramdas et al. 2017; Genevay et al. 2018; Feydy et al.
2019): S(a, b) = OT_eps(a, b) - (OT_eps(a, a) + OT_eps(b, b)) / 2, with OT_eps the regularized
cost <C, P> + eps KL(P | a b^T). For the squared-Euclidean and Euclidean costs (positive
universal Gibbs kernels) S >= 0 with equality iff the measures are equal (Feydy et al. 2019,
Thm. 1), and S interpolates between OT (eps -> 0) and MMD (eps -> inf)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..geometry import PointCloud
from ..problems import LinearProblem
from ..solvers.sinkhorn import SinkhornOutput, sinkhorn

__all__ = ["sinkhorn_divergence"]


def sinkhorn_divergence(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor | None = None,
                        b: torch.Tensor | None = None, *,
                        cost_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
                        | None = None,
                        epsilon: float | None = None, relative_epsilon: str | None = None,
                        scale_cost: float | str = 1.0, batch_size: int | None = None,
                        return_outputs: bool = False, **sinkhorn_kwargs: Any
                        ) -> torch.Tensor | tuple[torch.Tensor, tuple[SinkhornOutput, ...]]:
    """Debiased Sinkhorn divergence between two weighted point clouds.

    Args:
        x: (n, d) or (B, n, d); y: (m, d) or (B, m, d).
        a, b: weights, uniform by default (balanced: equal masses).
        cost_fn, epsilon, relative_epsilon, scale_cost, batch_size: as for
            :class:`~lutece.ot.geometry.PointCloud`. Epsilon (and a statistic-based scale)
            is resolved on the x-y cost and shared by the three problems, as OTT does.
        return_outputs: also return the three :class:`SinkhornOutput` (xy, xx, yy).
        **sinkhorn_kwargs: passed to :func:`~lutece.ot.sinkhorn` (threshold, ...).

    Returns:
        S, () or (B,), differentiable w.r.t. x, y, a and b.
    """
    geom_xy = PointCloud(x, y, cost_fn=cost_fn, epsilon=epsilon,
                         relative_epsilon=relative_epsilon, scale_cost=scale_cost,
                         batch_size=batch_size)
    eps = geom_xy.epsilon_
    scale = geom_xy.cost_scale

    def shared(points: torch.Tensor) -> PointCloud:
        geom = PointCloud(points, cost_fn=cost_fn, batch_size=batch_size,
                          epsilon=1.0)  # placeholder, replaced by the shared values below
        geom._epsilon = eps
        geom._scale = scale
        geom._scale_cost_arg = geom_xy._scale_cost_arg
        return geom

    out_xy = sinkhorn(LinearProblem(geom_xy, a, b), **sinkhorn_kwargs)
    out_xx = sinkhorn(LinearProblem(shared(x), a, a), **sinkhorn_kwargs)
    out_yy = sinkhorn(LinearProblem(shared(y), b, b), **sinkhorn_kwargs)
    divergence = out_xy.reg_ot_cost - 0.5 * (out_xx.reg_ot_cost + out_yy.reg_ot_cost)
    if return_outputs:
        return divergence, (out_xy, out_xx, out_yy)
    return divergence
