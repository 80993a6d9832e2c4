"""lutece.report: metrics.json and a self-contained report.html, save/load round trip."""

from __future__ import annotations

import base64
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from lutece.report import (  # noqa: E402
    ExperimentResult,
    Table,
    figure_to_png,
    load_result,
    save_result,
    write_report,
)


def _result(**overrides) -> ExperimentResult:
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [3, 1, 2])
    fields = dict(
        name="toy", title="A toy claim", paper="Doe et al. 2020",
        claim="x beats y <by far>", summary="x reached 0.93 against 0.71 for y",
        metrics={"x_accuracy": 0.93, "y_accuracy": 0.71, "sizes": "10,100"},
        tables=[Table("Per size", ["n", "x", "y"], [[10, 0.9, 0.7], [100, 0.95, 0.72]])],
        figures={"toy_curve": figure_to_png(fig)}, seed=7, quick=True, claim_shown=None,
        notes="Quick run too small to show the claim.", seconds=1.5)
    fields.update(overrides)
    return ExperimentResult(**fields)


def test_report_is_self_contained_and_complete(tmp_path):
    result = _result()
    page_path = write_report([result], tmp_path)
    page = page_path.read_text()
    assert "x beats y &lt;by far&gt;" in page  # escaped
    assert "x reached 0.93 against 0.71 for y" in page
    assert "Quick run too small to show the claim." in page
    assert "claim inconclusive" in page
    encoded = page.split('src="data:image/png;base64,')[1].split('"')[0]
    assert base64.b64decode(encoded) == result.figures["toy_curve"]
    assert "<td>0.93</td>" in page and "<td>x_accuracy</td>" in page
    assert "--seed 7" in page and "torch" in page and "lutece" in page
    assert "src=\"http" not in page and "href=\"http" not in page  # nothing fetched
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["experiments"]["toy"]["metrics"]["x_accuracy"] == 0.93
    assert metrics["experiments"]["toy"]["seed"] == 7
    assert metrics["environment"]["torch"]


def test_save_and_load_round_trip(tmp_path):
    result = _result(claim_shown=True, quick=False)
    save_result(result, tmp_path / "toy")
    loaded = load_result(tmp_path / "toy")
    assert loaded == result
    assert sorted(p.name for p in (tmp_path / "toy").iterdir()) == ["result.json",
                                                                   "toy_curve.png"]
