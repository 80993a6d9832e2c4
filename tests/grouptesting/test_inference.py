"""Posterior inference against brute force: the exhaustive posterior against Bayes' rule by
hand and by itertools, SMC against the exhaustive posterior, loopy BP exact on trees."""

import math

import numpy as np
import pytest

from lutece.grouptesting import (
    BeliefPropagationError,
    Prior,
    SMCOptions,
    TestModel,
    exhaustive_posterior,
    loopy_belief_propagation,
    posterior_marginals,
    smc_posterior,
)

from .helpers import brute_force_marginals, random_design


def test_exhaustive_by_hand():
    # one person, one positive test: Bayes' rule
    p, sens, spec = 0.02, 0.85, 0.97
    expected = p * sens / (p * sens + (1 - p) * (1 - spec))
    assert math.isclose(posterior_marginals([p], [[0]], [True], sens, spec,
                                            method="exhaustive")[0], expected, rel_tol=1e-12)
    # two people pooled, positive: P(x0 = 1 | pool +) = p sens / P(pool +)
    pool_positive = (1 - (1 - p) ** 2) * sens + (1 - p) ** 2 * (1 - spec)
    marginals = posterior_marginals([p, p], [[0, 1]], [True], sens, spec,
                                    method="exhaustive")
    np.testing.assert_allclose(marginals, p * sens / pool_positive, rtol=1e-12)
    # no test: the prior
    np.testing.assert_allclose(posterior_marginals([0.1, 0.3], [], [], method="exhaustive"),
                               [0.1, 0.3])


@pytest.mark.parametrize("seed", range(3))
def test_exhaustive_equals_brute_force(seed):
    pools, outcomes = random_design(7, 6, 4, seed)
    prevalence = np.random.default_rng(seed).uniform(0.02, 0.3, 7)
    ours = posterior_marginals(prevalence, pools, outcomes, 0.9, 0.95, method="exhaustive")
    np.testing.assert_allclose(ours, brute_force_marginals(prevalence, pools, outcomes,
                                                          0.9, 0.95), rtol=1e-10)


def test_pool_size_dependent_noise():
    # sensitivity per pool size, the last entry for larger pools (the anchor's
    # select_from_sizes: [.4, .2, .1] at sizes [1, 4, 8, 2] -> [.4, .1, .1, .2])
    model = TestModel([0.4, 0.2, 0.1], 0.95)
    np.testing.assert_allclose(model.sensitivity_at(np.array([1, 4, 8, 2])),
                               [0.4, 0.1, 0.1, 0.2])
    pools, outcomes = np.array([[1, 1, 0], [0, 0, 1]], dtype=bool), np.array([True, False])
    exact = exhaustive_posterior(Prior(0.2, 3), pools, outcomes, model).marginals
    by_hand_size_2 = brute_force_marginals(0.2, pools[:1], outcomes[:1], 0.2, 0.95)[:2]
    by_hand_size_1 = brute_force_marginals(0.2, pools[1:], outcomes[1:], 0.4, 0.95)[2:]
    np.testing.assert_allclose(exact, np.r_[by_hand_size_2, by_hand_size_1], rtol=1e-12)


def _total_variation(a, b):
    return float(np.abs(a - b).max())


@pytest.mark.parametrize("seed", range(3))
def test_smc_matches_exhaustive_and_improves_with_particles(seed):
    n = 12 + seed
    pools, outcomes = random_design(n, 10, 5, seed)
    prior, model = Prior(0.08, n), TestModel(0.85, 0.97)
    exact = exhaustive_posterior(prior, pools, outcomes, model).marginals
    errors = []
    for particles in (500, 8000):
        runs = [smc_posterior(prior, pools, outcomes, model, rng=seed * 10 + r,
                              options=SMCOptions(num_particles=particles)).marginals
                for r in range(3)]
        errors.append(np.mean([_total_variation(run, exact) for run in runs]))
    assert errors[1] < 0.02
    assert errors[1] < errors[0]


def test_smc_incremental_equals_from_scratch_in_distribution():
    n = 12
    pools, outcomes = random_design(n, 12, 5, 7)
    prior, model = Prior(0.1, n), TestModel()
    exact = exhaustive_posterior(prior, pools, outcomes, model).marginals
    options = SMCOptions(num_particles=6000)
    first = smc_posterior(prior, pools[:6], outcomes[:6], model, options=options, rng=1)
    assert first.diagnostics["absorbed"] == 6
    second = smc_posterior(prior, pools, outcomes, model, options=options, rng=2, start=first)
    assert second.diagnostics["absorbed"] == 12
    assert _total_variation(second.marginals, exact) < 0.03


def test_smc_plain_gibbs_and_reproducibility():
    pools, outcomes = random_design(10, 8, 4, 3)
    prior, model = Prior(0.1, 10), TestModel()
    exact = exhaustive_posterior(prior, pools, outcomes, model).marginals
    plain = smc_posterior(prior, pools, outcomes, model, rng=5,
                          options=SMCOptions(num_particles=6000, liu=False))
    assert _total_variation(plain.marginals, exact) < 0.03
    again = smc_posterior(prior, pools, outcomes, model, rng=5,
                          options=SMCOptions(num_particles=6000, liu=False))
    np.testing.assert_array_equal(plain.particles, again.particles)


def _tree_designs():
    disjoint = np.zeros((3, 9), dtype=bool)
    for t in range(3):
        disjoint[t, 3 * t:3 * t + 3] = True
    chain = np.zeros((5, 6), dtype=bool)   # pools {i, i+1}: a path-shaped factor graph
    for t in range(5):
        chain[t, [t, t + 1]] = True
    star = np.array([[1, 1, 1, 0, 0, 0], [1, 0, 0, 1, 0, 0], [0, 1, 0, 0, 1, 1],
                     [0, 0, 0, 0, 0, 1]], dtype=bool)
    return [disjoint, chain, star]


@pytest.mark.parametrize("design", _tree_designs(), ids=["disjoint", "chain", "tree"])
def test_loopy_bp_is_exact_on_trees(design):
    rng = np.random.default_rng(0)
    outcomes = rng.random(design.shape[0]) < 0.5
    prior = Prior(rng.uniform(0.05, 0.3, design.shape[1]))
    model = TestModel(0.9, 0.95)
    result = loopy_belief_propagation(prior, design, outcomes, model, tolerance=1e-13,
                                      max_iterations=200)
    assert result.converged
    exact = exhaustive_posterior(prior, design, outcomes, model).marginals
    np.testing.assert_allclose(result.marginals, exact, rtol=0, atol=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_loopy_bp_close_to_exhaustive_on_loopy_designs(seed):
    pools, outcomes = random_design(10, 8, 4, seed)
    prior, model = Prior(0.05, 10), TestModel()
    result = loopy_belief_propagation(prior, pools, outcomes, model)
    assert result.converged
    exact = exhaustive_posterior(prior, pools, outcomes, model).marginals
    assert _total_variation(result.marginals, exact) < 0.1


def test_loopy_bp_non_convergence_is_reported_not_returned():
    pools, outcomes = random_design(10, 8, 4, 1)
    prior, model = Prior(0.05, 10), TestModel()
    result = loopy_belief_propagation(prior, pools, outcomes, model, max_iterations=2,
                                      min_iterations=1, tolerance=1e-15)
    assert not result.converged and result.marginals is None and result.iterations == 2
    with pytest.raises(BeliefPropagationError, match="did not converge"):
        posterior_marginals(prior, pools, outcomes, method="loopy_bp", max_iterations=2,
                            min_iterations=1, tolerance=1e-15)


def test_damped_bp_reaches_the_same_fixed_point():
    pools, outcomes = random_design(10, 8, 4, 2)
    prior, model = Prior(0.05, 10), TestModel()
    plain = loopy_belief_propagation(prior, pools, outcomes, model, tolerance=1e-10)
    damped = loopy_belief_propagation(prior, pools, outcomes, model, damping=0.5,
                                      tolerance=1e-10)
    assert damped.converged and damped.iterations > plain.iterations
    np.testing.assert_allclose(damped.marginals, plain.marginals, atol=1e-7)


def test_simulated_results_follow_sensitivity_and_specificity():
    from scipy.stats import binomtest

    model = TestModel(0.85, 0.97)
    rng = np.random.default_rng(0)
    pools = np.eye(2, dtype=bool).repeat(5000, axis=0)   # 5000 tests of each person
    statuses = np.array([True, False])
    results = model.sample_outcomes(pools, statuses, rng)
    positives_of_infected = int(results[:5000].sum())
    positives_of_healthy = int(results[5000:].sum())
    assert binomtest(positives_of_infected, 5000, 0.85).pvalue > 1e-3
    assert binomtest(positives_of_healthy, 5000, 0.03).pvalue > 1e-3


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda: Prior(1.5, 3), ValueError, "prevalence must be in"),
    (lambda: Prior(0.1), ValueError, "num_people"),
    (lambda: Prior([0.1, 0.0]), ValueError, "person 1"),
    (lambda: TestModel(0.5, 0.4), ValueError, "must exceed 1"),
    (lambda: TestModel([], 0.9), ValueError, "must not be empty"),
    (lambda: TestModel(1.2, 0.9), ValueError, "sensitivity must be in"),
    (lambda: posterior_marginals([0.1] * 3, [[0, 3]], [True]), ValueError, "member 3"),
    (lambda: posterior_marginals([0.1] * 3, [[0, 0]], [True]), ValueError, "twice"),
    (lambda: posterior_marginals([0.1] * 3, [[]], [True]), ValueError, "empty"),
    (lambda: posterior_marginals([0.1] * 3, [[0]], [True, False]), ValueError,
     "one value per pool"),
    (lambda: posterior_marginals([0.1] * 3, [[0]], [2]), ValueError, "booleans"),
    (lambda: posterior_marginals([0.1] * 3, [[0]], [True], method="mcmc"), ValueError,
     "method must be one of"),
    (lambda: posterior_marginals([0.1] * 21, [[0]], [True], method="exhaustive"),
     ValueError, "n <= 20"),
    (lambda: posterior_marginals([0.1] * 3, [[0]], [True], method="exhaustive", seed=1),
     TypeError, "takes no options"),
    (lambda: posterior_marginals([0.1] * 3, [[0]], [True], method="loopy_bp", damping=1.0),
     ValueError, "damping"),
    (lambda: posterior_marginals([0.1] * 3, [[0]], [True], num_particles=0), ValueError,
     "num_particles"),
])
def test_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_scalar_prior_with_num_people():
    marginals = posterior_marginals(0.1, [[0, 1]], [False], method="exhaustive",
                                    num_people=3)
    assert marginals.shape == (3,) and marginals[2] == pytest.approx(0.1)


def test_designs_as_member_lists_boolean_or_binary_matrices_agree():
    lists = [[0, 1], [1, 2, 3]]
    binary = np.array([[1, 1, 0, 0], [0, 1, 1, 1]])
    expected = posterior_marginals([0.1] * 4, lists, [True, False], method="exhaustive")
    for design in (binary, binary.astype(bool)):
        np.testing.assert_allclose(posterior_marginals([0.1] * 4, design, [True, False],
                                                       method="exhaustive"), expected)
