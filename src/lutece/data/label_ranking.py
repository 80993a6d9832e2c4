"""Seeded label-ranking data (for differentiable Spearman and perturbed ranks)."""

from __future__ import annotations

import torch

from ..sorting._rows import average_ranks

__all__ = ["label_ranking_data", "mean_spearman"]


def label_ranking_data(
    num_train: int, num_test: int, num_features: int, num_labels: int, seed: int,
    *, noise: float = 0.5,
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Features x ~ N(0, I) and target ranks of the scores s = sinh(x W / 2) + noise.

    The noise is multiplicative (``noise * |s| * N(0, 1)``), and the rank transform is far
    from linear in x, so regressing onto ranks is misspecified while a ranking loss only
    needs the order. Ranks are 1-based ascending with average ties.

    Returns:
        ((x_train (num_train, d), ranks_train (num_train, m)), (x_test, ranks_test)),
        float32.
    """
    if min(num_train, num_test, num_features, num_labels) < 1:
        raise ValueError("label_ranking_data: sizes must be >= 1, got "
                         f"{(num_train, num_test, num_features, num_labels)}")
    g = torch.Generator().manual_seed(seed)
    mixing = torch.randn(num_features, num_labels, generator=g)

    def sample(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(count, num_features, generator=g)
        scores = torch.sinh(x @ mixing / 2)
        scores = scores + noise * scores.abs() * torch.randn(count, num_labels, generator=g)
        return x, average_ranks(scores)

    return sample(num_train), sample(num_test)


def mean_spearman(scores: torch.Tensor, target_ranks: torch.Tensor) -> float:
    """Mean over rows of Spearman's rho between the hard ranks of ``scores`` (num, m) and
    ``target_ranks`` (num, m): the evaluation metric of label ranking."""
    if scores.ndim != 2 or scores.shape != target_ranks.shape or scores.shape[1] < 2:
        raise ValueError(f"mean_spearman: scores and target_ranks must both be (num, m) with "
                         f"m >= 2, got {tuple(scores.shape)} and {tuple(target_ranks.shape)}")
    m = scores.shape[1]
    ranks = average_ranks(scores.detach())
    rho = 1 - 6 * ((ranks - target_ranks) ** 2).sum(dim=1) / (m * (m * m - 1))
    return float(rho.mean())
