"""The DiffStride experiment end to end at a toy size (images and the 1-D audio path);
the quick mode itself is a slow test."""

import pytest

from lutece.experiments import get
from lutece.experiments.diffstride import METHODS, poor_stride_configs, run_with


def test_poor_stride_configs_are_distinct_seeded_and_aggressive():
    configs = poor_stride_configs(5, seed=3)
    assert configs == poor_stride_configs(5, seed=3) and len(set(configs)) == 5
    for stem, stage1, *rest in configs:
        assert stem == 1 and stage1 == 1 and set(rest) <= {1, 2, 3}
        assert rest[0] * rest[1] * rest[2] >= 12


def test_diffstride_experiment_at_toy_size():
    config = {"datasets": ("shapes", "words"), "poor_configs": 1, "seeds": [0], "steps": 2,
              "batch": 8, "width": 4, "smoothness": 2.0, "stride_lr": 0.01,
              "lambdas": (0.0, 1.0), "lambda_dataset": "shapes", "shape_images": 40,
              "word_clips": 20}
    result = run_with(config, quick=True, seed=0)
    assert result.claim_shown is None and "too small" in result.notes
    assert set(result.figures) == {"diffstride_robustness", "diffstride_tradeoff"}
    robustness, tradeoff = result.tables
    assert len(robustness.rows) == 2 * 2 and robustness.columns[2:5] == list(METHODS)
    assert len(tradeoff.rows) == 2 and tradeoff.rows[0][2] == "1.000"
    for method in METHODS:
        assert 0 <= result.metrics[f"poor_mean_accuracy_{method}"] <= 1
    assert result.metrics["tradeoff_macs_ratio_lambda_0"] > 0


@pytest.mark.slow
def test_quick_diffstride_experiment_within_budget():
    result = get("diffstride").run(True, 0)
    assert result.seconds < 180
