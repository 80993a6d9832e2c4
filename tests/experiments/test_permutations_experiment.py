"""The permutations experiment runs end to end (at a toy size here; the quick mode itself is
a slow test) and reports every number, table and figure; a quick run makes no verdict."""

import math

import pytest

from lutece.experiments import get
from lutece.experiments.permutations import run_with


@pytest.mark.filterwarnings("ignore:The number of unique classes")
def test_permutations_experiment_at_toy_size():
    pretexts = [("time_frequency", "soft_rank", None), ("time_frequency", "fixed_set", 6),
                ("time", "perturbed", None)]
    config = {"seeds": [0, 1], "pretrain_clips": 16, "probe_train_clips": 24,
              "probe_test_clips": 12, "steps": 2, "batch": 8, "lr": 1e-3,
              "pretexts": pretexts}
    result = run_with(config, quick=True, seed=0)
    for key in ("TF_soft_rank", "TF_fixed_6", "T_perturbed", "random_encoder", "supervised"):
        for task in ("family", "pitch"):
            assert 0.0 <= result.metrics[f"{task}_{key}"] <= 1.0
            assert result.metrics[f"{task}_std_{key}"] >= 0.0
    for key in ("TF_soft_rank", "TF_fixed_6", "T_perturbed", "random_encoder"):
        assert result.metrics[f"pitch_error_{key}"] > 0  # semitones
    for key in ("TF_soft_rank", "TF_fixed_6", "T_perturbed"):
        assert -1.0 <= result.metrics[f"spearman_{key}"] <= 1.0
    assert result.metrics["kinds_compared"] == 1 and result.metrics["seeds"] == 2
    assert result.claim_shown is None and "too small" in result.notes
    assert set(result.figures) == {"permutations_probe"}
    table = result.tables[0]
    assert len(table.rows) == len(pretexts) + 2 and "±" in table.rows[0][3]
    assert table.rows[-1][1] == "—"  # the supervised model has no pretext score
    assert math.isfinite(result.metrics["pretrain_seconds_mean"])


@pytest.mark.slow
def test_quick_permutations_experiment_within_budget():
    result = get("permutations").run(True, 0)
    assert result.seconds < 180
    assert result.metrics["spearman_TF_soft_rank"] > 0.5  # the pretext was learned
