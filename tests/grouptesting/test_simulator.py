"""Simulated campaigns: reproducible, identical with worker processes, common random
numbers across policies; metrics against scipy's Mann-Whitney U."""

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from lutece.grouptesting import (
    Constraints,
    Dorfman,
    GMimax,
    Individual,
    Policy,
    Prior,
    SMCOptions,
    TestModel,
    classification_metrics,
    roc_auc,
    simulate,
)

CONSTRAINTS = Constraints(max_pool_size=6, pools_per_cycle=6, num_cycles=3)


def test_simulations_are_reproducible_and_the_same_with_workers():
    policy = Policy((GMimax(), "loopy_bp_or_smc"), smc=SMCOptions(num_particles=300))
    args = (policy, Prior(0.08, 14), TestModel(), CONSTRAINTS, 4)
    one = simulate(*args, seed=3, progress=False)
    again = simulate(*args, seed=3, progress=False)
    parallel = simulate(*args, seed=3, workers=2, progress=False)
    for result in (again, parallel):
        np.testing.assert_array_equal(result.truth, one.truth)
        np.testing.assert_array_equal(result.marginals, one.marginals)
        np.testing.assert_array_equal(result.tests, one.tests)
    assert one.marginals.shape == (4, 3, 14) and (one.tests[:, -1] <= 18).all()
    for s in range(4):   # the tests themselves are recorded
        assert one.pools[s].shape == (one.tests[s, -1], 14)
        assert one.outcomes[s].shape == one.cycles[s].shape == (one.tests[s, -1],)
        np.testing.assert_array_equal(one.outcomes[s], parallel.outcomes[s])


def test_policies_face_the_same_people():
    prior = Prior(0.1, 12)
    a = simulate(Policy((Individual(), "raw")), prior, TestModel(), CONSTRAINTS, 5, seed=9,
                 progress=False)
    b = simulate(Policy((Dorfman(), "dorfman")), prior, TestModel(), CONSTRAINTS, 5, seed=9,
                 progress=False)
    np.testing.assert_array_equal(a.truth, b.truth)


def test_misspecified_truth_is_drawn_from_the_true_prior():
    results = simulate(Policy((Individual(), "raw")), Prior(0.03, 50), TestModel(),
                       Constraints(1, 50, 1), 200, seed=0, true_prior=Prior(0.3, 50),
                       progress=False)
    assert abs(results.truth.mean() - 0.3) < 0.02


def test_individual_testing_read_raw_has_the_test_accuracy():
    model = TestModel(0.85, 0.97)
    results = simulate(Policy((Individual(), "raw")), Prior(0.2, 40), model,
                       Constraints(1, 40, 1), 150, seed=2, progress=False)
    metrics = results.cycle_metrics(-1)
    assert abs(metrics["sensitivity"] - 0.85) < 0.04
    assert abs(metrics["specificity"] - 0.97) < 0.01
    low, high = results.interval("specificity")
    assert low < metrics["specificity"] < high


def test_auc_and_threshold_metrics_against_scipy():
    rng = np.random.default_rng(0)
    truth = rng.random(300) < 0.3
    scores = np.round(rng.random(300) + 0.5 * truth, 1)   # with ties
    statistic = mannwhitneyu(scores[truth], scores[~truth]).statistic
    assert roc_auc(scores, truth) == pytest.approx(statistic / (truth.sum() * (~truth).sum()))
    metrics = classification_metrics(scores, truth, threshold=0.75)
    assert metrics["sensitivity"] == pytest.approx(((scores > 0.75) & truth).sum() / truth.sum())
    assert metrics["specificity"] == pytest.approx(((scores <= 0.75) & ~truth).sum()
                                                   / (~truth).sum())
    assert np.isnan(roc_auc(scores, np.zeros(300, dtype=bool)))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"num_simulations": 0}, "num_simulations"),
    ({"constraints": Constraints(num_cycles=None)}, "num_cycles"),
    ({"policy": "g-mimax"}, "Policy"),
    ({"true_prior": Prior(0.1, 5)}, "true_prior has 5 people"),
])
def test_simulate_errors(kwargs, message):
    args = {"policy": Policy((Individual(), "raw")), "prior": Prior(0.1, 4),
            "test_model": TestModel(), "constraints": CONSTRAINTS, "num_simulations": 2}
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=message):
        simulate(**args, progress=False)
