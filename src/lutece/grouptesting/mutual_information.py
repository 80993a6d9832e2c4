"""Mutual information between the results of a set of pools and the infection statuses,
estimated on weighted posterior particles (Cuturi et al. 2020, G-MIMAX's objective).

For pools 1..k with results Y and statuses X ~ sum_i w_i delta_{x_i}:
    I(X; Y) = H(Y) - H(Y | X),
    H(Y | X) = sum_t [h(spec_t) + (h(sens_t) - h(spec_t)) sum_i w_i 1{pool t holds an infected
               member of x_i}]          (results are independent given X; h: binary entropy),
    H(Y) = entropy of the 2^k-outcome mixture sum_i w_i P(y | x_i),
kept as a table of P(y | x_i) over the outcome patterns so far, which doubles with each pool
added. Adding a candidate pool with positivity z (P,) then needs only
(w * table)^T z: all candidates of a greedy step are scored by one matrix product.
"""

from __future__ import annotations

import numpy as np

from .model import TestModel

__all__ = ["mutual_information", "OutcomeTable"]


def _entropy(probabilities: np.ndarray, axis: int = 0) -> np.ndarray:
    """Shannon entropy in nats along ``axis`` (0 log 0 = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(probabilities > 0, probabilities * np.log(probabilities), 0.0)
    return -terms.sum(axis)


def _binary_entropy(p: np.ndarray | float) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    return _entropy(np.stack([p, 1 - p]), axis=0)


class OutcomeTable:
    """P(y | x_i) for every particle i and every outcome pattern y of the pools chosen so
    far, with the conditional entropy H(Y | X) accumulated alongside.

    Args:
        particles: (P, n) bool; weights: (P,) summing to 1; test_model: the assumed test.
    """

    def __init__(self, particles: np.ndarray, weights: np.ndarray,
                 test_model: TestModel) -> None:
        self.particles = particles
        self.weights = weights
        self.test_model = test_model
        self.table = np.ones((particles.shape[0], 1))          # (P, 2^k)
        self.conditional_entropy = 0.0

    @property
    def mixture(self) -> np.ndarray:
        """(2^k,) probability of each outcome pattern."""
        return self.weights @ self.table

    @property
    def mutual_information(self) -> float:
        return float(_entropy(self.mixture) - self.conditional_entropy)

    def _noise(self, size: int) -> tuple[float, float]:
        sizes = np.array([max(size, 1)])
        return (float(self.test_model.sensitivity_at(sizes)[0]),
                float(self.test_model.specificity_at(sizes)[0]))

    def scores(self, positivity: np.ndarray, size: int) -> np.ndarray:
        """I(X; Y_chosen, Y_candidate) for candidate pools of ``size`` members whose
        positivity per particle is ``positivity`` (P, C); returns (C,)."""
        sens, spec = self._noise(size)
        rho = sens + spec - 1
        mixture = self.mixture                                           # (2^k,)
        covered = (self.weights[:, None] * self.table).T @ positivity.astype(np.float64)
        positive = (1 - spec) * mixture[:, None] + rho * covered         # (2^k, C)
        negative = mixture[:, None] - positive
        joint_entropy = _entropy(np.concatenate([positive, negative]), axis=0)
        infected_mass = self.weights @ positivity.astype(np.float64)     # (C,)
        conditional = self.conditional_entropy + _binary_entropy(spec) + (
            _binary_entropy(sens) - _binary_entropy(spec)) * infected_mass
        return joint_entropy - conditional

    def add(self, positivity: np.ndarray, size: int) -> None:
        """Append a chosen pool with positivity (P,) and ``size`` members."""
        sens, spec = self._noise(size)
        positive = np.where(positivity, sens, 1 - spec)                 # P(y = 1 | x_i)
        self.table = np.concatenate([self.table * positive[:, None],
                                     self.table * (1 - positive)[:, None]], axis=1)
        self.conditional_entropy += float(
            _binary_entropy(spec) + (_binary_entropy(sens) - _binary_entropy(spec))
            * (self.weights @ positivity.astype(np.float64)))


def mutual_information(particles: np.ndarray, weights: np.ndarray, pools: np.ndarray,
                       test_model: TestModel) -> float:
    """I(X; Y) in nats for the results Y of ``pools`` (k, n) under the weighted particles."""
    table = OutcomeTable(particles, weights, test_model)
    for pool in pools:
        table.add((particles & pool[None, :]).any(1), int(pool.sum()))
    return table.mutual_information
