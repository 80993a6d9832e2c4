"""Labelled matrices as CSV: features in rows, individuals in columns.

The layout of expression tables and count matrices: the first row is a header (its
first cell names the index column, the others are the column labels), every other row
starts with its row label followed by one number per column. Labels are kept as text,
exactly. Files are written atomically (temp file + rename).
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["LabelledMatrix", "read_matrix_csv", "write_matrix_csv", "write_bytes_atomic",
           "MISSING_TOKENS"]

#: cells read as missing (NaN), case-insensitively, when missing values are allowed
MISSING_TOKENS = frozenset({"", "na", "nan", "n/a", "null", "none"})


@dataclass(frozen=True)
class LabelledMatrix:
    """values: (d, n) float64; rows: d labels; columns: n labels; corner: the header's
    first cell (the index column's name)."""

    values: torch.Tensor
    rows: list[str]
    columns: list[str]
    corner: str = ""


def read_matrix_csv(path: str | os.PathLike, *, missing: bool = False) -> LabelledMatrix:
    """Read a labelled numeric matrix (see the module docstring).

    Args:
        path: the CSV file.
        missing: read empty cells and NA/NaN/null tokens as NaN (missing values); without
            it they are errors.

    Raises:
        ValueError: naming the line and column of the first bad cell: a non-numeric
            value, an infinite value, a missing value without ``missing``, a row of the
            wrong length; or an empty file, no data rows or no data columns.
    """
    path = Path(path)
    fn = f"read_matrix_csv({path.name})"
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"{fn}: the file is empty; expected a header row "
                             "(index name, column labels...)") from None
        if len(header) < 2:
            raise ValueError(f"{fn}: the header needs the index name and at least one "
                             f"column label, got {len(header)} cell(s)")
        columns = [label.strip() for label in header[1:]]
        rows: list[str] = []
        data: list[list[float]] = []
        for line_number, record in enumerate(reader, start=2):
            if not record or all(not cell.strip() for cell in record):
                continue                                        # blank line
            if len(record) != len(header):
                raise ValueError(f"{fn}: line {line_number} has {len(record)} cells, the "
                                 f"header has {len(header)}")
            label = record[0].strip()
            values = []
            for column, cell in zip(columns, record[1:]):
                values.append(_parse(fn, cell, line_number, label, column, missing))
            rows.append(label)
            data.append(values)
    if not data:
        raise ValueError(f"{fn}: no data rows after the header")
    return LabelledMatrix(torch.tensor(data, dtype=torch.float64), rows, columns,
                          header[0].strip())


def _parse(fn: str, cell: str, line: int, row: str, column: str, missing: bool) -> float:
    text = cell.strip()
    where = f"line {line}, row {row!r}, column {column!r}"
    if text.lower() in MISSING_TOKENS:
        if missing:
            return math.nan
        raise ValueError(f"{fn}: missing value {cell!r} at {where}; pass --missing "
                         "(missing=True) to treat missing cells as unobserved entries")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{fn}: non-numeric cell {cell!r} at {where}; every cell after the "
                         "row label must be a number") from None
    if math.isnan(value):
        if missing:
            return value
        raise ValueError(f"{fn}: NaN at {where}; pass --missing (missing=True) to treat "
                         "NaN cells as unobserved entries")
    if math.isinf(value):
        raise ValueError(f"{fn}: infinite value {cell!r} at {where}")
    return value


def write_matrix_csv(path: str | os.PathLike, values: torch.Tensor, rows: Sequence[str],
                     columns: Sequence[str], corner: str = "") -> None:
    """Write ``values`` (d, n) with its row and column labels, atomically; numbers use
    Python's shortest round-trip repr, NaN as an empty cell."""
    path = Path(path)
    values = values.detach().to(torch.float64).cpu()
    if values.shape != (len(rows), len(columns)):
        raise ValueError(f"write_matrix_csv: values of shape {tuple(values.shape)} do not "
                         f"match {len(rows)} row and {len(columns)} column labels")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile("w", newline="", encoding="utf-8", dir=path.parent,
                                         prefix=f".{path.name}.", delete=False)
    try:
        with handle:
            writer = csv.writer(handle)
            writer.writerow([corner, *columns])
            for label, row in zip(rows, values.tolist()):
                writer.writerow([label, *("" if math.isnan(v) else repr(v) for v in row)])
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile("wb", dir=path.parent, prefix=f".{path.name}.",
                                         delete=False)
    try:
        with handle:
            handle.write(data)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
