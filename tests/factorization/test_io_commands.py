"""Labelled CSV matrices (header and index kept, bad cells named) and ``lutece factorize``
end to end through ``lutece.cli.main``."""

from __future__ import annotations

import csv
import math
import re

import numpy as np
import pytest
import torch

from lutece import cli
from lutece.factorization import read_matrix_csv, write_matrix_csv


def write_csv(path, rows):
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


@pytest.fixture
def tiny_csv(tmp_path):
    rng = np.random.default_rng(0)
    values = np.exp(rng.standard_normal((5, 2)) @ rng.standard_normal((2, 12)))
    header = ["gene", *[f"patient {j}" for j in range(12)]]
    rows = [[f"g{i}", *(repr(float(v)) for v in values[i])] for i in range(5)]
    return write_csv(tmp_path / "data.csv", [header, *rows]), values


def read_rows(path):
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def test_roundtrip_keeps_labels_and_values(tmp_path, tiny_csv):
    path, values = tiny_csv
    matrix = read_matrix_csv(path)
    assert matrix.corner == "gene"
    assert matrix.rows == [f"g{i}" for i in range(5)]
    assert matrix.columns == [f"patient {j}" for j in range(12)]
    np.testing.assert_array_equal(matrix.values.numpy(), values)
    copy = tmp_path / "copy.csv"
    write_matrix_csv(copy, matrix.values, matrix.rows, matrix.columns, matrix.corner)
    again = read_matrix_csv(copy)
    assert (again.rows, again.columns, again.corner) == (matrix.rows, matrix.columns, "gene")
    torch.testing.assert_close(again.values, matrix.values, rtol=0, atol=0)


@pytest.mark.parametrize("cell, match", [
    ("abc", r"non-numeric cell 'abc' at line 3, row 'b', column 'y'"),
    ("", r"missing value '' at line 3, row 'b', column 'y'; pass --missing"),
    ("NA", "pass --missing"),
    ("nan", "pass --missing"),
    ("inf", "infinite value"),
])
def test_bad_cells_are_named(tmp_path, cell, match):
    path = write_csv(tmp_path / "bad.csv", [["id", "x", "y"], ["a", "1", "2"],
                                            ["b", "3", cell]])
    with pytest.raises(ValueError, match=match):
        read_matrix_csv(path)


def test_missing_cells_become_nan_on_request(tmp_path):
    path = write_csv(tmp_path / "gaps.csv", [["id", "x", "y"], ["a", "1", ""],
                                             ["b", "NaN", "4"]])
    values = read_matrix_csv(path, missing=True).values
    assert math.isnan(values[0, 1]) and math.isnan(values[1, 0]) and values[1, 1] == 4


@pytest.mark.parametrize("rows, match", [
    ([], "the file is empty"),
    ([["id"]], "at least one column label"),
    ([["id", "x"]], "no data rows"),
    ([["id", "x", "y"], ["a", "1"]], "line 2 has 2 cells, the header has 3"),
])
def test_malformed_files(tmp_path, rows, match):
    with pytest.raises(ValueError, match=match):
        read_matrix_csv(write_csv(tmp_path / "bad.csv", rows))


def test_factorize_end_to_end(tmp_path, tiny_csv, capsys):
    path, _ = tiny_csv
    out = tmp_path / "out"
    code = cli.main(["factorize", str(path), "--rank", "2", "--normalize", "both", "--out",
                     str(out), "--epochs", "15", "--quantiles", "4", "--no-progress"])
    assert code == 0
    assert "written to" in capsys.readouterr().out
    u = read_rows(out / "U.csv")
    assert u[0] == ["gene", "factor_1", "factor_2"]
    assert [row[0] for row in u[1:]] == [f"g{i}" for i in range(5)]
    v = read_rows(out / "V.csv")
    assert v[0] == ["factor", *[f"patient {j}" for j in range(12)]]
    assert [row[0] for row in v[1:]] == ["factor_1", "factor_2"]
    targets = read_matrix_csv(out / "targets.csv")
    assert targets.columns == ["0.125", "0.375", "0.625", "0.875"]
    assert targets.rows == [f"g{i}" for i in range(5)]
    assert bool((targets.values.diff(dim=-1) > 0).all())
    assert read_matrix_csv(out / "input_targets.csv").values.shape == (5, 4)
    assert read_matrix_csv(out / "reconstruction.csv").values.shape == (5, 12)
    assert (out / "targets.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_factorize_with_missing_cells(tmp_path, tiny_csv):
    path, _ = tiny_csv
    rows = read_rows(path)
    rows[2][3] = "NA"
    gappy = write_csv(tmp_path / "gappy.csv", rows)
    out = tmp_path / "gappy_out"
    arguments = ["factorize", str(gappy), "--rank", "2", "--normalize", "output", "--out",
                 str(out), "--epochs", "5", "--quantiles", "4", "--no-progress"]
    assert cli.main(arguments) == 2
    assert cli.main([*arguments, "--missing"]) == 0
    reconstruction = read_matrix_csv(out / "reconstruction.csv").values
    assert bool(torch.isfinite(reconstruction).all())


@pytest.mark.parametrize("arguments, match", [
    (["--rank", "6"], r"--rank must be <= min\(d, n\) = 5"),
    (["--rank", "2", "--quantiles", "1"], "num_quantiles must be >= 2"),
    (["--rank", "2", "--epsilon", "0"], "epsilon must be > 0"),
])
def test_factorize_errors(tmp_path, tiny_csv, capsys, arguments, match):
    path, _ = tiny_csv
    code = cli.main(["factorize", str(path), "--out", str(tmp_path / "x"), "--no-progress",
                     *arguments])
    assert code == 2
    assert re.search(match, capsys.readouterr().err)
    assert not (tmp_path / "x").exists()


def test_factorize_rejects_non_numeric_cells(tmp_path, capsys):
    path = write_csv(tmp_path / "words.csv", [["id", "x", "y"], ["a", "1", "two"],
                                              ["b", "3", "4"]])
    assert cli.main(["factorize", str(path), "--rank", "1", "--no-progress"]) == 2
    assert "non-numeric cell 'two'" in capsys.readouterr().err


def test_factorize_rejects_bad_normalize(tiny_csv, capsys):
    path, _ = tiny_csv
    with pytest.raises(SystemExit):
        cli.main(["factorize", str(path), "--rank", "2", "--normalize", "rows"])
    assert "invalid choice: 'rows'" in capsys.readouterr().err


def test_factorize_none_writes_factors_only(tmp_path, tiny_csv, capsys):
    path, _ = tiny_csv
    out = tmp_path / "plain"
    assert cli.main(["factorize", str(path), "--rank", "2", "--normalize", "none", "--out",
                     str(out), "--epochs", "3", "--no-progress"]) == 0
    assert (out / "U.csv").exists() and not (out / "targets.csv").exists()
    assert "learns no targets" in capsys.readouterr().err
