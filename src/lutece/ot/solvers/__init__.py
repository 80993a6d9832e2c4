"""Solvers: Sinkhorn (entropic), low-rank Sinkhorn, the exact network simplex and entropic
(fused) Gromov-Wasserstein."""

from ._implicit import ImplicitOptions
from .exact import ExactOTOutput, exact_ot
from .gromov import GWOutput, gromov_wasserstein
from .low_rank import LRSinkhornOutput, low_rank_sinkhorn
from .sinkhorn import SinkhornOutput, sinkhorn

__all__ = ["sinkhorn", "SinkhornOutput", "ImplicitOptions", "exact_ot", "ExactOTOutput",
           "gromov_wasserstein", "GWOutput", "low_rank_sinkhorn", "LRSinkhornOutput"]
