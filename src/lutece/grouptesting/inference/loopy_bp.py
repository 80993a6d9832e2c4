"""Loopy belief propagation on the factor graph people x pools (Cuturi et al. 2020, the
paper's decoder; the message equations of the anchor's ``loopy_belief_propagation``).

With log-odds messages, mu_i = -logit(p_i), rho_t = sens_t + spec_t - 1,
gamma_t = log rho_t - log sens_t if pool t tested positive, log rho_t - log(1 - sens_t) if
negative, and s_t = -1 / +1 for a positive / negative result:

- person -> pool:  alpha_ti = log P(x_i = 0 | everything but pool t)
                            = log sigmoid(mu_i + sum_{t' != t} beta_t'i),
- pool -> person:  beta_ti  = log(r_ti(0) / r_ti(1))
                            = log(1 + s_t exp(gamma_t + sum_{j != i} alpha_tj)),

derived from r_ti(1) = P(y_t | x_i = 1) and r_ti(0) = P(y_t | x_i = 0, others by their
messages): for a positive result r(1) = sens and r(0) = sens - rho prod_{j != i} P(x_j = 0).
Marginals: P(x_i = 1) = sigmoid(-mu_i - sum_t beta_ti). Flooding schedule from zero
messages, optional damping; exact on designs whose factor graph is a tree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model import Prior, TestModel

__all__ = ["BeliefPropagationResult", "loopy_belief_propagation"]


@dataclass
class BeliefPropagationResult:
    """``marginals`` (n,) when ``converged``, else None (never numbers that did not settle);
    ``iterations`` run and the last ``gap`` = max |change of a marginal| in one sweep."""

    marginals: np.ndarray | None
    converged: bool
    iterations: int
    gap: float


def _log_sigmoid(z: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -z)


def loopy_belief_propagation(prior: Prior, pools: np.ndarray, outcomes: np.ndarray,
                             test_model: TestModel, *, damping: float = 0.0,
                             max_iterations: int = 1000, min_iterations: int = 10,
                             tolerance: float = 1e-6) -> BeliefPropagationResult:
    """Marginals by loopy BP. Converged when no marginal moves by more than ``tolerance``
    in a sweep (after ``min_iterations``); ``damping`` in [0, 1) mixes the old messages in.
    """
    fn = "loopy_belief_propagation"
    if not 0 <= damping < 1:
        raise ValueError(f"{fn}: damping must be in [0, 1), got {damping}")
    if isinstance(max_iterations, bool) or not isinstance(max_iterations, int) \
            or max_iterations < 1:
        raise ValueError(f"{fn}: max_iterations must be a positive int, got "
                         f"{max_iterations!r}")
    if not tolerance > 0:
        raise ValueError(f"{fn}: tolerance must be > 0, got {tolerance}")
    mu = -prior.log_odds
    if pools.shape[0] == 0:
        return BeliefPropagationResult(prior.probabilities.copy(), True, 0, 0.0)
    mask = pools.astype(bool)
    sizes = mask.sum(1)
    sens, spec = test_model.sensitivity_at(sizes), test_model.specificity_at(sizes)
    with np.errstate(divide="ignore"):
        log_rho = np.log(sens + spec - 1)
        gamma = np.where(outcomes, log_rho - np.log(sens), log_rho - np.log1p(-sens))
    sign = np.where(outcomes, -1.0, 1.0)
    beta = np.zeros(mask.shape)
    marginals = prior.probabilities.copy()
    gap = np.inf
    iteration = 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for iteration in range(1, max_iterations + 1):
            beta_total = beta.sum(0)
            alpha = np.where(mask, _log_sigmoid(mu[None, :] + beta_total[None, :] - beta), 0.0)
            alpha_total = alpha.sum(1)
            exponent = gamma[:, None] + alpha_total[:, None] - alpha
            # log(1 + s e^z): log1p(e^z) for negative results, log(1 - e^z) (z <= 0) for
            # positive ones
            update = np.where(sign[:, None] > 0, np.logaddexp(0.0, exponent),
                              np.log(-np.expm1(np.minimum(exponent, 0.0))))
            update = np.where(mask, update, 0.0)
            beta = damping * beta + (1 - damping) * update if damping else update
            new_marginals = np.exp(_log_sigmoid(-mu - beta.sum(0)))
            gap = float(np.nanmax(np.abs(new_marginals - marginals)))
            marginals = new_marginals
            if not np.isfinite(marginals).all():
                break
            if iteration >= min_iterations and gap < tolerance:
                return BeliefPropagationResult(marginals, True, iteration, gap)
    return BeliefPropagationResult(None, False, iteration, gap)
