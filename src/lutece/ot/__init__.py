"""Optimal transport toolbox (result 3: Cuturi et al. 2022, "Optimal Transport Tools").

Geometry is kept apart from solvers: a geometry (dense cost, point cloud dense or online,
separable grid, low-rank cost) says how the Gibbs kernel is applied; :func:`sinkhorn` solves
any :class:`LinearProblem` on any geometry, batched, log-domain by default, differentiable by
implicit differentiation. :func:`exact_ot` wraps POT's network simplex.
"""

from . import costs
from .costs import Cosine, CostFn, Euclidean, PNorm, SqEuclidean
from .geometry import Geometry, Grid, LRCGeometry, PointCloud
from .problems import LinearProblem
from .solvers import (
    ExactOTOutput,
    ImplicitOptions,
    SinkhornOutput,
    exact_ot,
    sinkhorn,
)
from .tools import sinkhorn_divergence

__all__ = [
    "costs",
    "CostFn",
    "SqEuclidean",
    "Euclidean",
    "PNorm",
    "Cosine",
    "Geometry",
    "PointCloud",
    "Grid",
    "LRCGeometry",
    "LinearProblem",
    "sinkhorn",
    "SinkhornOutput",
    "ImplicitOptions",
    "exact_ot",
    "ExactOTOutput",
    "sinkhorn_divergence",
]
