"""The debiased Sinkhorn divergence (Ramdas et al. 2017; Genevay et al. 2018; Feydy et al.
2019): S(a, b) = OT_eps(a, b) - (OT_eps(a, a) + OT_eps(b, b)) / 2, with OT_eps the regularized
cost <C, P> + eps KL(P | a b^T). For the squared-Euclidean and Euclidean costs (positive
universal Gibbs kernels) S >= 0 with equality iff the measures are equal (Feydy et al. 2019,
Thm. 1), and S interpolates between OT (eps -> 0) and MMD (eps -> inf).

The two self-transport terms are symmetric problems whose optimal potentials coincide
(f = g); they are solved by the averaged symmetric update f <- (f + T(f)) / 2 (Feydy et al.
2019, eq. 25; OTT's ``symmetric_sinkhorn``), which converges in a few iterations where the
plain alternating updates oscillate, and then handed to :func:`~lutece.ot.sinkhorn` as a warm
start so that their gradients are the usual implicit ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..geometry import PointCloud
from ..problems import LinearProblem
from ..solvers.sinkhorn import SinkhornOutput, sinkhorn

__all__ = ["sinkhorn_divergence"]


def _symmetric_potential(geom: PointCloud, weights: torch.Tensor, threshold: float,
                         max_iterations: int) -> torch.Tensor:
    """f with f_i = eps log a_i - eps log sum_j exp((f_j - C_ij) / eps), by averaged
    updates; weights (B, n). Stops when the L1 marginal error is below ``threshold``."""
    eps = geom.epsilon_
    e = eps[:, None]
    log_weights = torch.log(weights)
    with torch.no_grad():
        detached = geom._with_tensors(tuple(t.detach() for t in geom._tensors()))
        f = torch.zeros_like(weights)
        soft_min = detached.lse(f, 1, eps)
        for _ in range(max_iterations):
            f = torch.where(weights > 0, 0.5 * (f + e * log_weights - soft_min), -math.inf)
            # one reduction serves this iteration's error and the next update
            soft_min = detached.lse(f, 1, eps)
            marginal = torch.exp((f + soft_min) / e)
            error = (marginal - weights).abs().sum(-1).max()
            if float(error) < threshold:
                break
    return f


def sinkhorn_divergence(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor | None = None,
                        b: torch.Tensor | None = None, *,
                        cost_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
                        | None = None,
                        epsilon: float | None = None, relative_epsilon: str | None = None,
                        scale_cost: float | str = 1.0, batch_size: int | None = None,
                        symmetric_sinkhorn: bool = True, return_outputs: bool = False,
                        **sinkhorn_kwargs: Any
                        ) -> torch.Tensor | tuple[torch.Tensor, tuple[SinkhornOutput, ...]]:
    """Debiased Sinkhorn divergence between two weighted point clouds.

    Args:
        x: (n, d) or (B, n, d); y: (m, d) or (B, m, d).
        a, b: weights, uniform by default (balanced: equal masses).
        cost_fn, epsilon, relative_epsilon, scale_cost, batch_size: as for
            :class:`~lutece.ot.geometry.PointCloud`. Epsilon (and a statistic-based scale)
            is resolved on the x-y cost and shared by the three problems, as OTT does.
        symmetric_sinkhorn: solve the two self-transport terms by averaged symmetric updates
            (default), or as ordinary problems.
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
    outputs = [out_xy]
    for points, weights in ((x, a), (y, b)):
        geom = shared(points)
        problem = LinearProblem(geom, weights, weights)
        if symmetric_sinkhorn:
            options = dict(sinkhorn_kwargs)
            potential = _symmetric_potential(geom, problem.a, options.get("threshold", 1e-3),
                                             options.get("max_iterations", 2000))
            start = potential if geom.batched else potential.squeeze(0)
            options.update(init=(start, start), inner_iterations=1)
            outputs.append(sinkhorn(problem, **options))
        else:
            outputs.append(sinkhorn(problem, **sinkhorn_kwargs))
    _, out_xx, out_yy = outputs
    divergence = out_xy.reg_ot_cost - 0.5 * (out_xx.reg_ot_cost + out_yy.reg_ot_cost)
    if return_outputs:
        return divergence, (out_xy, out_xx, out_yy)
    return divergence
