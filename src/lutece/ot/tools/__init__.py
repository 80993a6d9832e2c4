"""Tools built on the solvers: the Sinkhorn divergence and soft sorting, ranks, quantiles and
top-k masks by optimal transport (Cuturi, Teboul & Vert 2019; :mod:`.soft_sort`, whose
functions are used as ``lutece.ot.tools.soft_sort.sort`` etc.)."""

from . import soft_sort
from .divergence import sinkhorn_divergence

__all__ = ["sinkhorn_divergence", "soft_sort"]
