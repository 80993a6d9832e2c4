"""Seeded random designs and a brute-force posterior written independently of lutece."""

from __future__ import annotations

import itertools

import numpy as np


def random_design(n: int, num_pools: int, max_size: int, seed: int):
    rng = np.random.default_rng(seed)
    pools = np.zeros((num_pools, n), dtype=bool)
    for t in range(num_pools):
        size = rng.integers(1, max_size + 1)
        pools[t, rng.choice(n, size, replace=False)] = True
    outcomes = rng.random(num_pools) < 0.4
    return pools, outcomes


def brute_force_marginals(prevalence, pools, outcomes, sensitivity, specificity):
    """Bayes' rule over itertools.product({0,1}^n), one vector at a time."""
    n = pools.shape[1]
    p = np.broadcast_to(np.asarray(prevalence, dtype=float), (n,))
    total, weighted = 0.0, np.zeros(n)
    for statuses in itertools.product((0, 1), repeat=n):
        x = np.array(statuses, dtype=bool)
        weight = np.prod(np.where(x, p, 1 - p))
        for pool, outcome in zip(pools, outcomes):
            infected = bool((pool & x).any())
            positive = sensitivity if infected else 1 - specificity
            weight *= positive if outcome else 1 - positive
        total += weight
        weighted += weight * x
    return weighted / total
