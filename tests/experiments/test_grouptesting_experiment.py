"""The quick group-testing experiment runs and reports every number and figure; a quick run
is too small for the verdict (the report says so)."""

from lutece.experiments import get


def test_quick_grouptesting_experiment():
    result = get("grouptesting").run(True, 0)
    metrics = result.metrics
    for p in ("1", "5", "15"):
        for policy in ("g-mimax", "individual", "dorfman", "informative", "random"):
            assert 0 <= metrics[f"p{p}_k8_{policy}_mean_sens_spec"] <= 1
        low, high = metrics[f"p{p}_k8_gain_vs_individual_ci"]
        assert low <= high
    # pools stay within the budget: 8 pools x 4 cycles at most
    assert all(value <= 32 for key, value in metrics.items() if key.endswith("_tests"))
    assert metrics["p1_k8_g-mimax_auc"] > 0.95   # at 1% G-MIMAX ranks the infected first
    assert result.claim_shown is None and "Quick run" in result.notes
    assert set(result.figures) == {"grouptesting_vs_prevalence", "grouptesting_by_cycle"}
    assert len(result.tables) == 3
    assert metrics["p5_k8_g-mimax_cycle4_mean_sens_spec"] == metrics["p5_k8_g-mimax_mean_sens_spec"]
    assert result.seconds < 180
