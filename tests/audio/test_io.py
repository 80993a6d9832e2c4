"""lutece.audio.io: oracles are files written/read by soundfile directly, analytic sines and
scipy.signal.resample_poly."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch
from scipy.signal import resample_poly

from lutece.audio import io
from lutece.audio.io import AudioFileError, AudioInfo, info, load, resample, save

PCM16_STEP = 1 / 32768


def sine(frequency: float, sample_rate: int, seconds: float, *, phase: float = 0.0,
         amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return amplitude * np.sin(2 * np.pi * frequency * t + phase)


@pytest.fixture
def stereo_pcm16(tmp_path):
    """A 0.5 s stereo PCM_16 WAV at 8 kHz, its int16 samples (frames, channels)."""
    rng = np.random.default_rng(0)
    samples = rng.integers(-20000, 20000, size=(4000, 2), dtype=np.int16)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, samples, 8000, subtype="PCM_16")
    return path, samples


# --------------------------------------------------------------------------- load


def test_load_returns_soundfiles_samples_channels_first(stereo_pcm16):
    path, samples = stereo_pcm16
    wave, rate = load(path, mono=False)
    assert rate == 8000 and wave.dtype == torch.float32 and wave.shape == (2, 4000)
    np.testing.assert_allclose(wave.numpy(), samples.T / 32768, atol=PCM16_STEP)
    assert float(wave.abs().max()) <= 1


def test_load_mono_averages_channels(stereo_pcm16):
    path, samples = stereo_pcm16
    wave, _ = load(path)  # mono=True by default
    assert wave.shape == (1, 4000)
    np.testing.assert_allclose(wave[0].numpy(), samples.mean(axis=1) / 32768, atol=PCM16_STEP)


def test_load_offset_and_duration_read_only_that_part(stereo_pcm16):
    path, samples = stereo_pcm16
    wave, _ = load(path, mono=False, offset=0.25, duration=0.1)  # frames 2000..2799
    np.testing.assert_allclose(wave.numpy(), samples[2000:2800].T / 32768, atol=PCM16_STEP)
    tail, _ = load(path, mono=False, offset=0.45, duration=10.0)  # past the end: what is left
    assert tail.shape == (2, 400)


def test_load_many_channels_without_mono(tmp_path):
    data = np.random.default_rng(1).uniform(-0.5, 0.5, size=(100, 10)).astype(np.float32)
    soundfile.write(tmp_path / "ten.wav", data, 8000, subtype="FLOAT")
    wave, _ = load(tmp_path / "ten.wav", mono=False)
    np.testing.assert_array_equal(wave.numpy(), data.T)


def test_load_resamples_to_the_requested_rate(tmp_path):
    soundfile.write(tmp_path / "a.wav", sine(440, 8000, 0.5), 8000, subtype="FLOAT")
    wave, rate = load(tmp_path / "a.wav", sample_rate=16000)
    assert rate == 16000 and wave.shape == (1, 8000) and wave.dtype == torch.float32
    t = np.arange(8000) / 16000
    np.testing.assert_allclose(wave[0, 500:-500].numpy(),
                               0.5 * np.sin(2 * np.pi * 440 * t[500:-500]), atol=1e-3)


# --------------------------------------------------------------------------- save


@pytest.mark.parametrize("extension", [".wav", ".flac"])
def test_save_pcm16_round_trip(tmp_path, extension):
    wave = torch.from_numpy(np.stack([sine(440, 16000, 0.25), sine(660, 16000, 0.25)]))
    save(tmp_path / f"a{extension}", wave.float(), 16000)
    data, rate = soundfile.read(tmp_path / f"a{extension}", dtype="float64", always_2d=True)
    assert rate == 16000 and soundfile.info(tmp_path / f"a{extension}").subtype == "PCM_16"
    np.testing.assert_allclose(data.T, wave.numpy(), atol=PCM16_STEP)
    loaded, _ = load(tmp_path / f"a{extension}", mono=False)
    np.testing.assert_allclose(loaded.numpy(), wave.numpy(), atol=PCM16_STEP)


def test_save_float_wav_is_exact_and_accepts_numpy_and_1d(tmp_path):
    wave = np.random.default_rng(2).uniform(-1, 1, size=1000).astype(np.float32)
    save(tmp_path / "a.WAV", wave, 22050, subtype="FLOAT")
    assert soundfile.info(tmp_path / "a.WAV").subtype == "FLOAT"
    data, rate = soundfile.read(tmp_path / "a.WAV", dtype="float32")
    assert rate == 22050 and data.ndim == 1
    np.testing.assert_array_equal(data, wave)


def test_save_ogg_vorbis_round_trip_is_close(tmp_path):
    reference = np.stack([sine(440, 16000, 1.0), sine(1000, 16000, 1.0, amplitude=0.3)])
    save(tmp_path / "a.ogg", torch.from_numpy(reference), 16000)
    assert soundfile.info(tmp_path / "a.ogg").subtype == "VORBIS"
    decoded, _ = load(tmp_path / "a.ogg", mono=False)
    decoded = decoded.double().numpy()
    assert decoded.shape == reference.shape
    for channel in range(2):
        correlation = np.corrcoef(decoded[channel], reference[channel])[0, 1]
        noise = decoded[channel] - reference[channel]
        snr_db = 10 * np.log10((reference[channel] ** 2).sum() / (noise ** 2).sum())
        assert correlation > 0.99 and snr_db > 20


def test_save_is_atomic_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "a.wav"
    save(path, torch.zeros(1, 100), 8000)
    save(path, torch.full((1, 50), 0.5), 8000)  # overwrite
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]
    assert soundfile.info(path).frames == 50

    def failing_write(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(io.soundfile, "write", failing_write)
    with pytest.raises(RuntimeError, match="disk full"):
        save(path, torch.zeros(1, 10), 8000)
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]  # old file intact, no temp
    assert soundfile.info(path).frames == 50


# --------------------------------------------------------------------------- info


def test_info_reads_the_header(tmp_path):
    soundfile.write(tmp_path / "a.flac", np.zeros((1600, 2)), 16000, subtype="PCM_24")
    assert info(tmp_path / "a.flac") == AudioInfo(
        sample_rate=16000, num_frames=1600, num_channels=2, duration_seconds=0.1,
        format="FLAC", subtype="PCM_24")


# --------------------------------------------------------------------------- resample


def test_resample_sine_matches_the_analytic_sine():
    wave = torch.from_numpy(sine(440, 44100, 1.0, phase=0.3))
    out = resample(wave, 44100, 16000)
    assert out.shape == (16000,) and out.dtype == torch.float64
    expected = sine(440, 16000, 1.0, phase=0.3)
    np.testing.assert_allclose(out[200:-200].numpy(), expected[200:-200], atol=1e-3)


def test_resample_agrees_with_scipy_resample_poly():
    signal = sine(440, 44100, 0.5) + sine(3000, 44100, 0.5, amplitude=0.2)
    out = resample(torch.from_numpy(signal).float(), 44100, 16000)
    reference = resample_poly(signal, 160, 441)  # 16000 / 44100 = 160 / 441
    assert out.shape == reference.shape and out.dtype == torch.float32
    np.testing.assert_allclose(out[200:-200].numpy(), reference[200:-200], atol=2e-3)


def test_resample_shapes_dtypes_and_channel_independence():
    rng = np.random.default_rng(3)
    batch = torch.from_numpy(rng.standard_normal((3, 2, 800)))
    out = resample(batch, 8000, 16000, quality="VHQ")
    assert out.shape == (3, 2, 1600) and out.dtype == torch.float64
    single = resample(batch[1, 0], 8000, 16000, quality="VHQ")
    np.testing.assert_array_equal(out[1, 0].numpy(), single.numpy())
    assert resample(batch[0].half(), 8000, 16000).dtype == torch.float16
    for samples in (100, 441, 999):
        assert resample(torch.zeros(samples), 44100, 16000).shape[-1] == round(
            samples * 16000 / 44100)


def test_resample_identity_and_no_gradient():
    wave = torch.randn(2, 100, requires_grad=True)
    assert resample(wave, 16000, 16000) is wave
    assert not resample(wave, 16000, 8000).requires_grad


# --------------------------------------------------------------------------- errors


def test_missing_file_names_the_path(tmp_path):
    for function in (load, info):
        with pytest.raises(FileNotFoundError, match="no such audio file.*nope.wav"):
            function(tmp_path / "nope.wav")


def test_corrupt_file_is_an_audio_file_error(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"this is not audio")
    assert issubclass(AudioFileError, ValueError)
    with pytest.raises(AudioFileError, match=r"load: cannot read '.*bad\.wav'.*not recognised"):
        load(tmp_path / "bad.wav")
    with pytest.raises(AudioFileError, match=r"info: cannot read '.*bad\.wav'"):
        info(tmp_path / "bad.wav")
    with pytest.raises(IsADirectoryError, match="directory"):
        load(tmp_path)


def test_empty_audio_is_an_audio_file_error(tmp_path):
    soundfile.write(tmp_path / "empty.wav", np.zeros(0), 8000)
    with pytest.raises(AudioFileError, match=r"contains no audio \(0 frames\)"):
        load(tmp_path / "empty.wav")
    soundfile.write(tmp_path / "short.wav", np.zeros(800), 8000)
    with pytest.raises(AudioFileError, match=r"offset=0.1 s leaves no audio.*lasts 0.1 s"):
        load(tmp_path / "short.wav", offset=0.1)


def test_load_argument_errors(stereo_pcm16):
    path, _ = stereo_pcm16
    with pytest.raises(ValueError, match="load: sample_rate must be a positive int, got -1"):
        load(path, sample_rate=-1)
    with pytest.raises(TypeError, match="load: sample_rate must be a positive int.*float"):
        load(path, sample_rate=16000.0)
    with pytest.raises(ValueError, match="load: offset must be finite and >= 0"):
        load(path, offset=-1.0)
    with pytest.raises(ValueError, match="load: duration must be finite and > 0"):
        load(path, duration=0)
    with pytest.raises(TypeError, match="load: mono must be a bool"):
        load(path, mono="yes")


def test_save_shape_errors(tmp_path):
    path = tmp_path / "a.wav"
    with pytest.raises(ValueError, match=r"got a 3-d array of shape \(1, 2, 100\)"):
        save(path, torch.zeros(1, 2, 100), 8000)
    with pytest.raises(ValueError, match=r"got shape \(16000, 2\); pass \(channels, samples\), "
                                         r"e\.g\. wave\.T"):
        save(path, np.zeros((16000, 2), dtype=np.float32), 8000)
    with pytest.raises(ValueError, match="wave has 9 channels; at most 8"):
        save(path, torch.zeros(9, 100), 8000)
    with pytest.raises(ValueError, match="wave has no samples"):
        save(path, torch.zeros(0), 8000)
    assert list(tmp_path.iterdir()) == []


def test_save_value_and_type_errors(tmp_path):
    path = tmp_path / "a.wav"
    with pytest.raises(TypeError, match="save: wave must have a floating-point dtype, got int16"):
        save(path, np.zeros(10, dtype=np.int16), 8000)
    with pytest.raises(TypeError, match="save: wave must have a floating-point dtype"):
        save(path, torch.zeros(10, dtype=torch.int32), 8000)
    with pytest.raises(TypeError, match="save: wave must be a torch.Tensor or numpy.ndarray"):
        save(path, [0.0, 0.1], 8000)
    with pytest.raises(ValueError, match=r"save: wave contains 2 NaN or infinite"):
        save(path, torch.tensor([0.0, float("nan"), float("inf")]), 8000)
    with pytest.raises(ValueError, match="save: sample_rate must be a positive int, got 0"):
        save(path, torch.zeros(10), 0)
    with pytest.raises(TypeError, match="save: sample_rate must be a positive int"):
        save(path, torch.zeros(10), True)
    with pytest.raises(ValueError, match=r"extension '\.mp3'; supported: \.wav, \.flac, \.ogg"):
        save(tmp_path / "a.mp3", torch.zeros(10), 8000)
    with pytest.raises(ValueError, match="subtype for FLAC must be one of PCM_16, PCM_24"):
        save(tmp_path / "a.flac", torch.zeros(10), 8000, subtype="FLOAT")
    with pytest.raises(FileNotFoundError, match="directory of .* does not exist"):
        save(tmp_path / "missing" / "a.wav", torch.zeros(10), 8000)
    assert list(tmp_path.iterdir()) == []


def test_resample_errors():
    wave = torch.zeros(100)
    with pytest.raises(ValueError, match="resample: orig_sr must be a positive int, got 0"):
        resample(wave, 0, 16000)
    with pytest.raises(TypeError, match="resample: new_sr must be a positive int"):
        resample(wave, 8000, 16000.5)
    with pytest.raises(ValueError, match="resample: quality must be one of .*got 'best'"):
        resample(wave, 8000, 16000, quality="best")
    with pytest.raises(ValueError, match=r"resample: wave must be .*got a 4-d tensor"):
        resample(torch.zeros(1, 1, 1, 10), 8000, 16000)
    with pytest.raises(TypeError, match="resample: wave must have a floating-point dtype"):
        resample(torch.zeros(10, dtype=torch.int16), 8000, 16000)
    with pytest.raises(TypeError, match="resample: wave must be a torch.Tensor"):
        resample(np.zeros(10), 8000, 16000)
    with pytest.raises(ValueError, match="resample: wave contains 1 NaN"):
        resample(torch.tensor([0.0, float("nan")] + [0.0] * 8), 8000, 16000)
