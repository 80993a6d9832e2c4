"""Optimal transport toolbox (result 3: Cuturi et al. 2022, "Optimal Transport Tools").

Geometry is kept apart from solvers: a geometry (dense cost, point cloud dense or online,
separable grid, low-rank cost) says how the Gibbs kernel is applied; :func:`sinkhorn` solves
any :class:`LinearProblem` on any geometry, batched, log-domain by default, differentiable by
implicit differentiation. :func:`exact_ot` wraps POT's network simplex. Beyond the core:
barycenters (:func:`fixed_support_barycenter` by iterative Bregman projections, debiased
option; :func:`free_support_barycenter`), Gaussians and mixtures (:func:`gaussian_w2`,
:func:`gaussian_map`, :class:`GaussianMixture`, :func:`gmm_w2`), entropic and fused
Gromov-Wasserstein (:func:`gromov_wasserstein`), low-rank Sinkhorn and GW
(:func:`low_rank_sinkhorn`, :func:`low_rank_gromov_wasserstein`, linear in n for factored
costs), Monge maps as gradients of
input-convex networks (:class:`ICNN`, :func:`fit_monge_map`) and soft sorting by OT
(:mod:`lutece.ot.tools.soft_sort`: ``sort``, ``ranks``, ``quantile``,
``quantile_normalization``, ``topk_mask``).
"""

from . import costs
from .barycenter import (
    BarycenterOutput,
    FreeSupportOutput,
    fixed_support_barycenter,
    free_support_barycenter,
)
from .costs import Cosine, CostFn, Euclidean, PNorm, SqEuclidean
from .gaussian import GaussianMixture, apply_gaussian_map, gaussian_map, gaussian_w2, gmm_w2
from .geometry import Geometry, Grid, LRCGeometry, PointCloud
from .neural import ICNN, MongeMap, fit_monge_map
from .problems import LinearProblem
from .solvers import (
    ExactOTOutput,
    GWOutput,
    ImplicitOptions,
    LowRankCoupling,
    LRGWOutput,
    LRSinkhornOutput,
    SinkhornOutput,
    exact_ot,
    gromov_wasserstein,
    low_rank_gromov_wasserstein,
    low_rank_sinkhorn,
    sinkhorn,
)
from .tools import sinkhorn_divergence, soft_sort

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
    "fixed_support_barycenter",
    "free_support_barycenter",
    "BarycenterOutput",
    "FreeSupportOutput",
    "gaussian_w2",
    "gaussian_map",
    "apply_gaussian_map",
    "GaussianMixture",
    "gmm_w2",
    "gromov_wasserstein",
    "GWOutput",
    "soft_sort",
    "low_rank_sinkhorn",
    "LRSinkhornOutput",
    "LowRankCoupling",
    "low_rank_gromov_wasserstein",
    "LRGWOutput",
    "ICNN",
    "MongeMap",
    "fit_monge_map",
]
