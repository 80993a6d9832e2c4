"""A posterior over status vectors represented by weighted particles."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["WeightedParticles", "collapse"]


@dataclass
class WeightedParticles:
    """``particles`` (P, n) bool status vectors with ``weights`` (P,) summing to 1.

    ``diagnostics`` carries what the sampler reports (e.g. effective sample size)."""

    particles: np.ndarray
    weights: np.ndarray
    diagnostics: dict

    @property
    def marginals(self) -> np.ndarray:
        """(n,) posterior probability of infection of each person."""
        return self.weights @ self.particles.astype(np.float64)

    @property
    def effective_sample_size(self) -> float:
        return float(1.0 / np.sum(self.weights ** 2))

    def collapsed(self) -> WeightedParticles:
        """Identical particles merged (weights summed): what selectors work on."""
        particles, weights = collapse(self.particles, self.weights)
        return WeightedParticles(particles, weights, dict(self.diagnostics))


def collapse(particles: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge identical rows of ``particles`` (P, n), summing their ``weights``."""
    if particles.shape[0] == 0:
        return particles, weights
    packed = np.packbits(particles, axis=1)
    keys = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1])))[:, 0]
    unique_keys, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    summed = np.bincount(inverse.reshape(-1), weights=weights, minlength=unique_keys.size)
    return particles[first], summed


def unique_ratio(particles: np.ndarray) -> float:
    """Fraction of distinct rows."""
    packed = np.packbits(particles, axis=1)
    keys = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1])))[:, 0]
    return np.unique(keys).size / max(particles.shape[0], 1)
