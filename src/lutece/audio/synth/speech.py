"""Speech-like voices from a source-filter model (Klatt 1980), seeded and download-free.

A voice is rendered in three stages, as in Klatt's cascade/parallel formant synthesizer
(D. H. Klatt, "Software for a cascade/parallel formant synthesizer", JASA 67(3), 1980):

1. **Source.** A glottal flow pulse train (Rosenberg 1971, "Effect of glottal pulse shape on
   the quality of natural vowels", JASA 49(2B), his preferred trigonometric pulse B: a
   raised-cosine opening phase and a quarter-cosine closing phase, then a closed phase) at
   the instantaneous f0, with *jitter* (random period-to-period f0 changes) and *shimmer*
   (random period-to-period amplitude changes), low-passed by a one-pole *spectral tilt*
   filter; plus aspiration noise (breath during voicing, pulsed in the open phase, and /h/
   and plosive aspiration).
2. **Vocal tract.** Five two-pole resonators in series (Klatt's eq. 2) whose formant
   frequencies F1-F5 and bandwidths move smoothly between the targets of successive phones.
   Vowel targets are the adult male averages of Peterson & Barney (1952, "Control methods
   used in a study of the vowels", JASA 24(2)), scaled by the speaker's vocal-tract length
   (formants scale as 1 / length for a uniform tube, reference 17 cm), consonants have
   place-of-articulation loci (labial F2 low, alveolar F2 ~1.7 kHz, velar F2 high),
   so formant transitions carry the place cue as in natural speech.
3. **Frication** (Klatt's parallel branch): noise bands (Butterworth band-passes) for
   fricatives (/s/ high and narrow, /sh/ lower, /f/ and /th/ broad and weak) and plosive
   bursts, added after the radiation characteristic (a first difference).

Consonants: plosives are a closure (silence, or a weak voice bar for voiced ones) + a burst
+ aspiration before a sonorant for voiceless ones; nasals are voicing through a low F1
(250 Hz) with widened (damped) higher formants and a weaker amplitude; approximants are
voiced formant targets. Prosody: each syllable has a vowel nucleus, the stressed syllable is
longer and louder and carries a pitch accent; f0 follows a declination line plus accents,
a slow random drift and a final fall (or a question's rise).

Phones are written in ARPAbet (``"S" "T" "AA" "P"`` is "stop"). A :class:`Speaker` is a
frozen set of voice parameters, a :class:`Word` a frozen phone sequence; per-utterance
variation (rate, pitch shift, emphasis, timing and formant jitter) comes from the ``rng``
passed to :func:`speak`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ._common import (
    bandpass,
    check_rng,
    check_sample_rate,
    fade,
    peak,
    smooth,
    smooth_random,
)
from ._kernels import glottal_source, resonator_cascade, resonator_coefficients

__all__ = [
    "Speaker",
    "Word",
    "WordSpan",
    "PHONES",
    "VOWELS",
    "REFERENCE_TRACT_CM",
    "random_speaker",
    "random_word",
    "speak",
    "speak_with_alignment",
]

REFERENCE_TRACT_CM = 17.0
"""Vocal-tract length (cm) whose formants are the table's adult male values."""

# Vowel targets (F1, F2, F3) in Hz at the start and end of the vowel. Monophthongs:
# Peterson & Barney (1952), Table II, men's averages. Diphthongs glide between two of them.
_VOWEL_TARGETS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "IY": ((270, 2290, 3010),) * 2,
    "IH": ((390, 1990, 2550),) * 2,
    "EH": ((530, 1840, 2480),) * 2,
    "AE": ((660, 1720, 2410),) * 2,
    "AA": ((730, 1090, 2440),) * 2,
    "AO": ((570, 840, 2410),) * 2,
    "UH": ((440, 1020, 2240),) * 2,
    "UW": ((300, 870, 2240),) * 2,
    "AH": ((640, 1190, 2390),) * 2,
    "ER": ((490, 1350, 1690),) * 2,
    "EY": ((480, 1950, 2550), (330, 2250, 2950)),
    "AY": ((730, 1150, 2450), (360, 2100, 2800)),
    "OW": ((540, 900, 2400), (370, 850, 2300)),
    "AW": ((730, 1200, 2450), (420, 950, 2300)),
    "OY": ((550, 850, 2400), (360, 2100, 2800)),
}
_HIGHER_FORMANTS = (3500.0, 4500.0)  # F4, F5 of an adult male tract, held constant
# Formant bandwidths B1..B5 (Hz) of a vowel, in the range Klatt (1980) uses.
_BANDWIDTHS = np.array([70.0, 100.0, 150.0, 250.0, 350.0])

# Place of articulation -> formant locus (F1, F2, F3) in Hz, adult male.
_LOCI = {
    "labial": (250, 850, 2250),
    "dental": (300, 1400, 2600),
    "alveolar": (280, 1700, 2600),
    "postalveolar": (300, 1950, 2450),
    "velar": (280, 1950, 2300),
}
# Burst spectra (centre Hz, bandwidth Hz, gain): diffuse-low labial, high alveolar,
# compact mid velar.
_BURSTS = {
    "labial": (1100.0, 1800.0, 0.5),
    "alveolar": (4000.0, 3000.0, 1.0),
    "velar": (2100.0, 1200.0, 0.9),
}


@dataclass(frozen=True)
class _Phone:
    kind: str  # vowel | plosive | fricative | aspirate | nasal | approximant
    voiced: bool
    start: tuple[float, float, float]  # F1-F3 targets (Hz, adult male) at the start
    end: tuple[float, float, float]
    duration: float  # seconds at speaking rate 1
    place: str = ""
    noise: tuple[float, float, float] = (0.0, 0.0, 0.0)  # frication centre, bandwidth, gain


def _consonant(kind: str, voiced: bool, place: str, duration: float,
               noise: tuple[float, float, float] = (0.0, 0.0, 0.0),
               locus: tuple[float, float, float] | None = None) -> _Phone:
    target = locus if locus is not None else _LOCI.get(place, (500, 1500, 2500))
    return _Phone(kind, voiced, target, target, duration, place, noise)


_PHONE_TABLE: dict[str, _Phone] = {
    **{name: _Phone("vowel", True, start, end, 0.15 if start != end else 0.10)
       for name, (start, end) in _VOWEL_TARGETS.items()},
    "P": _consonant("plosive", False, "labial", 0.06),
    "B": _consonant("plosive", True, "labial", 0.05),
    "T": _consonant("plosive", False, "alveolar", 0.06),
    "D": _consonant("plosive", True, "alveolar", 0.05),
    "K": _consonant("plosive", False, "velar", 0.065),
    "G": _consonant("plosive", True, "velar", 0.055),
    "F": _consonant("fricative", False, "labial", 0.09, (4500.0, 5000.0, 0.25)),
    "V": _consonant("fricative", True, "labial", 0.07, (4500.0, 5000.0, 0.2)),
    "TH": _consonant("fricative", False, "dental", 0.09, (4800.0, 5000.0, 0.2)),
    "DH": _consonant("fricative", True, "dental", 0.06, (4800.0, 5000.0, 0.15)),
    "S": _consonant("fricative", False, "alveolar", 0.10, (5200.0, 2800.0, 1.0)),
    "Z": _consonant("fricative", True, "alveolar", 0.08, (5200.0, 2800.0, 0.6)),
    "SH": _consonant("fricative", False, "postalveolar", 0.10, (3000.0, 1800.0, 1.0)),
    "ZH": _consonant("fricative", True, "postalveolar", 0.08, (3000.0, 1800.0, 0.6)),
    "HH": _consonant("aspirate", False, "glottal", 0.06),
    "M": _consonant("nasal", True, "labial", 0.065, locus=(250, 1000, 2200)),
    "N": _consonant("nasal", True, "alveolar", 0.06, locus=(250, 1500, 2500)),
    "NG": _consonant("nasal", True, "velar", 0.07, locus=(250, 1900, 2300)),
    "L": _consonant("approximant", True, "alveolar", 0.06, locus=(360, 1000, 2700)),
    "R": _consonant("approximant", True, "postalveolar", 0.06, locus=(350, 1100, 1600)),
    "W": _consonant("approximant", True, "labial", 0.055, locus=(300, 700, 2200)),
    "Y": _consonant("approximant", True, "postalveolar", 0.055, locus=(280, 2200, 3000)),
}

PHONES: tuple[str, ...] = tuple(_PHONE_TABLE)
"""The phone inventory, in ARPAbet."""
VOWELS: tuple[str, ...] = tuple(_VOWEL_TARGETS)
"""The vowel (syllable nucleus) phones, monophthongs then diphthongs."""

_SPELLING = {
    "IY": "ee", "IH": "i", "EH": "e", "AE": "a", "AA": "ah", "AO": "aw", "UH": "uu",
    "UW": "oo", "AH": "u", "ER": "er", "EY": "ay", "AY": "ai", "OW": "oh", "AW": "ow",
    "OY": "oy", "P": "p", "B": "b", "T": "t", "D": "d", "K": "k", "G": "g", "F": "f",
    "V": "v", "TH": "th", "DH": "dh", "S": "s", "Z": "z", "SH": "sh", "ZH": "zh", "HH": "h",
    "M": "m", "N": "n", "NG": "ng", "L": "l", "R": "r", "W": "w", "Y": "y",
}


@dataclass(frozen=True)
class Speaker:
    """The fixed voice parameters of one speaker.

    Attributes:
        f0_hz: median fundamental frequency (Hz).
        f0_range_semitones: height of a pitch accent on a stressed syllable (semitones);
            also scales the random f0 drift.
        vocal_tract_cm: vocal-tract length (cm); every formant is multiplied by
            ``REFERENCE_TRACT_CM / vocal_tract_cm`` (:attr:`formant_scale`).
        spectral_tilt_db: extra attenuation of the glottal source at 3 kHz relative to 0 Hz
            (dB), by a one-pole low-pass (Klatt's TL parameter); larger is softer/darker.
        speaking_rate: speed relative to the phone table's durations (1 = normal).
        jitter: relative standard deviation of f0 from one glottal period to the next.
        shimmer: relative standard deviation of the amplitude from one period to the next.
        breathiness: level of aspiration noise during voicing, relative to the voicing.
        open_quotient: fraction of each glottal period in which the glottis is open.
        formant_shifts: per-formant (F1..F5) multipliers on top of the tract scaling, the
            speaker's idiosyncrasies (1 = none).
    """

    f0_hz: float
    f0_range_semitones: float = 4.0
    vocal_tract_cm: float = REFERENCE_TRACT_CM
    spectral_tilt_db: float = 6.0
    speaking_rate: float = 1.0
    jitter: float = 0.01
    shimmer: float = 0.04
    breathiness: float = 0.1
    open_quotient: float = 0.6
    formant_shifts: tuple[float, ...] = field(default=(1.0, 1.0, 1.0, 1.0, 1.0))

    def __post_init__(self) -> None:
        limits = {
            "f0_hz": (40.0, 800.0), "f0_range_semitones": (0.0, 24.0),
            "vocal_tract_cm": (8.0, 25.0), "spectral_tilt_db": (0.0, 40.0),
            "speaking_rate": (0.3, 3.0), "jitter": (0.0, 0.2), "shimmer": (0.0, 0.5),
            "breathiness": (0.0, 2.0), "open_quotient": (0.2, 0.95),
        }
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and low <= value <= high):
                raise ValueError(f"Speaker: {name} must be a number in [{low}, {high}], "
                                 f"got {value!r}")
        shifts = self.formant_shifts
        if len(shifts) != 5 or not all(0.5 <= s <= 2.0 for s in shifts):
            raise ValueError(f"Speaker: formant_shifts must be 5 multipliers in [0.5, 2], "
                             f"got {shifts!r}")

    @property
    def formant_scale(self) -> float:
        """Multiplier on every formant frequency: REFERENCE_TRACT_CM / vocal_tract_cm."""
        return REFERENCE_TRACT_CM / self.vocal_tract_cm


@dataclass(frozen=True)
class Word:
    """A fixed sequence of ARPAbet phones (see :data:`PHONES`) with at least one vowel;
    ``stress`` is the index of the stressed syllable (syllables are counted by vowels)."""

    phones: tuple[str, ...]
    stress: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.phones, str) or not all(p in _PHONE_TABLE for p in self.phones):
            unknown = [p for p in self.phones if p not in _PHONE_TABLE]
            raise ValueError(f"Word: phones must be a tuple of ARPAbet symbols from PHONES, "
                             f"got unknown {unknown or self.phones!r}")
        object.__setattr__(self, "phones", tuple(self.phones))
        if self.syllables == 0:
            raise ValueError(f"Word: phones must contain a vowel, got {self.phones!r}")
        if not 0 <= self.stress < self.syllables:
            raise ValueError(f"Word: stress must index a syllable in 0..{self.syllables - 1}, "
                             f"got {self.stress!r}")

    @property
    def syllables(self) -> int:
        return sum(p in _VOWEL_TARGETS for p in self.phones)

    @property
    def text(self) -> str:
        """A rough English-like spelling, e.g. ("S", "T", "AA", "P") -> "stahp"."""
        return "".join(_SPELLING[p] for p in self.phones)


@dataclass(frozen=True)
class WordSpan:
    """Where one word of an utterance sounds: ``start`` and ``end`` in seconds from the
    start of the returned wave."""

    word: Word
    start: float
    end: float


def random_speaker(rng: np.random.Generator, kind: str | None = None) -> Speaker:
    """Draw a plausible speaker. ``kind`` is "male", "female" or "child" (None: male or
    female with probability 0.45 each, child 0.1). Ranges: f0 around 85-155 Hz (male),
    165-255 Hz (female), 220-330 Hz (child); vocal tract 16-18.5, 13.5-15.5 and 11-13 cm.
    The other parameters vary independently within typical ranges (jitter 0.3-1.5 %,
    shimmer 2-8 %, spectral tilt 0-15 dB, speaking rate 0.85-1.2)."""
    fn = "random_speaker"
    check_rng(fn, rng)
    kinds = ("male", "female", "child")
    if kind is None:
        kind = kinds[int(rng.choice(3, p=[0.45, 0.45, 0.1]))]
    elif kind not in kinds:
        raise ValueError(f"{fn}: kind must be one of 'male', 'female', 'child' or None, "
                         f"got {kind!r}")
    f0_low, f0_high, tract_low, tract_high = {
        "male": (85.0, 155.0, 16.0, 18.5), "female": (165.0, 255.0, 13.5, 15.5),
        "child": (220.0, 330.0, 11.0, 13.0)}[kind]
    return Speaker(
        f0_hz=float(np.exp(rng.uniform(np.log(f0_low), np.log(f0_high)))),
        f0_range_semitones=float(rng.uniform(2.0, 7.0)),
        vocal_tract_cm=float(rng.uniform(tract_low, tract_high)),
        spectral_tilt_db=float(rng.uniform(0.0, 15.0)),
        speaking_rate=float(rng.uniform(0.85, 1.2)),
        jitter=float(rng.uniform(0.003, 0.015)),
        shimmer=float(rng.uniform(0.02, 0.08)),
        breathiness=float(rng.uniform(0.02, 0.3)),
        open_quotient=float(rng.uniform(0.45, 0.75)),
        formant_shifts=tuple(float(s) for s in np.clip(1 + 0.06 * rng.standard_normal(5),
                                                       0.85, 1.15)),
    )


_ONSETS = ("P", "B", "T", "D", "K", "G", "F", "V", "TH", "S", "Z", "SH", "HH", "M", "N",
           "L", "R", "W", "Y")
_CLUSTER_ONSETS = (("S", "T"), ("S", "P"), ("S", "K"), ("P", "R"), ("B", "R"), ("T", "R"),
                   ("D", "R"), ("K", "R"), ("G", "R"), ("F", "R"), ("P", "L"), ("B", "L"),
                   ("K", "L"), ("G", "L"), ("F", "L"), ("S", "L"), ("S", "M"), ("S", "N"),
                   ("S", "W"), ("K", "W"), ("T", "W"))
_CODAS = ("P", "B", "T", "D", "K", "G", "F", "V", "S", "Z", "SH", "M", "N", "NG", "L", "R")
_CLUSTER_CODAS = (("N", "T"), ("N", "D"), ("S", "T"), ("L", "D"), ("M", "P"), ("NG", "K"),
                  ("K", "S"), ("P", "S"), ("T", "S"))


def random_word(rng: np.random.Generator, syllables: int | None = None) -> Word:
    """Draw an English-like word: ``syllables`` (None: 1, 2 or 3 with probabilities 0.3,
    0.5, 0.2) of shape (C)(C)V(C)(C), consonant clusters from English onsets and codas,
    stress on the first syllable with probability 0.6, otherwise on a random one."""
    fn = "random_word"
    check_rng(fn, rng)
    if syllables is None:
        syllables = int(rng.choice([1, 2, 3], p=[0.3, 0.5, 0.2]))
    elif isinstance(syllables, bool) or not isinstance(syllables, int) or syllables < 1:
        raise ValueError(f"{fn}: syllables must be an integer >= 1 or None, got {syllables!r}")
    phones: list[str] = []
    for index in range(syllables):
        draw = rng.random()
        if index == 0 and draw < 0.15:
            pass
        elif index == 0 and draw < 0.35:
            phones.extend(_CLUSTER_ONSETS[int(rng.integers(len(_CLUSTER_ONSETS)))])
        else:
            phones.append(_ONSETS[int(rng.integers(len(_ONSETS)))])
        phones.append(VOWELS[int(rng.integers(len(VOWELS)))])
        last = index == syllables - 1
        draw = rng.random()
        if draw < (0.45 if last else 0.25):
            phones.append(_CODAS[int(rng.integers(len(_CODAS)))])
        elif last and draw < 0.55:
            phones.extend(_CLUSTER_CODAS[int(rng.integers(len(_CLUSTER_CODAS)))])
    stress = 0 if syllables == 1 or rng.random() < 0.6 else int(rng.integers(syllables))
    return Word(tuple(phones), stress)


@dataclass
class _Segment:
    """A stretch of constant source settings: times in seconds, formants in Hz."""

    start: float
    end: float
    formants_start: np.ndarray  # (3,) F1-F3
    formants_end: np.ndarray
    voicing: float = 0.0  # AV, voicing amplitude
    aspiration: float = 0.0  # AH, aspiration through the tract
    frication: float = 0.0  # AF, frication noise band level
    noise_band: tuple[float, float] = (0.0, 0.0)
    damping: float = 1.0  # bandwidth multiplier for F2 and up (nasals)


def _as_words(fn: str, words: Word | Sequence[Word]) -> list[Word]:
    if isinstance(words, Word):
        return [words]
    words = list(words) if isinstance(words, Sequence) and not isinstance(words, str) else []
    if not words or not all(isinstance(w, Word) for w in words):
        raise TypeError(f"{fn}: words must be a Word or a non-empty sequence of Words")
    return words


def _plan(words: list[Word], speaker: Speaker, rng: np.random.Generator
          ) -> tuple[list[_Segment], list[WordSpan], list[tuple[float, float]], float]:
    """Segments, word spans, pitch accents (time s, height semitones) and the end time."""
    rate = speaker.speaking_rate * math.exp(0.07 * rng.standard_normal())
    scale = speaker.formant_scale * np.asarray(speaker.formant_shifts[:3])
    emphasis = rng.uniform(0.6, 1.4, size=len(words))
    emphasis[int(rng.integers(len(words)))] *= 1.3  # the nuclear accent of the utterance
    segments: list[_Segment] = []
    spans: list[WordSpan] = []
    accents: list[tuple[float, float]] = []
    time = 0.03
    for word_index, word in enumerate(words):
        if word_index:
            time += float(rng.uniform(0.04, 0.25)) / rate
        word_start = time
        phones = [_PHONE_TABLE[p] for p in word.phones]
        syllable = -1
        for index, phone in enumerate(phones):
            previous = phones[index - 1] if index else None
            following = phones[index + 1] if index + 1 < len(phones) else None
            # per-phone target jitter (undershoot, coarticulation): 3 % per formant
            jitter = scale * (1 + 0.03 * rng.standard_normal(3))
            start = np.asarray(phone.start) * jitter
            end = np.asarray(phone.end) * jitter
            duration = phone.duration / rate * math.exp(0.12 * rng.standard_normal())
            if phone.kind == "vowel":
                syllable += 1
                stressed = syllable == word.stress
                if stressed:
                    duration *= 1.45
                    accents.append((time + 0.4 * duration,
                                    speaker.f0_range_semitones * emphasis[word_index]
                                    * rng.uniform(0.7, 1.3)))
                if syllable == word.syllables - 1:
                    duration *= 1.2  # final lengthening
                level = (1.0 if stressed else 0.7) * emphasis[word_index] ** 0.5
                segments.append(_Segment(time, time + duration, start, end, voicing=level))
            elif phone.kind == "approximant":
                segments.append(_Segment(time, time + duration, start, end, voicing=0.55))
            elif phone.kind == "nasal":
                segments.append(_Segment(time, time + duration, start, end, voicing=0.4,
                                         damping=2.5))
            elif phone.kind == "fricative":
                centre, width, gain = phone.noise
                band = (centre * speaker.formant_scale, width * speaker.formant_scale)
                segments.append(_Segment(time, time + duration, start, end,
                                         voicing=0.3 if phone.voiced else 0.0,
                                         frication=gain * (0.6 if phone.voiced else 1.0),
                                         noise_band=band))
            elif phone.kind == "aspirate":
                neighbour = following if following is not None and following.kind == "vowel" \
                    else previous if previous is not None else _PHONE_TABLE["AH"]
                target = np.asarray(neighbour.start) * jitter
                segments.append(_Segment(time, time + duration, target, target,
                                         aspiration=0.5))
            else:  # plosive: closure, burst, aspiration before a sonorant
                closure = duration
                segments.append(_Segment(time, time + closure, start, end,
                                         voicing=0.12 if phone.voiced else 0.0))
                time += closure
                centre, width, gain = _BURSTS[phone.place]
                burst = 0.012 / rate ** 0.5
                segments.append(_Segment(
                    time, time + burst, start, end, frication=gain * (0.6 if phone.voiced
                                                                      else 1.0),
                    noise_band=(centre * speaker.formant_scale, width * speaker.formant_scale),
                    voicing=0.2 if phone.voiced else 0.0))
                time += burst
                duration = 0.0
                sonorant = following is not None and following.kind in (
                    "vowel", "approximant", "nasal")
                if not phone.voiced and sonorant:
                    duration = 0.045 / rate * math.exp(0.15 * rng.standard_normal())
                    target = np.asarray(following.start) * scale
                    segments.append(_Segment(time, time + duration, start, target,
                                             aspiration=0.35))
            time += duration
        spans.append(WordSpan(word, word_start, time))
    return segments, spans, accents, time + 0.04


def _f0_contour(times: np.ndarray, speaker: Speaker, accents: list[tuple[float, float]],
                voiced_end: float, rng: np.random.Generator) -> np.ndarray:
    """f0 (Hz) at ``times``: median x 2^(semitones / 12), semitones = pitch shift +
    declination + accents (Gaussian bumps, 70 ms wide) + drift + final fall or rise."""
    shift = 1.2 * rng.standard_normal()
    declination = -rng.uniform(1.0, 3.5) * times / max(voiced_end, 0.2)
    semitones = shift + declination
    for centre, height in accents:
        semitones = semitones + height * np.exp(-0.5 * ((times - centre) / 0.07) ** 2)
    drift = smooth_random(rng, len(times), max(2, int(voiced_end / 0.15)))
    semitones = semitones + 0.15 * speaker.f0_range_semitones * drift
    ending = np.clip((times - (voiced_end - 0.2)) / 0.2, 0.0, 1.0)
    final = rng.uniform(2.0, 5.0) if rng.random() < 0.15 else -rng.uniform(1.0, 4.0)
    semitones = semitones + final * ending**2
    return np.clip(speaker.f0_hz * 2.0 ** (semitones / 12), 40.0, 900.0)


def _tilt_pole(tilt_db: float, sample_rate: int) -> float:
    """Pole a of y[n] = (1 - a) x[n] + a y[n-1] attenuating 3 kHz by ``tilt_db`` relative
    to 0 Hz: solves (1 - a)^2 = G (1 - 2 a cos w + a^2), G = 10^(-tilt/10)."""
    if tilt_db < 1e-3:
        return 0.0
    gain = 10.0 ** (-tilt_db / 10)
    cosine = math.cos(2 * math.pi * min(3000.0, 0.4 * sample_rate) / sample_rate)
    half = 1 - gain * cosine
    return (half - math.sqrt(max(half * half - (1 - gain) ** 2, 0.0))) / (1 - gain)


def _render(segments: list[_Segment], speaker: Speaker, accents: list[tuple[float, float]],
            duration: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """The utterance's samples (float64, unnormalised): control tracks at 1 ms frames,
    glottal source, formant cascade, radiation, then the frication branch."""
    n = int(math.ceil(duration * sample_rate))
    hop = max(1, round(sample_rate / 1000))  # control rate: 1 ms frames
    frames = n // hop + 2
    frame_times = np.arange(frames) * (hop / sample_rate)

    # Formant tracks: two knots per segment (after the onset transition, before the offset
    # one), linear in between, smoothed over 8 ms.
    knot_times, knot_values = [], []
    for seg in segments:
        edge = min(0.3 * (seg.end - seg.start), 0.03)
        knot_times += [seg.start + edge, seg.end - edge]
        knot_values += [seg.formants_start, seg.formants_end]
    knot_values_array = np.asarray(knot_values)
    formants = np.empty((5, frames))
    for k in range(3):
        formants[k] = smooth(np.interp(frame_times, knot_times, knot_values_array[:, k]), 8)
    for k, value in enumerate(_HIGHER_FORMANTS):
        formants[3 + k] = value * speaker.formant_scale * speaker.formant_shifts[3 + k]

    # Source settings: piecewise constant per segment, smoothed (ramps of a few ms).
    # Frame -> segment; frames in no segment (lead-in, pauses, tail) are silent.
    starts = np.array([seg.start for seg in segments])
    ends = np.array([seg.end for seg in segments])
    which = np.maximum(np.searchsorted(starts, frame_times, side="right") - 1, 0)
    outside = (frame_times < starts[0]) | (frame_times >= ends[which])

    def track(values: list[float], width: int, silence: float = 0.0) -> np.ndarray:
        values_array = np.asarray(values)[which]
        values_array[outside] = silence
        return smooth(values_array, width)

    voicing = track([s.voicing for s in segments], 6)
    aspiration = track([s.aspiration for s in segments], 4)
    damping = track([s.damping for s in segments], 10, silence=1.0)
    bandwidths = _BANDWIDTHS[:, None] * np.ones((5, frames))
    bandwidths[1:] *= damping
    bandwidths[0] *= np.where(damping > 1, 1.4, 1.0)

    voiced_end = max((s.end for s in segments if s.voicing > 0.3), default=duration)
    f0 = _f0_contour(frame_times, speaker, accents, voiced_end, rng)
    # Enough per-period jitter and shimmer draws for the highest f0 reached.
    count = int(float(np.max(f0)) * 1.2 * duration) + 4
    jitter = speaker.jitter * np.clip(rng.standard_normal(count), -3.0, 3.0)
    shimmer = np.maximum(speaker.shimmer * rng.standard_normal(count), -0.9)
    source = glottal_source(f0, voicing, aspiration, hop, n, float(sample_rate),
                            speaker.open_quotient,
                            _tilt_pole(speaker.spectral_tilt_db, sample_rate),
                            speaker.breathiness, jitter, shimmer, rng.standard_normal(n))

    b, c = resonator_coefficients(formants, bandwidths, sample_rate)
    voice = resonator_cascade(source, b, c, hop)
    voice = np.diff(voice, prepend=0.0) * 4.0  # radiation at the lips

    # Frication (parallel branch): band-passed noise per fricative / burst segment.
    pad = int(0.006 * sample_rate)
    for seg in segments:
        if seg.frication <= 0:
            continue
        first = max(int(seg.start * sample_rate) - pad, 0)
        last = min(int(seg.end * sample_rate) + pad, n)
        if last - first < 4:
            continue
        noise = bandpass(rng.standard_normal(last - first), *seg.noise_band, sample_rate)
        envelope = np.ones(last - first)
        voice[first:last] += 0.05 * seg.frication * fade(envelope, min(pad, len(envelope) // 3)) \
            * noise
    return voice


def speak_with_alignment(words: Word | Sequence[Word], speaker: Speaker, *,
                         sample_rate: int = 16000, rng: np.random.Generator
                         ) -> tuple[np.ndarray, list[WordSpan]]:
    """Render one utterance of ``words`` (a Word or a sequence of Words, said in order with
    short pauses) by ``speaker`` at its natural length, and say where each word is.

    Per-utterance variation drawn from ``rng``: speaking rate (x exp(N(0, 0.07))), pitch
    shift (N(0, 1.2) semitones), declination (1-3.5 semitones), each word's emphasis
    (accent height and loudness), pauses between words (40-250 ms), phone durations
    (x exp(N(0, 0.12))), formant targets (3 % per formant), the ending (a fall, or a
    question's rise with probability 0.15), and the jitter/shimmer/noise sequences.

    Returns:
        wave: (samples,) float32, peak-normalised to 0.9, with about 30 ms of silence
            before the first word and 40 ms after the last.
        spans: one :class:`WordSpan` per word (start and end in seconds).
    """
    fn = "speak_with_alignment"
    word_list = _as_words(fn, words)
    if not isinstance(speaker, Speaker):
        raise TypeError(f"{fn}: speaker must be a Speaker (see random_speaker), "
                        f"got {type(speaker).__name__}")
    sample_rate = check_sample_rate(fn, sample_rate)
    check_rng(fn, rng)
    segments, spans, accents, duration = _plan(word_list, speaker, rng)
    wave = _render(segments, speaker, accents, duration, sample_rate, rng)
    wave *= 0.9 / max(peak(wave), 1e-12)
    return wave.astype(np.float32), spans


def speak(words: Word | Sequence[Word], speaker: Speaker, *, sample_rate: int = 16000,
          rng: np.random.Generator) -> np.ndarray:
    """:func:`speak_with_alignment` without the word spans: (samples,) float32 at the
    utterance's natural length, peak 0.9."""
    return speak_with_alignment(words, speaker, sample_rate=sample_rate, rng=rng)[0]
