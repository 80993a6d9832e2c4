"""Noisy adaptive group testing by Bayesian sequential experimental design (result 7:
Cuturi, Teboul, Berthet, Doucet & Vert, 2020).

The model (:mod:`.model`: priors, a test with pool-size-dependent sensitivity and
specificity, the lab's constraints, the campaign so far) is kept apart from inference
(:mod:`.inference`: exhaustive, SMC, loopy BP) and from design (:mod:`.selectors`: which
pools to run next).

Where the anchor (google-research/group_testing) has known defects we do what it meant:
the Gibbs kernel's Liu flag is honoured (``SMCOptions.liu``), simulations keep every pool
and result (the anchor's exported results were always NaN), informative Dorfman is usable
as a policy, loopy BP reports non-convergence instead of returning NaN marginals, and there
is no counterpart of its broken ``RandomDisjoint``.
"""

from .inference import (
    BeliefPropagationError,
    BeliefPropagationResult,
    SMCOptions,
    WeightedParticles,
    exhaustive_posterior,
    loopy_belief_propagation,
    posterior_marginals,
    smc_posterior,
)
from .metrics import classification_metrics, paired_bootstrap, roc_auc
from .model import CampaignState, Constraints, Prior, TestModel
from .mutual_information import mutual_information
from .policy import DECODERS, CampaignEngine, Policy
from .selectors import (
    Dorfman,
    GAuc,
    GMimax,
    Individual,
    InformativeDorfman,
    RandomPools,
    Selector,
    Split,
)
from .simulator import SimulationResults, simulate

__all__ = ["Prior", "TestModel", "Constraints", "CampaignState", "posterior_marginals",
           "exhaustive_posterior", "smc_posterior", "SMCOptions", "loopy_belief_propagation",
           "BeliefPropagationResult", "BeliefPropagationError", "WeightedParticles",
           "mutual_information", "Selector", "Individual", "Dorfman", "InformativeDorfman",
           "RandomPools", "Split", "GMimax", "GAuc", "Policy", "CampaignEngine", "DECODERS",
           "simulate", "SimulationResults", "classification_metrics", "roc_auc",
           "paired_bootstrap"]
