"""Sequential Monte Carlo over status vectors (Cuturi et al. 2020; the anchor's
``SmcSampler``), vectorized over particles.

Tempering brings the particles from the current base measure (the prior times the
likelihood of the pools already absorbed) to the posterior with the new results:
pi_r(x) ∝ base(x) L_new(x)^r, r from 0 to 1. Each step takes the largest increment of r that
keeps the effective sample size of the reweighted cloud above ``ess_target`` x P (found by
bisection), reweights, resamples (systematic) and moves the particles with Metropolized
Gibbs sweeps (:mod:`._gibbs`) until the fraction of distinct particles stops changing. Calls
are incremental: pass the previous result as ``start`` and only the new pools are tempered
in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..model import Prior, TestModel
from ._gibbs import gibbs_sweeps, pool_counts
from .likelihood import log_likelihood
from .particles import WeightedParticles, unique_ratio

__all__ = ["SMCOptions", "smc_posterior"]


@dataclass(frozen=True)
class SMCOptions:
    """Settings of :func:`smc_posterior` (defaults: the anchor's, with the sweeps of its toy
    configuration)."""

    num_particles: int = 10_000
    sweeps_per_move: int = 4          # Gibbs cycles over all sites per move
    min_moves: int = 2
    max_moves: int = 20
    unique_ratio_delta: float = 0.02  # stop moving when the distinct fraction moves less
    target_unique_ratio: float = 0.95  # ... or exceeds this
    ess_target: float = 0.9           # minimum ESS / P kept by each tempering step
    liu: bool = True                  # Metropolized Gibbs (Liu 1996); False: plain Gibbs

    def __post_init__(self) -> None:
        fn = "SMCOptions"
        for name in ("num_particles", "sweeps_per_move", "max_moves"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{fn}: {name} must be a positive int, got {value!r}")
        if not 0 <= self.min_moves <= self.max_moves:
            raise ValueError(f"{fn}: min_moves must be in [0, max_moves], got "
                             f"{self.min_moves}")
        if not 0 < self.ess_target < 1:
            raise ValueError(f"{fn}: ess_target must be in (0, 1), got {self.ess_target}")


def _ess_fraction(log_weights: np.ndarray) -> float:
    shifted = log_weights - log_weights.max()
    weights = np.exp(shifted)
    return float(weights.sum() ** 2 / (weights ** 2).sum() / weights.size)


def _tempering_step(log_weights: np.ndarray, log_new: np.ndarray, remaining: float,
                    target: float) -> float:
    """The largest increment a <= remaining with ESS(log_weights + a log_new) >= target P
    (bisection; at least a tiny step so that the loop always advances)."""
    if _ess_fraction(log_weights + remaining * log_new) >= target:
        return remaining
    low, high = 0.0, remaining
    for _ in range(30):
        middle = 0.5 * (low + high)
        if _ess_fraction(log_weights + middle * log_new) >= target:
            low = middle
        else:
            high = middle
    return max(low, 1e-6 * remaining)


def _systematic_resample(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    positions = (rng.random() + np.arange(weights.size)) / weights.size
    cumulative = np.cumsum(weights)
    cumulative[-1] = 1.0
    return np.searchsorted(cumulative, positions)


class _Target:
    """The tempered target's pieces for the Gibbs kernel."""

    def __init__(self, prior: Prior, pools: np.ndarray, outcomes: np.ndarray,
                 test_model: TestModel, num_absorbed: int) -> None:
        positive, negative = test_model.outcome_log_likelihoods(pools, outcomes)
        with np.errstate(invalid="ignore"):
            self.delta = positive - negative   # (T,) +-inf for perfect tests
        self.num_absorbed = num_absorbed
        self.log_odds = prior.log_odds
        members = [np.flatnonzero(pools[:, i]) for i in range(pools.shape[1])]
        self.site_start = np.zeros(pools.shape[1] + 1, dtype=np.int64)
        self.site_start[1:] = np.cumsum([m.size for m in members])
        self.site_pools = np.concatenate(members).astype(np.int64) if members else \
            np.zeros(0, dtype=np.int64)

    def pool_delta(self, temperature: float) -> np.ndarray:
        weights = np.ones_like(self.delta)
        weights[self.num_absorbed:] = temperature
        with np.errstate(invalid="ignore"):
            return np.where(weights > 0, weights * self.delta, 0.0)


def _move(particles: np.ndarray, pools: np.ndarray, target: _Target, temperature: float,
          options: SMCOptions, rng: np.random.Generator) -> tuple[np.ndarray, int, float]:
    """Gibbs moves until the distinct fraction settles; returns particles, moves, ratio."""
    state = particles.astype(np.uint8)
    counts = pool_counts(state, pools)
    delta = target.pool_delta(temperature)
    ratio = unique_ratio(particles)
    moves = 0
    for moves in range(1, options.max_moves + 1):
        gibbs_sweeps(state, counts, target.site_start, target.site_pools, target.log_odds,
                     delta, options.sweeps_per_move, options.liu,
                     int(rng.integers(0, 2 ** 31 - 1)))
        new_ratio = unique_ratio(state.astype(bool))
        settled = abs(new_ratio - ratio) <= options.unique_ratio_delta \
            or new_ratio > options.target_unique_ratio
        ratio = new_ratio
        if moves >= options.min_moves and settled:
            break
    return state.astype(bool), moves, ratio


def smc_posterior(prior: Prior, pools: np.ndarray, outcomes: np.ndarray,
                  test_model: TestModel, *, options: SMCOptions | None = None,
                  start: WeightedParticles | None = None,
                  rng: np.random.Generator | int | None = None) -> WeightedParticles:
    """Posterior particles by tempered SMC.

    Args:
        prior, pools (T, n), outcomes (T,), test_model: the model and all results so far.
        options: :class:`SMCOptions`.
        start: a previous result on the first ``start.diagnostics['absorbed']`` of these
            pools: only the later pools are tempered in. None starts from prior draws.
        rng: a numpy Generator or a seed.

    Returns:
        :class:`WeightedParticles` with diagnostics: absorbed pools, tempering steps, moves,
        final ESS fraction and distinct fraction.
    """
    options = options or SMCOptions()
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    absorbed = 0
    if start is None:
        particles = prior.sample(rng, options.num_particles)
        log_weights = np.zeros(options.num_particles)
    else:
        absorbed = int(start.diagnostics.get("absorbed", 0))
        if absorbed > pools.shape[0]:
            raise ValueError(f"smc: the start absorbed {absorbed} pools but only "
                             f"{pools.shape[0]} are given")
        particles = start.particles.copy()
        with np.errstate(divide="ignore"):
            log_weights = np.log(start.weights)
    target = _Target(prior, pools, outcomes, test_model, absorbed)
    log_new = log_likelihood(particles, pools[absorbed:], outcomes[absorbed:], test_model)
    temperature, steps, moves = 0.0, 0, 0
    ratio = float("nan")
    while temperature < 1.0 and pools.shape[0] > absorbed:
        with np.errstate(invalid="ignore"):
            increment = _tempering_step(log_weights, np.nan_to_num(log_new, neginf=-1e300),
                                        1.0 - temperature, options.ess_target)
            log_weights = log_weights + increment * log_new
        temperature = min(1.0, temperature + increment)
        steps += 1
        if not np.isfinite(log_weights).any():
            raise ValueError("smc: no particle is compatible with the results (a perfect "
                             "test contradicts itself)")
        # resample and move at the new temperature: the cloud is rejuvenated at every step
        weights = np.exp(log_weights - log_weights.max())
        weights /= weights.sum()
        chosen = _systematic_resample(weights, rng)
        particles, used, ratio = _move(particles[chosen], pools, target, temperature,
                                       options, rng)
        moves += used
        log_weights = np.zeros(particles.shape[0])
        log_new = log_likelihood(particles, pools[absorbed:], outcomes[absorbed:],
                                 test_model)
    weights = np.exp(log_weights - log_weights.max())
    weights /= weights.sum()
    diagnostics = {"method": "smc", "absorbed": pools.shape[0], "tempering_steps": steps,
                   "moves": moves, "ess_fraction": float(1 / np.sum(weights ** 2)
                                                         / weights.size),
                   "unique_ratio": ratio if not math.isnan(ratio) else unique_ratio(
                       particles)}
    return WeightedParticles(particles, weights, diagnostics)
