"""Independent oracles for the sorting tests: the projections onto the permutahedron
solved as small convex programs with scipy, straight from their definitions (no sorting,
no isotonic regression). The permutahedron of w is written with majorization constraints:
sum(mu) = sum(w) and, for every non-empty proper subset S, sum(mu_S) <= sum of the |S|
largest entries of w (2^n - 2 inequalities), so n stays <= 5."""

from __future__ import annotations

import itertools

import numpy as np
from scipy.optimize import minimize


def _majorization_constraints(w: np.ndarray) -> list[dict]:
    n = len(w)
    top = np.cumsum(np.sort(w)[::-1])
    constraints = [{"type": "eq", "fun": lambda mu: mu.sum() - w.sum(),
                    "jac": lambda mu: np.ones(n)}]
    for size in range(1, n):
        for subset in itertools.combinations(range(n), size):
            row = np.zeros(n)
            row[list(subset)] = 1.0
            bound = top[size - 1]
            constraints.append({"type": "ineq", "fun": lambda mu, r=row, c=bound: c - r @ mu,
                                "jac": lambda mu, r=row: -r})
    return constraints


def project_l2(z: np.ndarray, w: np.ndarray) -> np.ndarray:
    """argmin_{mu in P(w)} 1/2 ||mu - z||^2."""
    z = np.asarray(z, float)
    w = np.asarray(w, float)
    start = np.full_like(z, w.mean())
    result = minimize(lambda mu: 0.5 * np.sum((mu - z) ** 2), start, jac=lambda mu: mu - z,
                      constraints=_majorization_constraints(w), method="SLSQP",
                      options={"ftol": 1e-12, "maxiter": 2000})
    assert result.success, result.message
    return result.x


def project_kl(z: np.ndarray, w: np.ndarray) -> np.ndarray:
    """argmin_{mu in P(w)} KL(mu, exp z) for w >= 0 (returned as mu, not log mu)."""
    z = np.asarray(z, float)
    w = np.asarray(w, float)
    target = np.exp(z)

    def objective(mu):
        mu = np.maximum(mu, 1e-300)
        return np.sum(mu * np.log(mu / target) - mu + target)

    def gradient(mu):
        return np.log(np.maximum(mu, 1e-300) / target)

    start = np.full_like(z, w.mean())
    result = minimize(objective, start, jac=gradient, bounds=[(1e-12, None)] * len(z),
                      constraints=_majorization_constraints(w), method="SLSQP",
                      options={"ftol": 1e-12, "maxiter": 2000})
    assert result.success, result.message
    return result.x


def oracle_rank(theta, eps, regularization, descending=False):
    """Soft rank by definition: argmin over P(rho) of the regularized distance to
    +-theta / eps (rho = 1..n)."""
    theta = np.asarray(theta, float)
    rho = np.arange(1, len(theta) + 1, dtype=float)
    z = (-theta if descending else theta) / eps
    return project_l2(z, rho) if regularization == "l2" else project_kl(z, rho)


def oracle_sort(theta, eps, regularization, descending=False):
    """Soft sort by definition: the point of P(theta) closest to rho / eps (descending); the
    ascending sort is -soft_sort_descending(-theta)."""
    theta = np.asarray(theta, float)
    sign = 1.0 if descending else -1.0
    rho = np.arange(len(theta), 0, -1, dtype=float)
    if regularization == "l2":
        return sign * project_l2(rho / eps, sign * theta)
    return sign * np.log(project_kl(rho / eps, np.exp(sign * theta)))


def oracle_topk(theta, k, eps, regularization):
    theta = np.asarray(theta, float)
    w = np.zeros(len(theta))
    w[:k] = 1.0
    z = theta / eps
    return project_l2(z, w) if regularization == "l2" else project_kl(z, w)
