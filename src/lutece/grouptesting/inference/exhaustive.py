"""Exact posterior by enumerating all 2^n status vectors (n <= 20): the test oracle."""

from __future__ import annotations

import numpy as np

from ..model import Prior, TestModel
from .likelihood import log_likelihood, log_prior
from .particles import WeightedParticles

__all__ = ["exhaustive_posterior", "all_status_vectors", "MAX_EXHAUSTIVE_PEOPLE"]

MAX_EXHAUSTIVE_PEOPLE = 20


def all_status_vectors(n: int) -> np.ndarray:
    """(2^n, n) every status vector, person 0 as the least significant bit."""
    codes = np.arange(2 ** n, dtype=np.int64)
    return ((codes[:, None] >> np.arange(n)) & 1).astype(bool)


def exhaustive_posterior(prior: Prior, pools: np.ndarray, outcomes: np.ndarray,
                         test_model: TestModel) -> WeightedParticles:
    """The exact posterior p(x | results) over all 2^n vectors, as weighted particles."""
    n = prior.num_people
    if n > MAX_EXHAUSTIVE_PEOPLE:
        raise ValueError(f"exhaustive: enumerating 2^{n} status vectors is too much; use it "
                         f"for n <= {MAX_EXHAUSTIVE_PEOPLE} (method='smc' or 'loopy_bp' "
                         "for more people)")
    statuses = all_status_vectors(n)
    log_density = log_prior(statuses, prior) + log_likelihood(statuses, pools, outcomes,
                                                              test_model)
    if not np.isfinite(log_density).any():
        raise ValueError("exhaustive: the results are impossible under the test model (a "
                         "perfect test contradicts itself)")
    weights = np.exp(log_density - log_density.max())
    weights /= weights.sum()
    return WeightedParticles(statuses, weights, {"method": "exhaustive"})
