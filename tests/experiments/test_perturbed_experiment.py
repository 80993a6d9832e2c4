"""The quick perturbed experiment runs and shows what its quick mode is large enough for."""

from lutece.experiments import get


def test_quick_perturbed_experiment():
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
