"""The quick perturbed experiment runs and shows what its quick mode is large enough for.

Shrunk further for the test suite: 150 training maps of 5 x 5-pixel cells instead of 300 of
6 x 6 (the Fenchel-Young / squared-loss gap in optimal-cost rate on the 200 held-out maps
stays 0.30-0.33 for seeds 0 to 4, with one or two threads, against the 0.2 checked), and 50
epochs for the sigma study's final-accuracy trainings, which nothing below checks (its
gradient variances do not depend on them)."""

import lutece.experiments.perturbed as experiment
from lutece.experiments import get


def test_quick_perturbed_experiment(monkeypatch):
    monkeypatch.setitem(experiment.WARCRAFT_SIZES, True, (8, 5, 150, 30))
    monkeypatch.setitem(experiment.SIGMA_STUDY, True, ([1, 10, 100], 20, 50))
    result = get("perturbed").run(True, 0)
    m = result.metrics
    assert m["warcraft_fy_optimal_cost_rate"] > m["warcraft_squared_optimal_cost_rate"] + 0.2
    assert m["warcraft_fy_cost_ratio"] < m["warcraft_squared_cost_ratio"]
    assert abs(m["label_ranking_rho_perturbed"] - m["label_ranking_rho_soft_rank"]) < 0.02
    assert m["grad_variance_sigma0.5_n100"] < m["grad_variance_sigma0.5_n1"] / 10
    assert m["unsupervised_error_n10000"] < m["unsupervised_error_n100"]
    assert set(result.figures) == {"perturbed_warcraft_paths", "perturbed_sigma_samples",
                                   "perturbed_unsupervised"}
    assert result.seconds < 120
