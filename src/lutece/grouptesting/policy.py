"""Policies (which selector and which decoder in each cycle) and the engine that runs a
campaign: propose pools, take results, update the posterior.

Decoders turn the results so far into each person's probability of infection:
- "smc": the SMC posterior marginals;
- "loopy_bp_or_smc": loopy BP when it converges, else SMC (the anchor's rule);
- "exhaustive": exact (n <= 20);
- "raw": the raw result of each person's last individual test (1 / 0), the prior when
  there is none: how individual testing is read in practice;
- "dorfman": positive iff the last individual test of that person was positive, negative
  if cleared by a negative pool, else the prior (the anchor's ``DorfmanDecoder``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .inference import (
    SMCOptions,
    WeightedParticles,
    exhaustive_posterior,
    loopy_belief_propagation,
    smc_posterior,
)
from .model import CampaignState, Constraints, Prior, TestModel, as_design
from .selectors import Selector, check_selection

__all__ = ["Policy", "CampaignEngine", "DECODERS"]

DECODERS = ("smc", "loopy_bp_or_smc", "exhaustive", "raw", "dorfman")


@dataclass
class Policy:
    """A sequence of (selector, decoder) pairs, one per cycle; the last one repeats.

    Args:
        steps: [(Selector, decoder name)], or a single pair.
        name: shown in reports.
        smc: options of the SMC sampler (G-MIMAX's posterior, the SMC decoder).
    """

    steps: Sequence[tuple[Selector, str]]
    name: str = ""
    smc: SMCOptions = field(default_factory=lambda: SMCOptions(num_particles=2000))

    def __post_init__(self) -> None:
        if isinstance(self.steps, tuple) and len(self.steps) == 2 and isinstance(
                self.steps[0], Selector):
            self.steps = [self.steps]
        self.steps = list(self.steps)
        if not self.steps:
            raise ValueError("Policy: steps must not be empty")
        for selector, decoder in self.steps:
            if not isinstance(selector, Selector):
                raise TypeError(f"Policy: {selector!r} is not a Selector")
            if decoder not in DECODERS:
                raise ValueError(f"Policy: decoder must be one of {', '.join(DECODERS)}, got "
                                 f"{decoder!r}")
        if not self.name:
            self.name = self.steps[0][0].name

    def step(self, cycle: int) -> tuple[Selector, str]:
        return self.steps[min(cycle, len(self.steps) - 1)]


class CampaignEngine:
    """One campaign in memory: the state, the current posterior and marginals.

    ``propose()`` returns the next pools (empty when the policy has nothing left to do);
    ``record(pools, outcomes)`` adds their results and returns the updated marginals.
    """

    def __init__(self, policy: Policy, prior: Prior, test_model: TestModel,
                 constraints: Constraints, rng: np.random.Generator) -> None:
        self.policy, self.constraints, self.rng = policy, constraints, rng
        self.state = CampaignState(prior, test_model)
        self.posterior: WeightedParticles | None = None
        self.marginals = prior.probabilities.copy()
        self.bp_converged: bool | None = None

    def _posterior(self) -> WeightedParticles:
        """SMC particles on every result so far (incremental from the last ones)."""
        state = self.state
        if self.posterior is None or self.posterior.diagnostics.get("absorbed") != \
                state.num_tests:
            self.posterior = smc_posterior(state.prior, state.pools, state.outcomes,
                                           state.test_model, options=self.policy.smc,
                                           start=self.posterior, rng=self.rng)
        return self.posterior

    def propose(self) -> np.ndarray:
        selector, _ = self.policy.step(self.state.cycle)
        posterior = self._posterior() if selector.needs_posterior else None
        pools = selector.select(self.state, posterior, self.constraints, self.rng)
        check_selection(pools, self.constraints, self.state.num_people)
        return pools

    def record(self, pools: np.ndarray, outcomes: np.ndarray) -> np.ndarray:
        pools = as_design(pools, self.state.num_people)
        _, decoder = self.policy.step(self.state.cycle)
        self.state.add_results(pools, outcomes)
        self.marginals = self._decode(decoder)
        return self.marginals

    def _decode(self, decoder: str) -> np.ndarray:
        state = self.state
        if decoder == "raw":
            return _last_individual_result(state, cleared_by_pools=False)
        if decoder == "dorfman":
            return _last_individual_result(state, cleared_by_pools=True)
        if decoder == "exhaustive":
            return exhaustive_posterior(state.prior, state.pools, state.outcomes,
                                        state.test_model).marginals
        if decoder == "loopy_bp_or_smc":
            result = loopy_belief_propagation(state.prior, state.pools, state.outcomes,
                                              state.test_model)
            self.bp_converged = result.converged
            if result.converged:
                return result.marginals
        return self._posterior().marginals


def _last_individual_result(state: CampaignState, cleared_by_pools: bool) -> np.ndarray:
    marginals = state.prior.probabilities.copy()
    if cleared_by_pools:
        negative_pools = state.pools[~state.outcomes]
        if negative_pools.size:
            marginals[negative_pools.any(0)] = 0.0
    singles = np.flatnonzero(state.pools.sum(1) == 1)
    for t in singles:   # in test order: the last individual result wins
        marginals[np.flatnonzero(state.pools[t])[0]] = float(state.outcomes[t])
    return marginals
