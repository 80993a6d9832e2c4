"""The lutece command line: version, list, reproduce (with resume), demo, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import lutece
from lutece import cli, experiments
from lutece.report import ExperimentResult


@pytest.fixture
def toy_registry(monkeypatch):
    """Replace the registry by one fast toy experiment that counts its runs."""
    calls = []

    def run(quick: bool, seed: int) -> ExperimentResult:
        calls.append((quick, seed))
        return ExperimentResult(name="toy", title="Toy", paper="p", claim="c",
                                summary=f"ran with seed {seed}", metrics={"value": seed + 1},
                                seed=seed, quick=quick, claim_shown=True)

    monkeypatch.setattr(experiments, "_MODULES", [])
    monkeypatch.setattr(experiments, "_REGISTRY", {})
    experiments.register("toy", "Toy experiment", quick_budget_seconds=1)(run)
    return calls


def test_version_via_console_script():
    completed = subprocess.run([sys.executable, "-m", "lutece", "--version"],
                               capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == f"lutece {lutece.__version__}"


def test_list_shows_every_registered_experiment(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in experiments.registry():
        assert name in out


def test_reproduce_writes_report_and_resumes(tmp_path, toy_registry, capsys):
    out = tmp_path / "run"
    assert cli.main(["reproduce", "toy", "--quick", "--seed", "3", "--out", str(out)]) == 0
    assert toy_registry == [(True, 3)]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["experiments"]["toy"]["metrics"] == {"value": 4}
    assert "ran with seed 3" in (out / "report.html").read_text()
    # A second run reuses the finished result; --force or another seed recomputes.
    cli.main(["reproduce", "all", "--quick", "--seed", "3", "--out", str(out)])
    assert toy_registry == [(True, 3)]
    assert "reusing the finished result" in capsys.readouterr().out
    cli.main(["reproduce", "toy", "--quick", "--seed", "3", "--out", str(out), "--force"])
    cli.main(["reproduce", "toy", "--full", "--seed", "3", "--out", str(out)])
    assert toy_registry == [(True, 3), (True, 3), (False, 3)]


def test_report_keeps_other_finished_experiments_of_the_folder(tmp_path, toy_registry):
    def other(quick, seed):
        return ExperimentResult(name="other", title="Other", paper="p", claim="c",
                                summary="other ran", metrics={}, seed=seed, quick=quick)

    experiments.register("other", "Other experiment", quick_budget_seconds=1)(other)
    cli.main(["reproduce", "all", "--quick", "--out", str(tmp_path)])
    cli.main(["reproduce", "toy", "--quick", "--out", str(tmp_path), "--force"])
    page = (tmp_path / "report.html").read_text()
    assert "other ran" in page and "ran with seed 0" in page
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert list(metrics["experiments"]) == ["toy", "other"]


def test_demo_runs_every_quick_mode(tmp_path, toy_registry):
    assert cli.main(["demo", "--out", str(tmp_path)]) == 0
    assert toy_registry == [(True, 0)]
    assert (tmp_path / "report.html").exists()


def test_unknown_experiment_and_conflicting_modes(toy_registry, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["reproduce", "nope"])
    assert info.value.code == 2
    assert "unknown experiment 'nope'; choose one of: toy, all" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "toy", "--quick", "--full"])
    with pytest.raises(ValueError, match="already exists"):
        experiments.register("toy", "again", 1)(lambda quick, seed: None)


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 0
    assert "reproduce" in capsys.readouterr().out
