"""The quick OT experiment runs, reports every number and figure, and its non-timing parts
show their claims (timings are judged by the experiment itself and by benchmarks/ot.py:
a shared CI machine is too noisy to assert them here)."""

from lutece.experiments import get


def test_quick_ot_experiment():
    result = get("ot").run(True, 0)
    metrics = result.metrics
    assert metrics["flow_divergence_reduction"] > 0.99
    assert metrics["flow_exact_w2_end"] < 0.05 * metrics["flow_exact_w2_start"]
    regularized = [value for key, value in metrics.items()
                   if key.startswith("bias_regularized_gap")]
    debiased = [value for key, value in metrics.items()
                if key.startswith("bias_divergence_gap")]
    assert all(gap > 0 for gap in regularized)                 # OT_eps overestimates OT
    assert regularized == sorted(regularized, reverse=True)    # and less so as eps shrinks
    assert all(abs(d) < r for d, r in zip(debiased, regularized))
    assert {"ms_lutece_n2000", "ms_pot_sinkhorn_log_n2000", "ms_pot_sinkhorn_kernel_n2000",
            "exponent_lutece"} <= set(metrics)
    assert set(result.figures) == {"ot_runtime_vs_n", "ot_gradient_flow", "ot_entropic_bias"}
    assert "Quick run" in result.notes and "lutece solves" in result.summary
    assert result.seconds < 60
