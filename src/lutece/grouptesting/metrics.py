"""Metrics of a decoder's marginals against the true statuses: sensitivity and specificity
at a threshold, their mean, and the ROC AUC (Mann-Whitney, ties counted one half), pooled
over the individuals of many simulated campaigns; paired bootstrap intervals."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

__all__ = ["classification_metrics", "roc_auc", "paired_bootstrap"]


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for boolean ``labels`` (NaN if one class is
    missing): the probability that a random positive outranks a random negative."""
    scores, labels = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(labels).ravel()
    positives, negatives = int(labels.sum()), int((~labels.astype(bool)).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels.astype(bool)].sum() - positives * (positives + 1) / 2)
                 / (positives * negatives))


def classification_metrics(marginals: np.ndarray, truth: np.ndarray,
                           threshold: float = 0.5) -> dict[str, float]:
    """Pooled over every entry of ``marginals`` and boolean ``truth`` (same shape):
    sensitivity, specificity, their mean, AUC, and the counts."""
    marginals, truth = np.asarray(marginals).ravel(), np.asarray(truth, dtype=bool).ravel()
    called = marginals > threshold
    positives, negatives = int(truth.sum()), int((~truth).sum())
    sensitivity = float((called & truth).sum() / positives) if positives else float("nan")
    specificity = float((~called & ~truth).sum() / negatives) if negatives else float("nan")
    return {"sensitivity": sensitivity, "specificity": specificity,
            "mean_sens_spec": (sensitivity + specificity) / 2, "auc": roc_auc(marginals, truth),
            "positives": positives, "negatives": negatives}


def paired_bootstrap(statistic, samples: list[np.ndarray], num_resamples: int = 1000,
                     seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``statistic(*resampled)`` where every array in ``samples``
    (first axis: simulations) is resampled with the same simulation indices (paired)."""
    rng = np.random.default_rng(seed)
    count = samples[0].shape[0]
    values = []
    for _ in range(num_resamples):
        index = rng.integers(0, count, count)
        value = statistic(*[sample[index] for sample in samples])
        if np.isfinite(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    tail = (1 - level) / 2
    return float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))
