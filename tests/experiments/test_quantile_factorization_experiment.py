"""The quantile-factorization experiment runs end to end on reduced sizes and reports every
table, figure and metric; the quick mode leaves the verdict open and says why."""

from lutece.experiments import get
from lutece.experiments.quantile_factorization import _config, run_with


def test_registered_with_a_quick_budget():
    experiment = get("quantile-factorization")
    assert experiment.quick_budget_seconds <= 120
    quick = _config(True)
    assert quick["seeds"] == 1 and _config(False)["seeds"] > 1


def test_reduced_run_reports_everything():
    config = {"d": 10, "n": 30, "ranks": (2,), "seeds": 1, "learned": ("both",),
              "paper_ranks": (2,), "paper_seeds": 1, "paper_learned": ("both",), "real_n": 40,
              "real_ranks": (2,), "real_learned": ("both",), "epochs": 10,
              "baseline_epochs": 3}
    result = run_with(config, True, 0)
    metrics = result.metrics
    methods = ["learned_qmfq__both", "none", "log1p", "zscore", "quantile", "tfidf"]
    for prefix in ("random", "paper", "real"):
        for method in methods:
            assert f"heldout_mse_{prefix}_{method}_r2" in metrics
            assert f"heldout_mae_{prefix}_{method}_mean" in metrics
    assert 0 < metrics["recovery_r2_random_both"] <= 1
    assert metrics["synthetic_best_baseline_mse"] in {"none", "log1p", "zscore", "quantile",
                                                  "tfidf"}
    assert [len(table.rows) for table in result.tables] == [6, 6, 6]
    assert set(result.figures) == {"quantile_factorization_heldout",
                                   "quantile_factorization_recovery"}
    assert result.claim_shown is None
    assert "Quick run" in result.notes and "too small to show the claim" in result.notes
    assert "load_breast_cancer" in result.notes
    assert "breast cancer" in result.summary
