"""Tools built on the solvers: the Sinkhorn divergence (soft sorting and quantiles join with
the OT extensions)."""

from .divergence import sinkhorn_divergence

__all__ = ["sinkhorn_divergence"]
