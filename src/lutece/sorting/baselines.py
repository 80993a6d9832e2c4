"""Baselines the sorting benchmark and experiment compare against (not the paper's method).

``pairwise_soft_rank`` is the classic O(n^2) relaxation (e.g. Qin, Liu & Li 2010, "A general
approximation framework for direct optimization of information retrieval measures"): each
rank counts the other entries it exceeds, with a sigmoid in place of the step,

    r_i = 1/2 + sum_j sigmoid((x_i - x_j) / tau),

so that the ranks of a tie-free row tend to 1..n as tau -> 0. Time and memory are O(n^2).
"""

from __future__ import annotations

import torch

from ._rows import check_input

__all__ = ["pairwise_soft_rank"]


def pairwise_soft_rank(x: torch.Tensor, *, temperature: float = 1.0) -> torch.Tensor:
    """O(n^2) sigmoid soft ranks along the last dimension: (..., n) -> (..., n)."""
    x = check_input("pairwise_soft_rank", "x", x)
    if not temperature > 0:
        raise ValueError(f"pairwise_soft_rank: temperature must be > 0, got {temperature}")
    differences = (x.unsqueeze(-1) - x.unsqueeze(-2)) / temperature
    return 0.5 + torch.sigmoid(differences).sum(dim=-1)
