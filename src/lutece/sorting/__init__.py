"""Fast differentiable sorting and ranking (Blondel et al., ICML 2020): soft sort, soft rank
and soft top-k masks as projections onto the permutahedron, computed in O(n log n) time and
O(n) memory by isotonic regression, with exact gradients; and the losses built on them."""

from .losses import soft_least_trimmed_squares, spearman_loss
from .operators import soft_rank, soft_sort, soft_topk_mask
from .permutahedron import permutahedron_projection

__all__ = [
    "soft_sort",
    "soft_rank",
    "soft_topk_mask",
    "spearman_loss",
    "soft_least_trimmed_squares",
    "permutahedron_projection",
]
