"""The LEAF experiment runs end to end (at a toy size here; the quick mode itself is a slow
test) and reports every number, table and figure; a quick run makes no verdict."""

import pytest

from lutece.experiments import get
from lutece.experiments.leaf import FRONTENDS, run_with


def test_leaf_experiment_at_toy_size():
    tasks = ("word", "event")
    config = {"tasks": tasks, "train_clips": 20, "test_clips": 10, "steps": 3, "batch": 8,
              "seeds": [0, 1], "lr": 1e-3, "clip_seconds": 0.3, "sample_rate": 8000}
    result = run_with(config, quick=True, seed=0)
    for name in FRONTENDS:
        for task in tasks:
            assert 0.0 <= result.metrics[f"accuracy_{name}_{task}"] <= 1.0
            assert result.metrics[f"accuracy_std_{name}_{task}"] >= 0.0
        assert result.metrics[f"train_seconds_{name}"] > 0
    assert result.claim_shown is None and "too small" in result.notes
    assert set(result.figures) == {"leaf_accuracy", "leaf_filters"}
    table = result.tables[0]
    assert table.columns == ["task", "chance"] + list(FRONTENDS)
    assert len(table.rows) == len(tasks) + 1 and "±" in table.rows[-1][2]  # two seeds
    assert result.metrics["leaf_center_drift_octaves_max"] > 0  # the filters were trained
    assert result.metrics["seeds"] == 2 and result.metrics["tasks"] == 2


@pytest.mark.slow
def test_quick_leaf_experiment_within_budget():
    result = get("leaf").run(True, 0)
    assert result.seconds < 180
    # 50 steps are too few to rank frontends, but every frontend must learn something
    chance = result.metrics["average_chance"]
    for name in FRONTENDS:
        assert result.metrics[f"average_accuracy_{name}"] > 1.5 * chance
