"""Solvers: Sinkhorn (entropic), low-rank Sinkhorn, the exact network simplex, entropic
(fused) Gromov-Wasserstein and low-rank (fused) Gromov-Wasserstein."""

from ._implicit import ImplicitOptions
from .exact import ExactOTOutput, exact_ot
from .gromov import GWOutput, gromov_wasserstein
from .low_rank import LowRankCoupling, LRSinkhornOutput, low_rank_sinkhorn
from .low_rank_gromov import LRGWOutput, low_rank_gromov_wasserstein
from .sinkhorn import SinkhornOutput, sinkhorn

__all__ = ["sinkhorn", "SinkhornOutput", "ImplicitOptions", "exact_ot", "ExactOTOutput",
           "gromov_wasserstein", "GWOutput", "low_rank_sinkhorn", "LRSinkhornOutput",
           "LowRankCoupling", "low_rank_gromov_wasserstein", "LRGWOutput"]
