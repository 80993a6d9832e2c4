"""lutece.audio.synth: seeded, shaped as documented, and physically what it claims to be.

Oracles: exact array equality (determinism, prefix stability, identity sharing); an FFT
peak with parabolic interpolation and an autocorrelation pitch estimate (note and
voice f0 against midi_to_hz and the speaker's f0); the spectral centroid (vocal-tract
scaling); the SNR recomputed from the mixture (mix_at_snr); STFT peak tracks (chirps); the
spectrum above the highest partial (aliasing); log-log spectral slopes (coloured noise).
"""

import dataclasses

import numpy as np
import pytest
import torch
from scipy.signal import get_window
from torch.utils.data import DataLoader

from lutece.audio.synth import (
    EVENT_CLASSES,
    FAMILIES,
    NOISE_KINDS,
    TASKS,
    Instrument,
    LabelledAudio,
    Speaker,
    Word,
    background_noise,
    hz_to_midi,
    make_event,
    make_task,
    midi_to_hz,
    mix_at_snr,
    play_note,
    random_instrument,
    random_speaker,
    random_word,
    speak,
    speak_with_alignment,
    task_instruments,
    task_speakers,
    task_vocabulary,
)

SR = 16000


def _spectrum(x: np.ndarray, size: int) -> np.ndarray:
    """Magnitude spectrum under a Blackman-Harris window (side lobes < -92 dB, so that no
    side lobe passes for a partial)."""
    return np.abs(np.fft.rfft(x * get_window("blackmanharris", len(x)), size))


def _peak_frequency(x: np.ndarray, sample_rate: int, low: float, high: float) -> float:
    """Frequency of the largest spectral peak in [low, high] Hz (zero-padded 4x, parabolic
    interpolation of the log magnitude)."""
    size = 4 * len(x)
    spectrum = _spectrum(x, size)
    freqs = np.fft.rfftfreq(size, 1 / sample_rate)
    band = np.flatnonzero((freqs >= low) & (freqs <= high))
    k = band[np.argmax(spectrum[band])]
    a, b, c = np.log(spectrum[k - 1:k + 2] + 1e-300)
    return float(freqs[k] + 0.5 * (a - c) / (a - 2 * b + c) * (freqs[1] - freqs[0]))


def _lowest_partial(x: np.ndarray, sample_rate: int) -> float:
    """The lowest spectral peak within 40 dB of the strongest one."""
    size = 4 * len(x)
    spectrum = _spectrum(x, size)
    freqs = np.fft.rfftfreq(size, 1 / sample_rate)
    strong = spectrum > 0.01 * spectrum.max()
    peaks = np.flatnonzero(strong[1:-1] & (spectrum[1:-1] >= spectrum[:-2])
                           & (spectrum[1:-1] >= spectrum[2:])) + 1
    peaks = peaks[freqs[peaks] > 20]
    f = freqs[peaks[0]]
    return _peak_frequency(x, sample_rate, f * 0.97, f * 1.03)


def _autocorrelation_f0(frame: np.ndarray, sample_rate: int, fmin: float = 60.0,
                        fmax: float = 1000.0) -> float:
    """f0 = sample_rate / the lag of the largest autocorrelation peak with lag in
    [sample_rate / fmax, sample_rate / fmin]: the biased estimate, which tapers with the lag
    so that the period beats its multiples, each peak refined by parabolic interpolation
    (periods are rarely whole samples)."""
    frame = frame - frame.mean()
    n = len(frame)
    r = np.fft.irfft(np.abs(np.fft.rfft(frame, 2 * n)) ** 2)[:n]
    low, high = int(sample_rate / fmax), int(sample_rate / fmin)
    best_lag, best_value = float("nan"), -np.inf
    for lag in range(max(low, 1), high + 1):
        a, b, c = r[lag - 1], r[lag], r[lag + 1]
        if b >= a and b >= c and a - 2 * b + c < 0:
            shift = 0.5 * (a - c) / (a - 2 * b + c)
            value = b - 0.25 * (a - c) * shift
            if value > best_value:
                best_lag, best_value = lag + shift, value
    return sample_rate / best_lag


def _cents(f: float, g: float) -> float:
    return float(1200 * np.log2(f / g))


# ---------------------------------------------------------------------------------- tasks

def test_every_task_is_shaped_ranged_balanced_and_named():
    for name in TASKS:
        num_classes = {"pitch": 24, "instrument": 11}.get(name, 10)
        data = make_task(name, num_classes, seed=5)
        assert isinstance(data, LabelledAudio) and data.task == name and len(data) == num_classes
        assert data.waves.dtype == torch.float32 and data.waves.shape == (num_classes, SR)
        assert torch.isfinite(data.waves).all() and data.waves.abs().max() <= 1.0
        peaks = data.waves.abs().amax(dim=1)
        assert (peaks >= 10 ** (-20 / 20) - 1e-6).all()  # random gain -20..0 dB re peak
        assert data.labels.dtype == torch.int64
        assert torch.equal(torch.bincount(data.labels, minlength=num_classes),
                           torch.ones(num_classes, dtype=torch.int64))
        assert len(data.class_names) == data.num_classes == num_classes
        assert len(set(data.class_names)) == num_classes
        wave, label = data[0]
        assert wave.shape == (1, SR) and label.shape == () and label.dtype == torch.int64
        assert all(value.shape == (num_classes,) for value in data.metadata.values())
    assert make_task("instrument", 11, seed=0).class_names == list(FAMILIES)
    assert make_task("event", 10, seed=0).class_names == list(EVENT_CLASSES)


def test_clip_length_rate_and_collation():
    data = make_task("word", 6, seed=0, sample_rate=8000, clip_seconds=0.75)
    assert data.waves.shape == (6, 6000) and data.sample_rate == 8000
    assert data.clip_seconds == pytest.approx(0.75)
    waves, labels = next(iter(DataLoader(data, batch_size=4)))
    assert waves.shape == (4, 1, 6000) and waves.dtype == torch.float32
    assert labels.shape == (4,) and labels.dtype == torch.int64


def test_tasks_are_deterministic_and_prefix_stable():
    four = make_task("word_noisy", 4, seed=3)
    eight = make_task("word_noisy", 8, seed=3)
    assert torch.equal(four.waves, eight.waves[:4]) and torch.equal(four.labels,
                                                                   eight.labels[:4])
    again = make_task("word_noisy", 4, seed=3)
    assert torch.equal(four.waves, again.waves)
    other = make_task("word_noisy", 4, seed=4)
    assert not torch.equal(four.waves, other.waves)
    notes = make_task("pitch", 3, seed=1)
    assert torch.equal(notes.waves, make_task("pitch", 5, seed=1).waves[:3])


def test_identities_come_from_identity_seed_and_clips_from_seed():
    train = make_task("word", 2, seed=1, identity_seed=7)
    test = make_task("word", 2, seed=2, identity_seed=7)
    assert train.class_names == test.class_names
    assert make_task("word", 2, seed=1, identity_seed=8).class_names != train.class_names
    assert task_vocabulary(7)[:10] == task_vocabulary(7, 10)
    assert task_speakers(3, 10)[:4] == task_speakers(3, 4)
    assert task_speakers(3, 4) != task_speakers(4, 4)
    assert task_instruments(2) == task_instruments(2) != task_instruments(3)
    # Same clip seed, other identities: the speaker task's clips change.
    first = make_task("speaker", 2, seed=1, identity_seed=0)
    second = make_task("speaker", 2, seed=1, identity_seed=1)
    assert torch.equal(first.labels, second.labels)
    assert not torch.equal(first.waves, second.waves)
    # No two vocabulary words differ by fewer than 3 phone edits.
    words = task_vocabulary(0)
    assert len({w.phones for w in words}) == len(words)


def test_fixed_snr_and_class_count_options():
    data = make_task("event", 10, seed=0, snr_db=3.0)
    assert torch.allclose(data.metadata["snr_db"], torch.full((10,), 3.0, dtype=torch.float64))
    ranged = make_task("speaker", 4, seed=0, snr_db=(0.0, 1.0), num_classes=4)
    assert ranged.num_classes == 4 and ((ranged.metadata["snr_db"] >= 0)
                                        & (ranged.metadata["snr_db"] <= 1)).all()
    pitches = make_task("pitch", 3, seed=0, num_classes=3)
    assert pitches.class_names == ["midi48", "midi49", "midi50"]
    assert set(pitches.metadata["pitch"].tolist()) == {48, 49, 50}


# ---------------------------------------------------------------------------------- music

def test_midi_to_hz_and_back():
    assert midi_to_hz(69) == pytest.approx(440.0)
    assert midi_to_hz(21) == pytest.approx(27.5)
    assert midi_to_hz(60) == pytest.approx(261.6256, abs=1e-3)
    assert midi_to_hz(108) == pytest.approx(4186.009, abs=1e-2)
    np.testing.assert_allclose(hz_to_midi(midi_to_hz(np.arange(21, 109))), np.arange(21, 109))


@pytest.mark.parametrize("family", ["bass", "brass", "flute", "guitar", "keyboard", "reed",
                                    "string", "synth_lead", "vocal"])
def test_note_fundamental_matches_its_pitch(family):
    # The lowest spectral peak of a note without vibrato is its fundamental, within the
    # per-note tuning spread (3 cents s.d.); with vibrato, the autocorrelation
    # f0 is within a semitone.
    rng = np.random.default_rng(11)
    for pitch in (45, 60, 76):
        instrument = random_instrument(family, rng)
        steady = dataclasses.replace(instrument, vibrato_cents=0.0, detune_cents=0.0)
        if family == "keyboard" and steady.variant == "electric_piano":
            steady = dataclasses.replace(steady, mode_gains_db=(0.0, -8.0, -16.0, -40.0, -50.0))
        note = play_note(pitch, 100, family, rng=rng, instrument=steady)
        assert note.dtype == np.float32 and note.shape == (SR,)
        assert np.abs(note).max() == pytest.approx(((100 + 1) / 128) ** 2, rel=1e-5)
        found = _lowest_partial(note[: SR // 2].astype(np.float64), SR)
        # stiff strings are sharp by 1 + B/2 at the fundamental: B <= 8e-4, < 1 cent
        assert abs(_cents(found, midi_to_hz(pitch))) < 15, (family, pitch, found)
        vibrato = play_note(pitch, 100, family, rng=rng, instrument=instrument)
        frame = vibrato[int(0.3 * SR):int(0.3 * SR) + 2048].astype(np.float64)
        f0 = _autocorrelation_f0(frame, SR, fmin=90.0, fmax=1500.0)
        if family not in ("bass", "guitar", "keyboard"):  # decaying: weak by 0.3 s
            assert abs(_cents(f0, midi_to_hz(pitch))) < 100, (family, pitch, f0)


def test_high_note_has_no_energy_above_its_top_partial():
    # A sawtooth lead at MIDI 100 (2637 Hz) at 16 kHz keeps partials 1 and 2 (5274 Hz); a
    # naive sawtooth would fold partials 3.. back below 8 kHz. Everything outside +-3 % of
    # the two partials must be > 60 dB down.
    saw = Instrument("synth_lead", "saw", slope_db=6.0, lowpass_hz=float("inf"),
                     attack_s=0.01, velocity_brightness_db=0.0, max_partials=48)
    note = play_note(100, 127, "synth_lead", rng=np.random.default_rng(0), instrument=saw)
    spectrum = np.abs(np.fft.rfft(note.astype(np.float64) * np.hanning(len(note)))) ** 2
    freqs = np.fft.rfftfreq(len(note), 1 / SR)
    f0 = midi_to_hz(100)
    near = (np.abs(freqs - f0) < 0.03 * f0) | (np.abs(freqs - 2 * f0) < 0.03 * 2 * f0)
    assert spectrum[~near].sum() < 1e-6 * spectrum.sum()
    assert spectrum[freqs > 5600].sum() < 1e-7 * spectrum.sum()
    # the top note keeps only its fundamental
    top = play_note(108, 127, "synth_lead", rng=np.random.default_rng(1), instrument=saw)
    spectrum = np.abs(np.fft.rfft(top.astype(np.float64) * np.hanning(len(top)))) ** 2
    assert spectrum[np.abs(freqs - midi_to_hz(108)) > 150].sum() < 1e-6 * spectrum.sum()


def test_velocity_sets_level_and_brightness():
    instrument = random_instrument("brass", np.random.default_rng(0))

    def centroid(x):
        power = np.abs(np.fft.rfft(x)) ** 2
        return float(np.sum(np.fft.rfftfreq(len(x), 1 / SR) * power) / np.sum(power))

    soft = play_note(55, 30, "brass", rng=np.random.default_rng(1), instrument=instrument)
    loud = play_note(55, 120, "brass", rng=np.random.default_rng(1), instrument=instrument)
    assert np.abs(soft).max() < np.abs(loud).max()
    assert centroid(soft) < centroid(loud)


def test_notes_are_seeded():
    a = play_note(60, 90, "guitar", rng=np.random.default_rng(4))
    b = play_note(60, 90, "guitar", rng=np.random.default_rng(4))
    c = play_note(60, 90, "guitar", rng=np.random.default_rng(5))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    every = [play_note(40, 64, f, rng=np.random.default_rng(0), duration=0.3) for f in FAMILIES]
    assert all(np.isfinite(x).all() and x.shape == (4800,) for x in every)


# --------------------------------------------------------------------------------- speech

def test_voice_f0_lies_in_the_speakers_range():
    rng = np.random.default_rng(2)
    sonorant = [Word(("L", "AA", "M", "AA")), Word(("N", "OW", "M", "AH"))]
    medians = []
    for f0, tract in ((100.0, 17.5), (200.0, 14.5), (300.0, 12.0)):
        speaker = Speaker(f0_hz=f0, vocal_tract_cm=tract, f0_range_semitones=3.0)
        wave = speak(sonorant, speaker, rng=rng).astype(np.float64)
        frames = [wave[s:s + 1024] for s in range(0, len(wave) - 1024, 256)]
        voiced = [f for f in frames if np.sqrt(np.mean(f**2)) > 0.1 * np.abs(wave).max()]
        estimates = np.array([_autocorrelation_f0(f, SR) for f in voiced])
        assert len(estimates) >= 10
        median = float(np.median(estimates))
        # pitch shift (s.d. 1.2), declination, accent (<= 1.3 x 3 x 1.82) and drift
        assert -5 < 12 * np.log2(median / f0) < 8, (f0, median)
        medians.append(median)
    assert medians[0] < medians[1] < medians[2]


def test_shorter_vocal_tract_raises_the_spectral_centroid():
    def centroid(tract_cm):
        speaker = Speaker(f0_hz=150.0, vocal_tract_cm=tract_cm, spectral_tilt_db=6.0,
                          breathiness=0.0, jitter=0.0, shimmer=0.0)
        wave = speak(Word(("AE",)), speaker, rng=np.random.default_rng(0)).astype(np.float64)
        power = np.abs(np.fft.rfft(wave)) ** 2
        freqs = np.fft.rfftfreq(len(wave), 1 / SR)
        band = freqs < 5000
        return float(np.sum(freqs[band] * power[band]) / np.sum(power[band]))

    adult, child = centroid(17.5), centroid(12.5)
    # formants scale by 17.5 / 12.5 = 1.4; the centroid moves most of the way
    assert child > 1.15 * adult


def test_speak_with_alignment_spans_cover_the_words():
    rng = np.random.default_rng(3)
    words = [random_word(rng) for _ in range(3)]
    speaker = random_speaker(rng, "female")
    wave, spans = speak_with_alignment(words, speaker, sample_rate=SR, rng=rng)
    assert wave.dtype == np.float32 and np.abs(wave).max() == pytest.approx(0.9, rel=1e-6)
    assert [span.word for span in spans] == words
    assert 0 < spans[0].start < spans[0].end < spans[1].start < spans[1].end < spans[2].start
    assert spans[-1].end < len(wave) / SR
    inside = np.concatenate([wave[int(s.start * SR):int(s.end * SR)] for s in spans])
    gaps = np.concatenate([wave[int(a.end * SR) + 160:int(b.start * SR) - 160]
                           for a, b in zip(spans, spans[1:])] + [np.zeros(1)])
    assert np.sqrt(np.mean(inside**2)) > 10 * np.sqrt(np.mean(gaps**2))
    same = speak(words, speaker, rng=np.random.default_rng(9))
    assert np.array_equal(same, speak(words, speaker, rng=np.random.default_rng(9)))


def test_random_speakers_and_words_are_plausible():
    rng = np.random.default_rng(0)
    for kind, (f0_low, f0_high) in {"male": (85, 155), "female": (165, 255),
                                    "child": (220, 330)}.items():
        speaker = random_speaker(rng, kind)
        assert f0_low <= speaker.f0_hz <= f0_high
    males = [random_speaker(rng, "male") for _ in range(5)]
    children = [random_speaker(rng, "child") for _ in range(5)]
    assert max(s.vocal_tract_cm for s in children) < min(s.vocal_tract_cm for s in males)
    for _ in range(20):
        word = random_word(rng)
        assert 1 <= word.syllables <= 3 and word.text


# --------------------------------------------------------------------- events, noise, mix

def test_mix_at_snr_reaches_the_requested_snr():
    rng = np.random.default_rng(0)
    signal = np.zeros(8000)
    signal[2000:5000] = rng.standard_normal(3000)
    noise = rng.standard_normal(8000) * 3
    active = signal != 0
    for snr in (-5.0, 0.0, 12.5):
        for mask in (None, active):
            mixed = mix_at_snr(signal, noise, snr, active=mask)
            where = np.ones(8000, bool) if mask is None else mask
            residual = mixed - signal
            measured = 10 * np.log10(np.mean(signal[where] ** 2) / np.mean(residual[where] ** 2))
            assert abs(measured - snr) < 0.01
    assert mix_at_snr(signal.astype(np.float32), noise.astype(np.float32), 0.0).dtype \
        == np.float32


def test_chirps_sweep_the_right_way():
    for name, sign in (("chirp_up", 1), ("chirp_down", -1)):
        for seed in range(3):
            x = make_event(name, rng=np.random.default_rng(seed), duration=0.8).astype(float)
            hop, size = 64, 512
            frames = np.lib.stride_tricks.sliding_window_view(x, size)[::hop]
            spectra = np.abs(np.fft.rfft(frames * np.hanning(size), axis=1))
            energy = spectra.max(axis=1)
            peak_hz = spectra.argmax(axis=1) * SR / size
            loud = energy > 0.3 * energy.max()
            # each run of loud frames is one sweep: its peak frequency is monotonic
            runs = np.split(np.arange(len(loud)), np.flatnonzero(np.diff(loud.astype(int))) + 1)
            sweeps = [r for r in runs if loud[r[0]] and len(r) >= 6]
            assert sweeps
            for run in sweeps:
                steps = np.diff(peak_hz[run])
                assert sign * (peak_hz[run[-1]] - peak_hz[run[0]]) > 0
                assert np.mean(sign * steps >= 0) > 0.8


def test_every_event_class_renders():
    for name in EVENT_CLASSES:
        x = make_event(name, rng=np.random.default_rng(1))
        assert x.dtype == np.float32 and np.isfinite(x).all()
        assert np.abs(x).max() == pytest.approx(0.9, rel=1e-5)
        assert 0.1 * SR <= len(x) <= 1.0 * SR
    assert len(make_event("bell", rng=np.random.default_rng(0), duration=0.25)) == 4000
    for name in EVENT_CLASSES:  # every recipe stays below Nyquist at a low rate too
        x = make_event(name, sample_rate=4000, rng=np.random.default_rng(2))
        assert np.isfinite(x).all() and np.abs(x).max() == pytest.approx(0.9, rel=1e-5)


def test_background_noise_colours_have_their_spectral_slopes():
    rng = np.random.default_rng(0)
    for kind, slope in (("white", 0.0), ("pink", -1.0), ("brown", -2.0)):
        noise = background_noise(kind, 2**15, rng=rng).astype(np.float64)
        assert np.sqrt(np.mean(noise**2)) == pytest.approx(0.1, rel=1e-4)
        power = np.abs(np.fft.rfft(noise)) ** 2
        freqs = np.fft.rfftfreq(len(noise), 1 / SR)
        band = (freqs > 50) & (freqs < 5000)
        fitted = np.polyfit(np.log(freqs[band]), np.log(power[band]), 1)[0]
        assert abs(fitted - slope) < 0.1, (kind, fitted)
    talk = background_noise("babble", 8000, rng=rng)
    assert talk.shape == (8000,) and np.isfinite(talk).all()
    assert set(NOISE_KINDS) == {"white", "pink", "brown", "babble"}


# --------------------------------------------------------------------------------- errors

def test_bad_arguments_are_named_in_the_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"make_task: name must be one of 'speaker'.*got 'x'"):
        make_task("x", 4, seed=0)
    with pytest.raises(ValueError, match=r"make_task: num_clips must be .* >= 1, got 0"):
        make_task("word", 0, seed=0)
    with pytest.raises(ValueError, match=r"make_task: num_classes of task 'event' is fixed"):
        make_task("event", 4, seed=0, num_classes=3)
    with pytest.raises(ValueError, match=r"make_task: snr_db must be"):
        make_task("word", 4, seed=0, snr_db=(5, 1))
    for pitch in (20, 109, 60.5):
        with pytest.raises(ValueError, match=rf"play_note: pitch must be an integer MIDI "
                                             rf"note in 21\.\.108, got {pitch}"):
            play_note(pitch, 100, "brass", rng=rng)
    with pytest.raises(ValueError, match=r"play_note: velocity must be .* 0\.\.127, got 128"):
        play_note(60, 128, "brass", rng=rng)
    with pytest.raises(ValueError, match=r"play_note: family must be one of bass, brass.*"
                                         r"got 'drums'"):
        play_note(60, 100, "drums", rng=rng)
    with pytest.raises(ValueError, match=r"random_instrument: family must be one of"):
        random_instrument("drums", rng)
    with pytest.raises(ValueError, match=r"play_note: instrument must be an Instrument of "
                                         r"family 'brass', got 'flute'"):
        play_note(60, 100, "brass", rng=rng, instrument=random_instrument("flute", rng))
    for rate in (0, -16000, 16000.0):
        with pytest.raises(ValueError, match=rf"play_note: sample_rate must be an integer "
                                             rf"number of Hz >= 4000, got {rate}"):
            play_note(60, 100, "brass", rng=rng, sample_rate=rate)
        with pytest.raises(ValueError, match=r"make_task: sample_rate must be"):
            make_task("word", 2, seed=0, sample_rate=rate)
        with pytest.raises(ValueError, match=r"speak_with_alignment: sample_rate must be"):
            speak(Word(("AA",)), Speaker(f0_hz=100.0), rng=rng, sample_rate=rate)
    for duration in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match=r"play_note: duration must be a finite number "
                                             r"of seconds > 0, got"):
            play_note(60, 100, "brass", rng=rng, duration=duration)
        with pytest.raises(ValueError, match=r"make_task: clip_seconds must be"):
            make_task("word", 2, seed=0, clip_seconds=duration)
    with pytest.raises(ValueError, match=r"play_note: pitch 108 .* must lie below"):
        play_note(108, 100, "flute", rng=rng, sample_rate=8000)
    with pytest.raises(TypeError, match=r"play_note: rng must be a numpy.random.Generator"):
        play_note(60, 100, "brass", rng=0)
    with pytest.raises(ValueError, match=r"make_event: name must be one of 'rain'"):
        make_event("thunder", rng=rng)
    with pytest.raises(ValueError, match=r"mix_at_snr: signal and noise must be 1-d arrays"):
        mix_at_snr(np.ones(4), np.ones(5), 0.0)
    with pytest.raises(ValueError, match=r"mix_at_snr: snr_db must be a finite number"):
        mix_at_snr(np.ones(4), np.ones(4), float("inf"))
    with pytest.raises(ValueError, match=r"mix_at_snr: active must be a boolean mask"):
        mix_at_snr(np.ones(4), np.ones(4), 0.0, active=np.zeros(4, bool))
    with pytest.raises(ValueError, match=r"Word: phones must be .* got unknown \['XX'\]"):
        Word(("S", "XX"))
    with pytest.raises(ValueError, match=r"Word: phones must contain a vowel"):
        Word(("S", "T"))
    with pytest.raises(ValueError, match=r"Word: stress must index a syllable in 0\.\.0, got 1"):
        Word(("AA",), stress=1)
    with pytest.raises(ValueError, match=r"Speaker: f0_hz must be a number in"):
        Speaker(f0_hz=5.0)
    with pytest.raises(ValueError, match=r"random_speaker: kind must be one of"):
        random_speaker(rng, "robot")
    with pytest.raises(ValueError, match=r"background_noise: kind must be one of"):
        background_noise("grey", 10, rng=rng)
