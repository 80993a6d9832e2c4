"""The benchmark scripts run (quick grids) and print their ratio tables."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _quick_output(script: str, *arguments: str) -> str:
    """stdout of ``benchmarks/<script> --quick [arguments]`` (which must exit 0)."""
    completed = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), "--quick",
                                *arguments], capture_output=True, text=True, timeout=300,
                               check=True)
    return completed.stdout


def test_sorting_benchmark_quick_grid():
    out = _quick_output("sorting.py")
    assert "| dtype | batch | n | lutece (us) |" in out
    assert "pairwise / lutece" in out and "Fitted exponents" in out


def test_perturbed_benchmark_quick_grid():
    out = _quick_output("perturbed.py")
    assert "| 12x12 | 32 | 10 |" in out
    assert "peak RSS increase" in out


def test_ot_benchmark_quick_grid():
    out = _quick_output("ot.py")
    assert "| 1000 | 2 |" in out and "pot_kernel / lutece" in out
    assert "| 2 | lutece |" in out and "| lutece | implicit |" in out


def test_ot_extensions_benchmark_quick_grid():
    # --smoke: the quick grid cut to five worker processes (low rank at 1000 and 2000, POT and
    # full Sinkhorn at 1000, lutece's GW at 300), each ~3 s of imports alone
    out = _quick_output("ot_extensions.py", "--smoke")
    assert "| 1000 |" in out and "pot / lutece" in out and "Fitted exponents" in out
    assert "| 300 |" in out  # the Gromov-Wasserstein row


def test_grouptesting_benchmark_quick_grid():
    out = _quick_output("grouptesting.py")
    assert "s per campaign" in out and "| 32 | 5000 |" in out
    assert "Statistical quality" in out


def test_audio_frontends_benchmark_quick():
    out = _quick_output("audio_frontends.py", "--batch", "4")
    assert "| leaf | 280 |" in out and "| mel | 0 |" in out
    assert "/ mel forward" in out and "LEAF (fast) forward is" in out


def test_diffstride_benchmark_quick():
    out = _quick_output("diffstride.py")
    assert "| strided_conv |" in out and "| diffstride |" in out and "FFT share" in out
    assert "x strided convolutions'" in out


def test_diarization_benchmark_quick():
    out = _quick_output("diarization.py")
    assert "| DIVE (96 ch, 4 speakers/window) |" in out and "RTF / DIVE's" in out
    assert "growth MiB" in out and "frames/s" in out


def test_audiolm_benchmark_quick():
    out = _quick_output("audiolm.py")
    assert "| codec | parameters | kbit/s | encode s | encode RTF |" in out
    assert "| AudioLM (CodecConfig()) |" in out and "| small |" in out
    assert "| AudioLM size, spectral |" in out and "| small, spectral |" in out
    assert "| small, spectral magnitude |" in out
    assert "| tokens | cached s | cached tokens/s | uncached s | uncached tokens/s |" in out
    assert "| 200 |" in out and "KV cache speedup at 200 tokens:" in out
