"""Musical notes of NSynth's eleven instrument families by additive synthesis.

NSynth (J. Engel et al., "Neural Audio Synthesis of Musical Notes with WaveNet
Autoencoders", ICML 2017) labels every note with one of eleven instrument families; the
names and their order here are NSynth's (``instrument_family`` 0..10), so that labels made
here line up with the NSynth loader's. A note is a sum of sinusoidal partials (additive
synthesis, after Risset & Mathews 1969) computed by one compiled kernel:

    x(t) = env(t) sum_k a_k (1 - exp(-t / tau_k)) exp(-d_k t) sin(2 pi r_k phi(t) + theta_k)

where phi(t) is the running phase of the fundamental in cycles (vibrato modulates it), r_k
the partial's frequency ratio (k for a harmonic series; k sqrt(1 + B k^2) for stiff strings,
Fletcher 1964; measured mode ratios for bars), a_k its amplitude (a spectral slope in dB per
octave, an even-harmonic gain, a comb for the pluck or hammer position, resonances of the
body or vocal tract evaluated at the partial's frequency, a low-pass), d_k its decay rate
(faster for higher partials of plucked and struck instruments) and tau_k its attack time
(slower for the higher partials of brass). env(t) is an attack/decay/sustain/release
envelope with the note held for 75 % of the duration (NSynth holds 3 s of 4). Breath, bow,
hammer and mallet noises are band-passed noise. Every partial is kept below 0.48 x the
sample rate at the highest instantaneous frequency vibrato reaches: there is no aliasing.

Each family has a few variants (e.g. keyboard: piano, electric piano, harpsichord), and an
:class:`Instrument` is a frozen draw of one variant's parameters, so that a family holds many
instruments as NSynth's do. Velocity (0..127) sets the peak level (((v + 1) / 128)^2) and
the brightness (softer notes have a steeper spectral slope, as for real instruments).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._common import (
    bandpass,
    check_int,
    check_positive,
    check_rng,
    check_sample_rate,
    num_samples,
    peak,
)
from ._kernels import SINE_TABLE, sum_partials
from .speech import _VOWEL_TARGETS

__all__ = ["FAMILIES", "Instrument", "midi_to_hz", "hz_to_midi", "random_instrument",
           "play_note", "MIDI_RANGE"]

FAMILIES: tuple[str, ...] = ("bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ",
                             "reed", "string", "synth_lead", "vocal")
"""NSynth's instrument families, in NSynth's label order (0..10)."""
MIDI_RANGE = (21, 108)
"""The playable MIDI pitches (a piano's range, NSynth's is 9..120 but few notes fall
outside), inclusive."""
_MAX_PARTIALS = 64


def midi_to_hz(pitch: float | np.ndarray) -> float | np.ndarray:
    """Equal-tempered frequency of MIDI note ``pitch``: 440 x 2^((pitch - 69) / 12) Hz
    (A4 = note 69 = 440 Hz; fractional notes allowed)."""
    return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69) / 12) \
        if isinstance(pitch, np.ndarray) else 440.0 * 2.0 ** ((pitch - 69) / 12)


def hz_to_midi(frequency: float | np.ndarray) -> float | np.ndarray:
    """Inverse of :func:`midi_to_hz`: 69 + 12 log2(frequency / 440)."""
    return 69 + 12 * np.log2(np.asarray(frequency, dtype=np.float64) / 440.0) \
        if isinstance(frequency, np.ndarray) else 69 + 12 * math.log2(frequency / 440.0)


@dataclass(frozen=True)
class Instrument:
    """The frozen timbre of one instrument (see the module docstring for the model).

    Attributes:
        family: one of :data:`FAMILIES`; variant: which kind within it (e.g. "piano").
        slope_db: spectral slope of the partial amplitudes, dB per octave (> 0 darker).
        even_gain: gain of even harmonics (clarinet-like < 1).
        inharmonicity: B of r_k = k sqrt(1 + B k^2) (stiff strings).
        mode_ratios, mode_gains_db: explicit partial ratios and gains (bars, drawbars);
            empty for a harmonic series.
        resonances: (centre Hz, bandwidth Hz, gain dB) body / vocal-tract resonances.
        lowpass_hz: cutoff of a 2nd-order-like roll-off (inf: none).
        strike_position: pluck / hammer position along the string (0: no comb).
        attack_s, decay_s, sustain, release_s: ADSR envelope (seconds, level 0..1).
        attack_spread: extra attack time of partial k, attack_s x spread x log2(k).
        partial_decay, partial_decay_per_khz: decay rate of each partial, 1/s, plus a
            part growing with its frequency (1/s per kHz).
        vibrato_hz, vibrato_cents, tremolo_hz, tremolo_depth: periodic pitch and level
            modulation.
        noise_level, noise_centre_hz, noise_bandwidth_hz, noise_decay_s: breath / bow
            (noise_decay_s = inf: lasts the note) or strike noise (short decay).
        detune_cents: a second detuned copy of the partials (chorus), 0 for none.
        velocity_brightness_db: extra slope (dB/octave) at velocity 0, none at 127.
        max_partials: cap on the number of partials.
    """

    family: str
    variant: str
    slope_db: float = 6.0
    even_gain: float = 1.0
    inharmonicity: float = 0.0
    mode_ratios: tuple[float, ...] = ()
    mode_gains_db: tuple[float, ...] = ()
    resonances: tuple[tuple[float, float, float], ...] = ()
    lowpass_hz: float = math.inf
    strike_position: float = 0.0
    attack_s: float = 0.01
    decay_s: float = 0.2
    sustain: float = 1.0
    release_s: float = 0.1
    attack_spread: float = 0.0
    partial_decay: float = 0.0
    partial_decay_per_khz: float = 0.0
    vibrato_hz: float = 5.0
    vibrato_cents: float = 0.0
    tremolo_hz: float = 5.0
    tremolo_depth: float = 0.0
    noise_level: float = 0.0
    noise_centre_hz: float = 2000.0
    noise_bandwidth_hz: float = 2000.0
    noise_decay_s: float = math.inf
    detune_cents: float = 0.0
    velocity_brightness_db: float = 4.0
    max_partials: int = 40

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"Instrument: family must be one of {', '.join(FAMILIES)}, "
                             f"got {self.family!r}")
        if len(self.mode_ratios) != len(self.mode_gains_db):
            raise ValueError("Instrument: mode_ratios and mode_gains_db must have the same "
                             f"length, got {len(self.mode_ratios)} and "
                             f"{len(self.mode_gains_db)}")


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _draw(family: str, rng: np.random.Generator) -> Instrument:
    """One instrument of ``family``: a variant, then its parameters within the variant's
    ranges (chosen to sound like the named instruments, not measured)."""
    u = lambda low, high: _uniform(rng, low, high)  # noqa: E731
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    if family == "bass":
        variant = pick(("electric", "upright", "synth"))
        if variant == "synth":
            return Instrument(family, variant, slope_db=u(5, 8), even_gain=pick((1.0, 0.1)),
                              lowpass_hz=u(300, 1500), attack_s=u(0.003, 0.02), decay_s=u(0.1, 0.4),
                              sustain=u(0.5, 0.9), release_s=u(0.05, 0.15),
                              velocity_brightness_db=u(3, 8))
        return Instrument(family, variant, slope_db=u(7, 12), inharmonicity=u(2e-5, 2e-4),
                          strike_position=u(0.08, 0.25), attack_s=u(0.002, 0.01), sustain=0.0,
                          decay_s=math.inf, release_s=u(0.05, 0.12),
                          partial_decay=u(0.8, 2.5) * (2.0 if variant == "upright" else 1.0),
                          partial_decay_per_khz=u(4, 12),
                          resonances=((u(80, 140), 60.0, u(3, 8)),) if variant == "upright"
                          else (), noise_level=u(0.01, 0.05), noise_centre_hz=u(500, 1500),
                          noise_bandwidth_hz=1000.0, noise_decay_s=0.02)
    if family == "brass":
        variant = pick(("trumpet", "trombone", "horn"))
        formant = {"trumpet": (1200, 1600), "trombone": (500, 800), "horn": (350, 600)}[variant]
        return Instrument(family, variant, slope_db=u(3, 7),
                          resonances=((u(*formant), u(500, 1000), u(6, 12)),),
                          attack_s=u(0.03, 0.08), attack_spread=u(0.3, 0.8), decay_s=u(0.1, 0.3),
                          sustain=u(0.7, 0.95), release_s=u(0.05, 0.15), vibrato_hz=u(4.5, 6),
                          vibrato_cents=u(0, 15), noise_level=u(0.005, 0.02),
                          noise_centre_hz=u(1000, 3000), noise_bandwidth_hz=2000.0,
                          velocity_brightness_db=u(6, 10), max_partials=40)
    if family == "flute":
        variant = pick(("flute", "recorder", "pan"))
        return Instrument(family, variant, slope_db=u(14, 24), even_gain=u(0.5, 1.0),
                          attack_s=u(0.04, 0.12), decay_s=0.2, sustain=u(0.85, 1.0),
                          release_s=u(0.05, 0.15), vibrato_hz=u(4.5, 5.5),
                          vibrato_cents=0.0 if variant == "recorder" else u(10, 35),
                          tremolo_hz=u(4.5, 5.5), tremolo_depth=u(0.0, 0.1),
                          noise_level=u(0.03, 0.12), noise_centre_hz=u(1500, 4000),
                          noise_bandwidth_hz=u(2000, 4000), velocity_brightness_db=u(2, 6),
                          max_partials=16)
    if family == "guitar":
        variant = pick(("acoustic", "electric", "nylon"))
        body = ((u(90, 120), 40.0, u(4, 8)), (u(190, 240), 60.0, u(3, 6)),
                (u(400, 600), 200.0, u(0, 4))) if variant != "electric" else ()
        return Instrument(family, variant, slope_db=u(4, 8) + (3 if variant == "nylon" else 0),
                          inharmonicity=u(1e-5, 1e-4), strike_position=u(0.1, 0.3),
                          resonances=body, lowpass_hz=u(2000, 5000) if variant == "electric"
                          else math.inf, attack_s=u(0.001, 0.005), decay_s=math.inf,
                          sustain=0.0, release_s=u(0.05, 0.1), partial_decay=u(0.8, 2.0),
                          partial_decay_per_khz=u(2, 8), noise_level=u(0.02, 0.06),
                          noise_centre_hz=u(2000, 5000), noise_bandwidth_hz=3000.0,
                          noise_decay_s=0.01)
    if family == "keyboard":
        variant = pick(("piano", "electric_piano", "harpsichord"))
        if variant == "electric_piano":
            return Instrument(family, variant, slope_db=u(14, 20),
                              mode_ratios=(1.0, 2.0, 3.0, u(6.8, 7.2), u(13.5, 14.5)),
                              mode_gains_db=(0.0, -8.0, -16.0, u(-14, -8), u(-24, -16)),
                              attack_s=0.002, decay_s=math.inf, sustain=0.0,
                              release_s=u(0.05, 0.12), partial_decay=u(0.8, 1.6),
                              partial_decay_per_khz=u(3, 8), tremolo_hz=u(4, 6),
                              tremolo_depth=pick((0.0, u(0.1, 0.3))),
                              velocity_brightness_db=u(4, 8))
        harpsichord = variant == "harpsichord"
        return Instrument(family, variant, slope_db=u(2, 4) if harpsichord else u(6, 10),
                          inharmonicity=u(5e-5, 2e-4) if harpsichord else u(2e-4, 8e-4),
                          strike_position=u(0.05, 0.12) if harpsichord else u(0.11, 0.14),
                          attack_s=u(0.001, 0.004), decay_s=math.inf, sustain=0.0,
                          release_s=u(0.08, 0.2), partial_decay=u(0.6, 2.0),
                          partial_decay_per_khz=u(2, 6), noise_level=u(0.02, 0.05),
                          noise_centre_hz=u(1000, 3000), noise_bandwidth_hz=2000.0,
                          noise_decay_s=0.015, detune_cents=0.0 if harpsichord else u(0.5, 2),
                          velocity_brightness_db=u(2, 4) if harpsichord else u(6, 12))
    if family == "mallet":
        # Mode ratios of tuned bars (marimba, vibraphone: 1:4:10; xylophone: 1:3:6) and a
        # free bar (glockenspiel: 1 : 2.76 : 5.40 : 8.93, Euler-Bernoulli theory).
        variant = pick(("marimba", "vibraphone", "xylophone", "glockenspiel"))
        ratios, decay = {
            "marimba": ((1.0, 4.0, 10.0), (3.0, 6.0)),
            "vibraphone": ((1.0, 4.0, 10.0), (0.6, 1.5)),
            "xylophone": ((1.0, 3.0, 6.0), (5.0, 10.0)),
            "glockenspiel": ((1.0, 2.76, 5.40, 8.93), (0.8, 2.0)),
        }[variant]
        gains = tuple(-u(8, 14) * i for i in range(len(ratios)))
        return Instrument(family, variant, slope_db=0.0,
                          mode_ratios=tuple(r * (1 + 0.01 * rng.standard_normal()) if i else r
                                            for i, r in enumerate(ratios)),
                          mode_gains_db=gains, attack_s=0.001, decay_s=math.inf, sustain=0.0,
                          release_s=u(0.1, 0.3), partial_decay=u(*decay),
                          partial_decay_per_khz=u(1, 4), tremolo_hz=u(4, 7),
                          tremolo_depth=u(0.2, 0.5) if variant == "vibraphone" else 0.0,
                          noise_level=u(0.03, 0.1), noise_centre_hz=u(1500, 5000),
                          noise_bandwidth_hz=3000.0, noise_decay_s=0.008,
                          velocity_brightness_db=u(4, 10))
    if family == "organ":
        variant = pick(("drawbar", "pipe"))
        # Drawbar footages 16', 5 1/3', 8', 4', 2 2/3', 2', 1 3/5', 1 1/3', 1' as ratios.
        ratios = (0.5, 1.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
        levels = rng.integers(0, 9, size=len(ratios))
        levels[2] = max(int(levels[2]), 6)
        gains = tuple(float(-3.0 * (8 - level)) if level else -90.0 for level in levels)
        if variant == "pipe":
            return Instrument(family, variant, slope_db=u(4, 9), even_gain=u(0.4, 1.0),
                              attack_s=u(0.03, 0.08), decay_s=0.1, sustain=1.0,
                              release_s=u(0.05, 0.2), noise_level=u(0.005, 0.02),
                              noise_centre_hz=u(1000, 3000), noise_bandwidth_hz=2000.0,
                              velocity_brightness_db=0.0)
        return Instrument(family, variant, slope_db=0.0, mode_ratios=ratios,
                          mode_gains_db=gains, attack_s=u(0.003, 0.01), decay_s=0.1,
                          sustain=1.0, release_s=u(0.01, 0.05), tremolo_hz=u(5.5, 7),
                          tremolo_depth=pick((0.0, u(0.1, 0.3))), velocity_brightness_db=0.0)
    if family == "reed":
        variant = pick(("clarinet", "saxophone", "oboe"))
        formants = {"clarinet": (), "saxophone": ((u(500, 900), 400.0, u(4, 9)),),
                    "oboe": ((u(1000, 1400), 500.0, u(8, 14)), (u(2800, 3500), 800.0, 4.0))}
        return Instrument(family, variant,
                          slope_db=u(5, 9) if variant != "oboe" else u(3, 6),
                          even_gain=u(0.05, 0.2) if variant == "clarinet" else 1.0,
                          resonances=formants[variant], attack_s=u(0.02, 0.06),
                          decay_s=0.2, sustain=u(0.8, 0.95), release_s=u(0.04, 0.1),
                          vibrato_hz=u(4.5, 6), vibrato_cents=u(0, 25),
                          noise_level=u(0.01, 0.04), noise_centre_hz=u(1500, 4000),
                          noise_bandwidth_hz=3000.0, velocity_brightness_db=u(4, 8))
    if family == "string":
        variant = pick(("violin", "viola", "cello"))
        low = {"violin": 280.0, "viola": 230.0, "cello": 100.0}[variant]
        body = ((low * u(0.9, 1.1), 80.0, u(4, 8)), (low * u(1.6, 2.0), 150.0, u(3, 7)),
                (u(2000, 3000), 1000.0, u(3, 8)))
        return Instrument(family, variant, slope_db=u(5, 8), resonances=body,
                          attack_s=u(0.06, 0.15), attack_spread=u(0.0, 0.3),
                          decay_s=0.2, sustain=u(0.85, 1.0), release_s=u(0.08, 0.2),
                          vibrato_hz=u(5.0, 6.5), vibrato_cents=u(10, 35),
                          noise_level=u(0.01, 0.04), noise_centre_hz=u(2000, 5000),
                          noise_bandwidth_hz=4000.0, velocity_brightness_db=u(3, 6))
    if family == "synth_lead":
        variant = pick(("saw", "square", "pulse"))
        return Instrument(family, variant, slope_db=6.0,
                          even_gain=0.02 if variant == "square" else 1.0,
                          strike_position=u(0.1, 0.3) if variant == "pulse" else 0.0,
                          lowpass_hz=u(1000, 6000), attack_s=u(0.003, 0.03),
                          decay_s=u(0.1, 0.4), sustain=u(0.6, 1.0), release_s=u(0.03, 0.2),
                          vibrato_hz=u(5, 7), vibrato_cents=pick((0.0, u(10, 30))),
                          detune_cents=pick((0.0, u(5, 15))),
                          velocity_brightness_db=u(2, 6), max_partials=48)
    # vocal: a sung vowel (a fixed vowel per instrument) with vibrato and breath
    vowel = ("AA", "AE", "EH", "IY", "AO", "UW", "AH", "OW")[int(rng.integers(8))]
    scale = u(1.0, 1.3)
    bandwidths = (80.0, 100.0, 150.0)
    resonances = tuple((f * scale, bw, g) for f, bw, g in
                       zip(_VOWEL_TARGETS[vowel][0], bandwidths, (18.0, 14.0, 10.0)))
    return Instrument(family, f"sung_{vowel.lower()}", slope_db=u(10, 14), resonances=resonances,
                      attack_s=u(0.05, 0.12), decay_s=0.2, sustain=u(0.85, 1.0),
                      release_s=u(0.1, 0.2), vibrato_hz=u(5, 6.5), vibrato_cents=u(30, 80),
                      noise_level=u(0.01, 0.05), noise_centre_hz=u(2000, 5000),
                      noise_bandwidth_hz=3000.0, velocity_brightness_db=u(4, 8))


def random_instrument(family: str, rng: np.random.Generator) -> Instrument:
    """Draw one instrument of ``family`` (one of :data:`FAMILIES`): a variant of the family
    and its timbre parameters."""
    fn = "random_instrument"
    _check_family(fn, family)
    check_rng(fn, rng)
    return _draw(family, rng)


def _check_family(fn: str, family: object) -> None:
    if family not in FAMILIES:
        raise ValueError(f"{fn}: family must be one of {', '.join(FAMILIES)}, got {family!r}")


def _partials(instrument: Instrument, f0: float, velocity: int, top_hz: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """Frequency ratios and amplitudes of the partials, those whose highest frequency
    stays below ``top_hz``."""
    if instrument.mode_ratios:
        ratios = np.asarray(instrument.mode_ratios, dtype=np.float64)
        gains = 10.0 ** (np.asarray(instrument.mode_gains_db) / 20)
        number = ratios.copy()
    else:
        number = np.arange(1, instrument.max_partials + 1, dtype=np.float64)
        ratios = number * np.sqrt(1 + instrument.inharmonicity * number**2)
        gains = np.where(number % 2 == 0, instrument.even_gain, 1.0)
        if instrument.strike_position > 0:
            gains = gains * np.maximum(np.abs(np.sin(np.pi * number
                                                     * instrument.strike_position)), 0.02)
    keep = ratios * f0 < top_hz
    ratios, gains, number = ratios[keep], gains[keep], number[keep]
    frequency = ratios * f0
    slope = instrument.slope_db + instrument.velocity_brightness_db * (1 - velocity / 127)
    gains = gains * 10.0 ** (-slope * np.log2(np.maximum(number, 1.0)) / 20)
    if instrument.mode_ratios:  # bars: brightness also falls with velocity, per mode
        gains = gains * 10.0 ** (-slope * np.log2(np.maximum(ratios, 1.0)) / 20)
    for centre, bandwidth, gain_db in instrument.resonances:
        gains = gains * (1 + (10.0 ** (gain_db / 20) - 1)
                         / (1 + ((frequency - centre) / (bandwidth / 2)) ** 2))
    if math.isfinite(instrument.lowpass_hz):
        gains = gains / (1 + (frequency / instrument.lowpass_hz) ** 4) ** 0.5
    return ratios, gains


def _envelope(instrument: Instrument, n: int, hold: int, sample_rate: int) -> np.ndarray:
    """ADSR: linear attack, exponential decay towards the sustain level (sustain 0 and
    decay inf: partials decay on their own), note-off after ``hold`` samples, exponential
    release; (n,) float64."""
    t = np.arange(n) / sample_rate
    attack = max(instrument.attack_s, 1.0 / sample_rate)
    level = np.minimum(t / attack, 1.0)
    if math.isfinite(instrument.decay_s):
        after = np.maximum(t - attack, 0.0)
        level = level * (instrument.sustain + (1 - instrument.sustain)
                         * np.exp(-after / instrument.decay_s))
    # release: -26 dB per release_s after the note-off
    level[hold:] *= np.exp(-(t[hold:] - hold / sample_rate) * 3 / max(instrument.release_s,
                                                                       1e-3))
    return level


def play_note(pitch: int, velocity: int, family: str, *, sample_rate: int = 16000,
              duration: float = 1.0, rng: np.random.Generator,
              instrument: Instrument | None = None) -> np.ndarray:
    """Render one note.

    Args:
        pitch: MIDI note 21..108 (``midi_to_hz(pitch)`` Hz).
        velocity: MIDI velocity 0..127: peak level ((velocity + 1) / 128)^2 and brightness.
        family: one of :data:`FAMILIES`.
        sample_rate: Hz; the fundamental must lie below 0.48 x sample_rate.
        duration: length in seconds; the note is held for 75 % of it, then released.
        rng: per-note randomness (a tuning offset of N(0, 3) cents, partial phases, vibrato
            phase, noise) and, when ``instrument`` is None, the instrument itself.
        instrument: a fixed timbre from :func:`random_instrument` (its family must be
            ``family``); None draws one from ``rng``.

    Returns:
        (round(duration x sample_rate),) float32, peak ((velocity + 1) / 128)^2.
    """
    fn = "play_note"
    pitch = check_int(fn, "pitch", pitch, *MIDI_RANGE, what="an integer MIDI note")
    velocity = check_int(fn, "velocity", velocity, 0, 127, what="an integer MIDI velocity")
    _check_family(fn, family)
    sample_rate = check_sample_rate(fn, sample_rate)
    duration = check_positive(fn, "duration", duration)
    check_rng(fn, rng)
    if instrument is None:
        instrument = _draw(family, rng)
    elif not isinstance(instrument, Instrument) or instrument.family != family:
        got = instrument.family if isinstance(instrument, Instrument) else type(instrument)
        raise ValueError(f"{fn}: instrument must be an Instrument of family {family!r}, "
                         f"got {got!r}")
    top_hz = 0.48 * sample_rate
    f0 = midi_to_hz(pitch) * 2.0 ** (3 * rng.standard_normal() / 1200)
    widest = 2.0 ** ((instrument.vibrato_cents + instrument.detune_cents) / 1200)
    if f0 * widest >= top_hz:
        raise ValueError(f"{fn}: pitch {pitch} ({midi_to_hz(pitch):.0f} Hz) must lie below "
                         f"0.48 x sample_rate = {top_hz:.0f} Hz; raise sample_rate")
    n = num_samples(duration, sample_rate)
    hold = int(0.75 * n)
    t = np.arange(n) / sample_rate

    ratios, gains = _partials(instrument, f0, velocity, top_hz / widest)
    if instrument.detune_cents:
        ratios = np.concatenate([ratios, ratios * 2.0 ** (instrument.detune_cents / 1200)])
        gains = np.concatenate([gains, 0.7 * gains])
    keep = gains > 1e-4 * gains.max()
    ratios, gains = ratios[keep], gains[keep]
    frequency = ratios * f0
    decay = instrument.partial_decay + instrument.partial_decay_per_khz * frequency / 1000
    attack_time = instrument.attack_s * instrument.attack_spread * np.log2(np.maximum(
        ratios, 1.0))
    attack = np.where(attack_time > 0, np.exp(-1 / np.maximum(attack_time, 1e-9)
                                              / sample_rate), 0.0)

    instantaneous = np.full(n, f0)
    if instrument.vibrato_cents:
        onset = np.clip(t / 0.25, 0, 1)  # vibrato fades in over 250 ms
        wobble = np.sin(2 * np.pi * instrument.vibrato_hz * t + rng.uniform(0, 2 * np.pi))
        instantaneous *= 2.0 ** (instrument.vibrato_cents * onset * wobble / 1200)
    cycles = np.cumsum(instantaneous) / sample_rate
    tone = sum_partials(cycles, ratios, rng.random(len(ratios)), gains, attack,
                        np.exp(-decay / sample_rate), SINE_TABLE)
    envelope = _envelope(instrument, n, hold, sample_rate)
    if instrument.tremolo_depth:
        envelope = envelope * (1 - instrument.tremolo_depth * 0.5 * (
            1 + np.sin(2 * np.pi * instrument.tremolo_hz * t + rng.uniform(0, 2 * np.pi))))
    note = tone * envelope
    if instrument.noise_level:
        noise = bandpass(rng.standard_normal(n), instrument.noise_centre_hz,
                         instrument.noise_bandwidth_hz, sample_rate)
        shape = envelope if math.isinf(instrument.noise_decay_s) \
            else np.exp(-t / instrument.noise_decay_s)
        level = instrument.noise_level * (0.5 + velocity / 254)
        note = note + level * float(np.sum(gains)) * shape * noise
    note *= ((velocity + 1) / 128) ** 2 / max(peak(note), 1e-12)
    return note.astype(np.float32)
