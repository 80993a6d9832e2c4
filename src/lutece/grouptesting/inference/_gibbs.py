"""Single-site Metropolized Gibbs sweeps over many particles at once (numba).

The tempered target of a particle x in {0,1}^n is
    log pi(x) = sum_i x_i logit(p_i) + sum_t w_t [(G x)_t > 0] (l+_t - l-_t) + const,
with w_t = 1 for pools already absorbed and the tempering exponent for new ones. Flipping x_i
changes the pool terms only for the pools holding i, and only where the pool's count of
infected members goes 0 -> 1 or 1 -> 0; counts (P, T) are kept up to date, so a site update
costs O(pools per person). Liu's (1996) modification accepts a flip with probability
min(1, pi(flip) / pi(x)); plain Gibbs with pi(flip) / (pi(flip) + pi(x)).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["gibbs_sweeps", "pool_counts"]


@njit(cache=True, inline="always")
def _splitmix64(value):
    """A well-mixed 64-bit state from a seed (Steele, Lea & Flood 2014)."""
    value = value + np.uint64(0x9E3779B97F4A7C15)
    value = (value ^ (value >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    value = (value ^ (value >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return value ^ (value >> np.uint64(31))


@njit(cache=True)
def gibbs_sweeps(particles, counts, site_start, site_pools, log_odds, pool_delta, sweeps,
                 liu, seed):
    """particles (P, n) uint8 and counts (P, T) int32 are updated in place.

    site_start (n + 1,), site_pools: the pools holding each person (CSR); log_odds (n,);
    pool_delta (T,) = w_t (l+_t - l-_t); ``sweeps`` passes over all sites; ``liu`` selects
    the Metropolized variant; ``seed`` makes the run reproducible (each particle draws from
    its own xorshift64* stream, seeded by splitmix64 from (seed, particle)). Returns the
    number of flips.
    """
    num_particles, n = particles.shape
    flips = 0
    for p in range(num_particles):
        state = _splitmix64(np.uint64(seed) * np.uint64(0x100000001B3) + np.uint64(p))
        if state == 0:
            state = np.uint64(1)
        for _ in range(sweeps):
            for i in range(n):
                current = particles[p, i]
                delta = log_odds[i] if current == 0 else -log_odds[i]
                for e in range(site_start[i], site_start[i + 1]):
                    t = site_pools[e]
                    count = counts[p, t]
                    if current == 0 and count == 0:
                        delta += pool_delta[t]
                    elif current == 1 and count == 1:
                        delta -= pool_delta[t]
                # xorshift64* (Vigna 2016): a uniform in [0, 1) from the top 53 bits
                state ^= state >> np.uint64(12)
                state ^= state << np.uint64(25)
                state ^= state >> np.uint64(27)
                u = float((state * np.uint64(0x2545F4914F6CDD1D)) >> np.uint64(11)) \
                    * (1.0 / 9007199254740992.0)
                if liu:
                    accept = delta >= 0.0 or u < np.exp(delta)
                else:
                    accept = u * (1.0 + np.exp(delta)) < np.exp(delta) if delta < 0.0 \
                        else u * (1.0 + np.exp(-delta)) < 1.0
                if accept:
                    step = 1 if current == 0 else -1
                    particles[p, i] = 1 - current
                    for e in range(site_start[i], site_start[i + 1]):
                        counts[p, site_pools[e]] += step
                    flips += 1
    return flips


def pool_counts(particles: np.ndarray, pools: np.ndarray) -> np.ndarray:
    """(P, T) int32 number of infected members of each pool in each particle."""
    if pools.shape[0] == 0:
        return np.zeros((particles.shape[0], 0), dtype=np.int32)
    return (particles.astype(np.float32) @ pools.T.astype(np.float32)).round().astype(
        np.int32)
