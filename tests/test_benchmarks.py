"""The benchmark scripts run (quick grids) and print their ratio tables."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_sorting_benchmark_quick_grid():
    completed = subprocess.run([sys.executable, str(REPO / "benchmarks" / "sorting.py"),
                                "--quick"], capture_output=True, text=True, timeout=300,
                               check=True)
    out = completed.stdout
    assert "| dtype | batch | n | lutece (us) |" in out
    assert "pairwise / lutece" in out and "Fitted exponents" in out


def test_perturbed_benchmark_quick_grid():
    completed = subprocess.run([sys.executable, str(REPO / "benchmarks" / "perturbed.py"),
                                "--quick"], capture_output=True, text=True, timeout=300,
                               check=True)
    assert "| 12x12 | 32 | 10 |" in completed.stdout
    assert "peak RSS increase" in completed.stdout
