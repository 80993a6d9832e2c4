"""The quick sorting experiment runs, reports every number, and shows the claims that a
quick run is large enough for (complexity and robust regression)."""

from lutece.experiments import get


def test_quick_sorting_experiment():
    result = get("sorting").run(True, 0)
    metrics = result.metrics
    # Timings on a shared CI machine are noisy: these bounds catch a change of complexity
    # class (quadratic would give ~2 and a speed-up near 1), not the claim's exact numbers,
    # which the experiment itself judges and reports.
    assert 0.6 < metrics["time_exponent_ours_n_ge_10000"] < 1.6
    assert metrics["time_exponent_pairwise"] > 1.4
    assert metrics["speedup_vs_pairwise_n1000"] >= 5
    assert metrics["lts_test_mse_soft_LTS_40pct"] < 0.5  # near the 0.25 noise floor
    assert metrics["lts_test_mse_least_squares_40pct"] > 2.0
    # one seed cannot judge the label-ranking gain, so the quick verdict is never True; it
    # is None unless the timing part reads as not shown, which a noisy machine can cause
    # (window 0.8-1.3; 0.82 to 1.03 measured in repeated runs, and the suite failed here
    # when run whole, on main before the OT work too)
    assert result.claim_shown is not True
    assert "Quick run" in result.notes
    assert set(result.figures) == {"sorting_time_vs_n", "sorting_soft_lts", "sorting_spearman"}
    assert result.seconds < 60
