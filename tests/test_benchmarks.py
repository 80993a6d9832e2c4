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


def test_ot_benchmark_quick_grid():
    completed = subprocess.run([sys.executable, str(REPO / "benchmarks" / "ot.py"),
                                "--quick"], capture_output=True, text=True, timeout=300,
                               check=True)
    out = completed.stdout
    assert "| 1000 | 2 |" in out and "pot_kernel / lutece" in out
    assert "| 2 | lutece |" in out and "| lutece | implicit |" in out


def test_grouptesting_benchmark_quick_grid():
    completed = subprocess.run([sys.executable, str(REPO / "benchmarks" / "grouptesting.py"),
                                "--quick"], capture_output=True, text=True, timeout=300,
                               check=True)
    out = completed.stdout
    assert "s per campaign" in out and "| 32 | 5000 |" in out
    assert "Statistical quality" in out


def test_audio_frontends_benchmark_quick():
    completed = subprocess.run([sys.executable, str(REPO / "benchmarks" / "audio_frontends.py"),
                                "--quick", "--batch", "4"], capture_output=True, text=True,
                               timeout=300, check=True)
    out = completed.stdout
    assert "| leaf | 280 |" in out and "| mel | 0 |" in out
    assert "/ mel forward" in out and "LEAF (fast) forward is" in out


def test_diffstride_benchmark_quick():
    completed = subprocess.run([sys.executable, str(REPO / "benchmarks" / "diffstride.py"),
                                "--quick"], capture_output=True, text=True, timeout=300,
                               check=True)
    out = completed.stdout
    assert "| strided_conv |" in out and "| diffstride |" in out and "FFT share" in out
    assert "x strided convolutions'" in out
