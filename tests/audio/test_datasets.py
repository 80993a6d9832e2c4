"""lutece.audio.datasets: tiny corpora written with soundfile directly in tmp_path; the oracles
are the written samples, analytic sines and the layouts' own split lists and transcripts."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from lutece.audio.datasets import (
    NSYNTH_FAMILIES,
    NSYNTH_SOURCES,
    AudioFolder,
    LibriSpeech,
    NSynth,
    SpeechCommands,
    collate_padded,
)


def write(path: Path, samples: int, *, rate: int = 16000, frequency: float = 440.0,
          amplitude: float = 0.5, channels: int = 1) -> np.ndarray:
    """A sine file (FLOAT for WAV, so values are exact; PCM_16 otherwise); its samples."""
    path.parent.mkdir(parents=True, exist_ok=True)
    wave = amplitude * np.sin(2 * np.pi * frequency * np.arange(samples) / rate)
    data = np.repeat(wave[:, None], channels, axis=1) if channels > 1 else wave
    soundfile.write(path, data, rate, subtype="FLOAT" if path.suffix == ".wav" else None)
    return wave.astype(np.float32)


# --------------------------------------------------------------------------- AudioFolder


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "folder"
    write(root / "cat" / "a.wav", 800, channels=2)
    write(root / "cat" / "deeper" / "b.flac", 1600)
    write(root / "dog" / "c.ogg", 1600)
    write(root / "dog" / ".hidden.wav", 100)
    write(root / ".cache" / "x.wav", 100)
    (root / "dog" / "notes.txt").write_text("not audio")
    (root / "README").write_text("files in root are ignored")
    return root


def test_audio_folder_classes_targets_and_waves(folder):
    dataset = AudioFolder(folder)
    assert dataset.classes == ["cat", "dog"] and dataset.class_to_index == {"cat": 0, "dog": 1}
    assert len(dataset) == 3
    assert [(e.path.name, e.label, e.target) for e in dataset.examples] == [
        ("a.wav", "cat", 0), ("b.flac", "cat", 0), ("c.ogg", "dog", 1)]
    wave, target = dataset[0]
    assert target == 0 and wave.dtype == torch.float32 and wave.shape == (1, 800)
    expected = 0.5 * np.sin(2 * np.pi * 440 * np.arange(800) / 16000)
    np.testing.assert_allclose(wave[0].numpy(), expected, atol=1e-6)  # stereo -> mono mean
    assert dataset[-1][1] == 1
    text = repr(dataset)
    assert text.startswith("AudioFolder(root=") and "examples=3" in text and "classes=2" in text


def test_audio_folder_extensions_and_transform(folder):
    dataset = AudioFolder(folder, extensions=(".WAV", ".ogg"), transform=lambda w: w[:, :10])
    assert [e.path.name for e in dataset.examples] == ["a.wav", "c.ogg"]  # case-insensitive
    assert [dataset[i][0].shape for i in range(2)] == [(1, 10), (1, 10)]


def test_audio_folder_resamples_8khz_to_16khz(tmp_path):
    write(tmp_path / "root" / "tone" / "a.wav", 800, rate=8000, frequency=300)
    wave, _ = AudioFolder(tmp_path / "root")[0]
    assert wave.shape == (1, 1600)
    analytic = 0.5 * np.sin(2 * np.pi * 300 * np.arange(1600) / 16000)
    np.testing.assert_allclose(wave[0, 100:-100].numpy(), analytic[100:-100], atol=1e-3)


def test_crop_and_pad_lengths(folder):
    full = AudioFolder(folder)[1][0]  # b.flac, 1600 samples
    cropped = AudioFolder(folder, clip_samples=1000)
    wave, _ = cropped[1]
    assert wave.shape == (1, 1000)
    # centre crop: starts at (1600 - 1000) // 2
    np.testing.assert_array_equal(wave.numpy(), full[:, 300:1300].numpy())
    padded, _ = AudioFolder(folder, clip_samples=1000)[0]  # a.wav, 800 samples
    assert padded.shape == (1, 1000)
    np.testing.assert_array_equal(padded[:, :800].numpy(), AudioFolder(folder)[0][0].numpy())
    assert torch.all(padded[:, 800:] == 0)


def test_seeded_random_crop_is_reproducible(tmp_path):
    ramp = np.arange(4000, dtype=np.float32) / 4000
    (tmp_path / "r" / "ramp").mkdir(parents=True)
    soundfile.write(tmp_path / "r" / "ramp" / "a.wav", ramp, 16000, subtype="FLOAT")

    def starts(seed):
        dataset = AudioFolder(tmp_path / "r", clip_samples=100, random_crop=True, seed=seed)
        waves = [dataset[0][0] for _ in range(6)]
        for wave in waves:  # each crop is a contiguous slice of the file
            start = round(float(wave[0, 0]) * 4000)
            np.testing.assert_array_equal(wave[0].numpy(), ramp[start:start + 100])
        return [round(float(w[0, 0]) * 4000) for w in waves]

    first = starts(0)
    assert first == starts(0) and first != starts(1) and len(set(first)) > 1
    dataset = AudioFolder(tmp_path / "r", clip_samples=100, random_crop=True, seed=0)
    dataset[0]
    clone = pickle.loads(pickle.dumps(dataset))  # what DataLoader workers receive
    assert clone.seed == 0 and len(clone) == 1


def test_audio_folder_errors(tmp_path, folder):
    with pytest.raises(FileNotFoundError, match="AudioFolder: root directory '.*missing'"):
        AudioFolder(tmp_path / "missing")
    (tmp_path / "flat").mkdir()
    write(tmp_path / "flat" / "a.wav", 10)
    with pytest.raises(ValueError, match=r"found no examples .*\n.*root/<class>/<file>"):
        AudioFolder(tmp_path / "flat")
    with pytest.raises(ValueError, match="class folder.*'dog'.*hold no files"):
        AudioFolder(folder, extensions=(".wav", ".flac"))
    with pytest.raises(ValueError, match="extensions must be a sequence of strings"):
        AudioFolder(folder, extensions=".wav")
    with pytest.raises(ValueError, match="AudioFolder: clip_samples must be a positive int"):
        AudioFolder(folder, clip_samples=0)
    with pytest.raises(TypeError, match="AudioFolder: sample_rate must be a positive int"):
        AudioFolder(folder, sample_rate=16000.0)
    with pytest.raises(ValueError, match="random_crop=True needs clip_samples"):
        AudioFolder(folder, random_crop=True)
    with pytest.raises(IndexError, match="index 3 is out of range for 3 examples"):
        AudioFolder(folder)[3]


# --------------------------------------------------------------------------- NSynth


@pytest.fixture
def nsynth(tmp_path):
    root = tmp_path / "nsynth-test"
    notes = {
        "bass_synthetic_033-022-050": (22, 50, 0, 2),
        "guitar_acoustic_010-060-100": (60, 100, 3, 0),
        "vocal_electronic_003-110-025": (110, 25, 10, 1),
    }
    metadata = {}
    for note_str, (pitch, velocity, family, source) in notes.items():
        write(root / "audio" / f"{note_str}.wav", 400)
        metadata[note_str] = {
            "note_str": note_str, "pitch": pitch, "velocity": velocity, "sample_rate": 16000,
            "instrument_family": family, "instrument_family_str": NSYNTH_FAMILIES[family],
            "instrument_source": source, "instrument_source_str": NSYNTH_SOURCES[source],
            "instrument": 7, "qualities": [0, 1, 0, 0, 0, 0, 0, 0, 0, 1],
        }
    (root / "examples.json").write_text(json.dumps(metadata))
    return root


def test_nsynth_targets_and_records(nsynth):
    dataset = NSynth(nsynth)
    assert len(dataset) == 3 and dataset.classes == list(NSYNTH_FAMILIES)
    assert NSynth.FAMILIES[3] == "guitar" and NSynth.SOURCES == ("acoustic", "electronic",
                                                                  "synthetic")
    wave, target = dataset[1]
    assert wave.shape == (1, 400)
    assert target == {"pitch": 60, "velocity": 100, "instrument_family": 3,
                      "instrument_source": 0}
    example = dataset.examples[1]
    assert example.note_str == "guitar_acoustic_010-060-100"
    assert example.path == nsynth / "audio" / "guitar_acoustic_010-060-100.wav"
    assert example.instrument_family_str == "guitar" and example.instrument_source_str == (
        "acoustic")
    assert example.qualities == (0, 1, 0, 0, 0, 0, 0, 0, 0, 1) and example.instrument == 7


def test_nsynth_filters_keep_nsynth_indices(nsynth):
    piano_range = NSynth(nsynth, pitch_range=(21, 108))
    assert [e.pitch for e in piano_range.examples] == [22, 60]
    vocal = NSynth(nsynth, families=["vocal"])
    assert len(vocal) == 1 and vocal[0][1]["instrument_family"] == 10
    assert "families=['vocal']" in repr(vocal)


def test_nsynth_errors(tmp_path, nsynth):
    with pytest.raises(FileNotFoundError, match="NSynth: root directory"):
        NSynth(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"found no examples.*\n.*examples\.json.*\n.*audio/"):
        NSynth(tmp_path / "empty")
    with pytest.raises(ValueError, match="families must be names from bass, brass.*'piano'"):
        NSynth(nsynth, families=["piano"])
    with pytest.raises(ValueError, match="pitch_range must be"):
        NSynth(nsynth, pitch_range=(108, 21))
    with pytest.raises(ValueError, match="no note .* passes the filters"):
        NSynth(nsynth, pitch_range=(0, 10))
    (nsynth / "examples.json").write_text(json.dumps({"x": {"pitch": 60}}))
    with pytest.raises(ValueError, match="entry 'x' .* must be an object with the fields"):
        NSynth(nsynth)


# --------------------------------------------------------------------------- Speech Commands


@pytest.fixture
def speech_commands(tmp_path):
    root = tmp_path / "speech_commands"
    files = ["yes/aaa111_nohash_0.wav", "yes/aaa111_nohash_1.wav", "yes/bbb222_nohash_0.wav",
             "no/ccc333_nohash_0.wav", "no/ddd444_nohash_2.wav", "up/eee555_nohash_0.wav"]
    for index, relative in enumerate(files):
        write(root / relative, 200 + 10 * index)
    write(root / "_background_noise_" / "white_noise.wav", 300)
    (root / "validation_list.txt").write_text("yes/bbb222_nohash_0.wav\nno/ccc333_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("up/eee555_nohash_0.wav\n")
    return root


def test_speech_commands_splits_follow_the_lists(speech_commands):
    splits = {subset: SpeechCommands(speech_commands, subset)
              for subset in ("training", "validation", "testing")}
    names = {subset: [f"{e.word}/{e.path.name}" for e in d.examples]
             for subset, d in splits.items()}
    assert names == {
        "training": ["no/ddd444_nohash_2.wav", "yes/aaa111_nohash_0.wav",
                     "yes/aaa111_nohash_1.wav"],
        "validation": ["no/ccc333_nohash_0.wav", "yes/bbb222_nohash_0.wav"],
        "testing": ["up/eee555_nohash_0.wav"],
    }
    training = splits["training"]
    assert training.classes == ["no", "up", "yes"]  # _background_noise_ excluded
    assert [training[i][1] for i in range(3)] == [0, 2, 2]
    assert splits["testing"][0][1] == 1
    record = training.examples[2]
    assert record.speaker_id == "aaa111" and record.utterance_number == 1
    assert training[0][0].shape == (1, 240)
    assert "subset='training'" in repr(training)


def test_speech_commands_words_restricts_the_labels(speech_commands):
    dataset = SpeechCommands(speech_commands, "validation", words=["yes", "no"])
    assert dataset.classes == ["no", "yes"]
    assert [dataset[i][1] for i in range(len(dataset))] == [0, 1]


def test_speech_commands_errors(tmp_path, speech_commands):
    with pytest.raises(ValueError, match="subset must be one of 'training', 'validation', "
                                         "'testing', got 'train'"):
        SpeechCommands(speech_commands, "train")
    with pytest.raises(ValueError, match=r"words \['maybe'\] .*valid: no, up, yes"):
        SpeechCommands(speech_commands, words=["maybe"])
    with pytest.raises(ValueError, match="the 'testing' subset .* is empty"):
        SpeechCommands(speech_commands, "testing", words=["yes"])
    with pytest.raises(FileNotFoundError, match="SpeechCommands: root directory"):
        SpeechCommands(tmp_path / "nope")
    (speech_commands / "testing_list.txt").unlink()
    with pytest.raises(ValueError, match=r"found no examples.*\n.*_nohash_.*\n.*testing_list"):
        SpeechCommands(speech_commands)


# --------------------------------------------------------------------------- LibriSpeech


def write_chapter(subset_dir: Path, speaker: int, chapter: int, lengths: list[int],
                  words: list[str]) -> None:
    folder = subset_dir / str(speaker) / str(chapter)
    lines = []
    for utterance, (length, text) in enumerate(zip(lengths, words)):
        write(folder / f"{speaker}-{chapter}-{utterance:04d}.flac", length)
        lines.append(f"{speaker}-{chapter}-{utterance:04d} {text}")
    (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def librispeech(tmp_path):
    root = tmp_path / "LibriSpeech"
    write_chapter(root / "dev-clean", 103, 1240, [300, 500], ["CHAPTER ONE", "MISSUS RACHEL"])
    write_chapter(root / "dev-clean", 19, 198, [400], ["NORTHANGER ABBEY"])
    (root / "test-other").mkdir()
    return root


def test_librispeech_targets_and_transcripts(librispeech):
    dataset = LibriSpeech(librispeech, "dev-clean")
    assert len(dataset) == 3 and dataset.classes == [19, 103]  # numeric order
    wave, target = dataset[0]
    assert wave.shape == (1, 400)
    assert target == {"speaker": 0, "transcript": "NORTHANGER ABBEY", "speaker_id": 19,
                      "chapter_id": 198, "utterance_id": 0}
    assert dataset[2][1] == {"speaker": 1, "transcript": "MISSUS RACHEL", "speaker_id": 103,
                             "chapter_id": 1240, "utterance_id": 1}
    assert dataset.examples[2].path.name == "103-1240-0001.flac"


def test_librispeech_collate_pads_and_keeps_strings(librispeech):
    dataset = LibriSpeech(librispeech, "dev-clean")
    assert LibriSpeech.collate is not None
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, collate_fn=LibriSpeech.collate)
    waves, lengths, targets = next(iter(loader))
    assert waves.shape == (3, 1, 500) and waves.dtype == torch.float32
    assert lengths.tolist() == [400, 300, 500]
    np.testing.assert_array_equal(waves[1, :, :300].numpy(), dataset[1][0].numpy())
    assert torch.all(waves[0, :, 400:] == 0) and torch.all(waves[1, :, 300:] == 0)
    assert targets["transcript"] == ["NORTHANGER ABBEY", "CHAPTER ONE", "MISSUS RACHEL"]
    assert targets["speaker"].tolist() == [0, 1, 1] and targets["speaker"].dtype == torch.int64
    _, _, labels = collate_padded([(torch.zeros(1, 2), 3), (torch.zeros(1, 5), 1)])
    assert labels.tolist() == [3, 1]
    with pytest.raises(ValueError, match="collate_padded: waves must all be"):
        collate_padded([(torch.zeros(1, 2), 0), (torch.zeros(2, 2), 0)])


def test_librispeech_errors(tmp_path, librispeech):
    with pytest.raises(ValueError, match="subset must be a sub-folder .* one of dev-clean, "
                                         "test-other; got 'train-clean-100'"):
        LibriSpeech(librispeech)
    with pytest.raises(ValueError, match=r"found no examples.*\n.*trans\.txt"):
        LibriSpeech(librispeech, "test-other")
    with pytest.raises(FileNotFoundError, match="LibriSpeech: root directory"):
        LibriSpeech(tmp_path / "nope")
    chapter = librispeech / "dev-clean" / "19" / "198"
    (chapter / "19-198.trans.txt").write_text("19-198-0000 NORTHANGER ABBEY\n"
                                              "19-198-0007 MISSING\n")
    with pytest.raises(ValueError, match=r"lists 19-198-0007 but .*19-198-0007\.flac' is missing"):
        LibriSpeech(librispeech, "dev-clean")
    (chapter / "19-198.trans.txt").write_text("NORTHANGER ABBEY\n")
    with pytest.raises(ValueError, match="line 1 of .* must start with '19-198-<utterance>'"):
        LibriSpeech(librispeech, "dev-clean")
    (chapter / "19-198.trans.txt").unlink()
    with pytest.raises(ValueError, match="holds audio but no transcript file '19-198.trans.txt'"):
        LibriSpeech(librispeech, "dev-clean")
