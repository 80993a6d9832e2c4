"""lutece.report: metrics.json and a self-contained report.html, save/load round trip."""

from __future__ import annotations

import base64
import io
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from scipy.io import wavfile  # noqa: E402

from lutece.report import (  # noqa: E402
    ExperimentResult,
    Table,
    figure_to_png,
    load_result,
    save_result,
    wave_to_wav,
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


def test_wave_to_wav_reads_back_with_scipy():
    wave = torch.linspace(-0.75, 0.75, 801)
    wave[0], wave[-1] = -2.0, 2.0  # clipped to full scale
    rate, samples = wavfile.read(io.BytesIO(wave_to_wav(wave, 8000)))
    assert rate == 8000 and samples.dtype == np.int16 and samples.shape == (801,)
    expected = np.round(np.clip(wave.numpy().astype(np.float64), -1, 1) * 32767)
    np.testing.assert_array_equal(samples, expected.astype(np.int16))


@pytest.mark.parametrize("wave, rate, match", [
    (np.zeros((2, 10)), 8000, "1-D"), (np.zeros(0), 8000, "1-D"),
    (np.array([0.0, np.nan]), 8000, "NaN"), (np.zeros(10), 0, "sample_rate"),
    (np.zeros(10), 8000.0, "sample_rate")])
def test_wave_to_wav_rejects_bad_input(wave, rate, match):
    with pytest.raises(ValueError, match=match):
        wave_to_wav(wave, rate)


def test_sounds_are_saved_loaded_and_embedded_without_autoplay(tmp_path):
    wav = wave_to_wav(np.sin(np.linspace(0, 100, 4000)), 8000)
    result = _result(audio={"toy_prompt": wav})
    save_result(result, tmp_path / "toy")
    assert (tmp_path / "toy" / "toy_prompt.wav").read_bytes() == wav
    assert load_result(tmp_path / "toy") == result
    page = write_report([result], tmp_path).read_text()
    player = page.split("<audio")[1].split("</audio>")[0]
    assert 'preload="none"' in player and "autoplay" not in player
    encoded = player.split('src="data:audio/wav;base64,')[1].split('"')[0]
    assert base64.b64decode(encoded) == wav


def test_a_result_saved_before_sounds_existed_still_loads(tmp_path):
    save_result(_result(), tmp_path / "toy")
    record = json.loads((tmp_path / "toy" / "result.json").read_text())
    del record["audio"]
    (tmp_path / "toy" / "result.json").write_text(json.dumps(record))
    assert load_result(tmp_path / "toy").audio == {}
