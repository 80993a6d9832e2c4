"""Log-densities of status vectors under the group-testing model, vectorized over vectors.

For statuses x in {0,1}^n, pools G (T, n) and results y (T,):
log p(x | y) = sum_i [x_i log p_i + (1 - x_i) log(1 - p_i)]
             + sum_t log P(y_t | pool t holds an infected sample: (G x)_t > 0) + const.
"""

from __future__ import annotations

import numpy as np

from ..model import Prior, TestModel

__all__ = ["log_prior", "log_likelihood", "pool_is_positive"]


def pool_is_positive(statuses: np.ndarray, pools: np.ndarray) -> np.ndarray:
    """(P, T) whether each pool holds an infected sample, for statuses (P, n)."""
    if pools.shape[0] == 0:
        return np.zeros((statuses.shape[0], 0), dtype=bool)
    counts = statuses.astype(np.float32) @ pools.T.astype(np.float32)
    return counts > 0.5


def log_prior(statuses: np.ndarray, prior: Prior) -> np.ndarray:
    """(P,) log prior probability of each status vector (P, n)."""
    p = prior.probabilities
    return statuses.astype(np.float64) @ np.log(p) + (~statuses).astype(np.float64) @ \
        np.log1p(-p)


def log_likelihood(statuses: np.ndarray, pools: np.ndarray, outcomes: np.ndarray,
                   test_model: TestModel) -> np.ndarray:
    """(P,) log probability of the results given each status vector (P, n)."""
    if pools.shape[0] == 0:
        return np.zeros(statuses.shape[0])
    positive, negative = test_model.outcome_log_likelihoods(pools, outcomes)
    infected = pool_is_positive(statuses, pools)
    with np.errstate(invalid="ignore"):
        terms = np.where(infected, positive[None, :], negative[None, :])
    return terms.sum(1)
