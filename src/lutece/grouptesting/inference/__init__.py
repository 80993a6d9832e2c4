"""Posterior inference over infection statuses: exhaustive enumeration (the oracle), the
paper's SMC sampler and loopy belief propagation, behind one functional entry point."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..model import Prior, TestModel, as_design
from .exhaustive import MAX_EXHAUSTIVE_PEOPLE, all_status_vectors, exhaustive_posterior
from .likelihood import log_likelihood, log_prior, pool_is_positive
from .loopy_bp import BeliefPropagationResult, loopy_belief_propagation
from .particles import WeightedParticles, collapse
from .smc import SMCOptions, smc_posterior

__all__ = ["posterior_marginals", "exhaustive_posterior", "smc_posterior", "SMCOptions",
           "loopy_belief_propagation", "BeliefPropagationResult", "WeightedParticles",
           "collapse", "log_likelihood", "log_prior", "pool_is_positive",
           "all_status_vectors", "MAX_EXHAUSTIVE_PEOPLE", "BeliefPropagationError"]

_METHODS = ("exhaustive", "smc", "loopy_bp")


class BeliefPropagationError(RuntimeError):
    """Loopy BP did not settle: its marginals are not returned as if they were."""


def posterior_marginals(prior: Prior | float | Sequence[float] | np.ndarray,
                        pools: Sequence[Sequence[int]] | np.ndarray,
                        outcomes: Sequence[bool] | np.ndarray,
                        sensitivity: float | Sequence[float] = 0.85,
                        specificity: float | Sequence[float] = 0.97,
                        method: str = "smc", **options) -> np.ndarray:
    """Each person's posterior probability of infection given pooled results.

    Args:
        prior: a :class:`Prior`, or per-person prevalences (a number needs ``num_people``
            in options).
        pools: a list of member-index lists (or a (T, n) boolean matrix).
        outcomes: one boolean per pool (True: positive).
        sensitivity, specificity: numbers, or per-pool-size sequences (see TestModel).
        method: "exhaustive" (exact, n <= 20), "smc" or "loopy_bp".
        **options: for "smc": ``num_particles``, ``seed`` and the other SMCOptions fields;
            for "loopy_bp": ``damping``, ``max_iterations``, ``tolerance``;
            ``num_people`` with a single-number prior.

    Returns:
        (n,) float64 probabilities. Loopy BP that does not converge raises
        :class:`BeliefPropagationError` (use "smc" then) rather than return numbers.
    """
    fn = "posterior_marginals"
    if method not in _METHODS:
        raise ValueError(f"{fn}: method must be one of {', '.join(_METHODS)}, got "
                         f"{method!r}")
    if not isinstance(prior, Prior):
        prior = Prior(prior, options.pop("num_people", None))
    test_model = TestModel(sensitivity, specificity)
    design = as_design(pools, prior.num_people, fn=f"{fn}: pools")
    results = np.asarray(outcomes)
    if results.ndim != 1 or results.size != design.shape[0]:
        raise ValueError(f"{fn}: outcomes must hold one value per pool ({design.shape[0]}), "
                         f"got shape {results.shape}")
    if results.dtype != bool:
        if not np.isin(results, (0, 1)).all():
            raise ValueError(f"{fn}: outcomes must be booleans (or 0/1), got "
                             f"{results.tolist()}")
        results = results.astype(bool)
    if method == "exhaustive":
        _no_options(fn, method, options)
        return exhaustive_posterior(prior, design, results, test_model).marginals
    if method == "loopy_bp":
        result = loopy_belief_propagation(prior, design, results, test_model, **options)
        if not result.converged:
            raise BeliefPropagationError(
                f"{fn}: loopy belief propagation did not converge in {result.iterations} "
                f"iterations (last change {result.gap:.2e}); use method='smc', or damping")
        return result.marginals
    seed = options.pop("seed", None)
    return smc_posterior(prior, design, results, test_model, options=SMCOptions(**options),
                         rng=seed).marginals


def _no_options(fn: str, method: str, options: dict) -> None:
    if options:
        raise TypeError(f"{fn}: method {method!r} takes no options, got "
                        f"{', '.join(sorted(options))}")
