"""Note spectrograms from the synthetic generator and from a local NSynth layout (a tiny
fixture written here), and the experiment run on that NSynth through the command line."""

import json

import numpy as np
import pytest
import soundfile
import torch

from lutece.audio.datasets import NSYNTH_FAMILIES
from lutece.audio.ssl import log_mel_spectrograms
from lutece.audio.ssl.data import nsynth_notes, synthetic_notes
from lutece.audio.synth import make_task, midi_to_hz
from lutece.cli import main


def _write_nsynth(root, notes, seconds=1.2):
    metadata = {}
    (root / "audio").mkdir(parents=True)
    for k, (family, pitch) in enumerate(notes):
        name = f"{NSYNTH_FAMILIES[family]}_acoustic_{k:03d}-{pitch:03d}-100"
        t = np.arange(int(seconds * 16000)) / 16000
        soundfile.write(root / "audio" / f"{name}.wav",
                        0.5 * np.sin(2 * np.pi * midi_to_hz(pitch) * t) * np.exp(-2 * t), 16000,
                        subtype="FLOAT")
        metadata[name] = {"pitch": pitch, "velocity": 100, "instrument_family": family,
                          "instrument_source": 0}
    (root / "examples.json").write_text(json.dumps(metadata))
    return root


def test_synthetic_notes_carry_the_pitch_tasks_labels():
    notes = synthetic_notes(24, seed=3)
    task = make_task("pitch", 24, seed=3, clip_seconds=0.96)
    assert torch.equal(notes.pitch_class, task.labels) and notes.num_pitch_classes == 24
    assert torch.equal(notes.family, task.metadata["family"])
    assert notes.spectrograms.shape == (24, 64, 96) and len(notes) == 24


def test_nsynth_notes_read_the_first_clip_and_the_labels(tmp_path):
    notes = [(0, 40), (3, 60), (10, 72), (5, 100), (3, 61)]
    root = _write_nsynth(tmp_path / "nsynth-test", notes)
    everything = nsynth_notes(root, pitch_range=(21, 108))
    # examples are sorted by name: bass_..., guitar_..., guitar_..., mallet_..., vocal_...
    ordered = sorted(notes, key=lambda fp: NSYNTH_FAMILIES[fp[0]])
    assert everything.family.tolist() == [f for f, _ in ordered]
    assert everything.pitch.tolist() == [p for _, p in ordered]
    assert everything.pitch_class.tolist() == [p - 21 for _, p in ordered]
    first, _ = soundfile.read(root / "audio" / "bass_acoustic_000-040-100.wav",
                              dtype="float32")
    expected = log_mel_spectrograms(torch.from_numpy(first[:15360])[None], 16000)
    assert torch.allclose(everything.spectrograms[0], expected[0], atol=1e-5)
    two = nsynth_notes(root, count=2, seed=1, pitch_range=(50, 80))
    assert len(two) == 2 and set(two.pitch.tolist()) <= {60, 61, 72}
    with pytest.raises(ValueError, match="exceeds the 3 notes"):
        nsynth_notes(root, count=4, pitch_range=(50, 80))
    with pytest.raises(ValueError, match="count must be a positive int"):
        nsynth_notes(root, count=0)


@pytest.mark.filterwarnings("ignore:The number of unique classes")
def test_the_experiment_runs_on_a_local_nsynth(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(0)
    notes = [(int(rng.integers(11)), int(rng.integers(48, 60))) for _ in range(24)]
    train_root = _write_nsynth(tmp_path / "nsynth-train", notes[:16])
    test_root = _write_nsynth(tmp_path / "nsynth-test", notes[16:])
    from lutece.experiments import permutations

    toy = {"seeds": [0], "pretrain_clips": 12, "probe_train_clips": 16, "probe_test_clips": 8,
           "steps": 2, "batch": 4, "lr": 1e-3,
           "pretexts": [("time_frequency", "soft_rank", None)]}
    monkeypatch.setattr(permutations, "default_config", lambda quick, seed: dict(toy))
    out = tmp_path / "out"
    assert main(["permutations", "--nsynth-train", str(train_root), "--nsynth-test",
                 str(test_root), "--quick", "--out", str(out)]) == 0
    saved = json.loads((out / "metrics.json").read_text())
    assert "NSynth" in json.dumps(saved)
    assert (out / "report.html").is_file()
    assert main(["permutations", "--nsynth-train", str(tmp_path / "missing"),
                 "--nsynth-test", str(test_root), "--quick", "--out", str(out)]) == 2
    assert "lutece permutations:" in capsys.readouterr().err
