"""Labelled notes as log-mel spectrograms: the permutation pretext's data.

Two sources with one output, so the experiment runs unchanged on either: seeded NSynth-like
notes from :mod:`lutece.audio.synth` (download-free), or a local copy of NSynth (Engel et al.,
ICML 2017) in its published layout, read with :class:`lutece.audio.datasets.NSynth`.
Notes start at their onset, so clips are the first ``clip_seconds`` of each file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from ..datasets import NSYNTH_FAMILIES, NSynth
from ..synth import FAMILIES, make_task
from .training import log_mel_spectrograms

__all__ = ["NoteSpectrograms", "synthetic_notes", "nsynth_notes"]

SYNTHETIC_PITCH_RANGE = (48, 71)  # the pitch task's 24 classes


@dataclass(frozen=True)
class NoteSpectrograms:
    """Notes with their labels.

    Attributes:
        spectrograms: (n, n_filters, frames) float32 log-mel.
        family: (n,) int64 index into ``family_names``.
        pitch: (n,) int64 MIDI pitch.
        family_names: the instrument families.
        pitch_range: (lowest, highest) MIDI pitches the pitch classes cover.
    """

    spectrograms: torch.Tensor
    family: torch.Tensor
    pitch: torch.Tensor
    family_names: tuple[str, ...]
    pitch_range: tuple[int, int]

    def __len__(self) -> int:
        return len(self.family)

    @property
    def pitch_class(self) -> torch.Tensor:
        """(n,) int64 in 0..num_pitch_classes - 1: pitch - lowest."""
        return self.pitch - self.pitch_range[0]

    @property
    def num_pitch_classes(self) -> int:
        return self.pitch_range[1] - self.pitch_range[0] + 1


def synthetic_notes(count: int, *, seed: int, sample_rate: int = 16000,
                    clip_seconds: float = 0.96, n_filters: int = 64) -> NoteSpectrograms:
    """``count`` NSynth-like notes (:func:`lutece.audio.synth.make_task`'s ``"pitch"`` task:
    MIDI 48-71 balanced, a random family, instrument and velocity each, in noise)."""
    notes = make_task("pitch", count, seed=seed, sample_rate=sample_rate,
                      clip_seconds=clip_seconds)
    return NoteSpectrograms(
        log_mel_spectrograms(notes.waves, sample_rate, n_filters=n_filters),
        notes.metadata["family"], notes.metadata["pitch"].long(), tuple(FAMILIES),
        SYNTHETIC_PITCH_RANGE)


def nsynth_notes(root: str | os.PathLike, *, count: int | None = None, seed: int = 0,
                 pitch_range: tuple[int, int] = (21, 108), sample_rate: int = 16000,
                 clip_seconds: float = 0.96, n_filters: int = 64) -> NoteSpectrograms:
    """Notes of one NSynth split (``nsynth-train``, ``-valid`` or ``-test`` as extracted).

    Args:
        root: the split folder (``examples.json`` and ``audio/``).
        count: how many notes, drawn at random without replacement (seeded); None: all.
        seed: the draw.
        pitch_range: MIDI pitches kept, inclusive (the piano's 21-108 by default, as the
            paper's pitch task); they are the pitch classes.
        sample_rate, clip_seconds, n_filters: the spectrograms' (first ``clip_seconds`` of
            each 4-second note, zero-padded if shorter).
    """
    dataset = NSynth(root, pitch_range=pitch_range, sample_rate=sample_rate)
    available = len(dataset)
    if count is None:
        chosen = np.arange(available)
    else:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"nsynth_notes: count must be a positive int or None, got "
                             f"{count!r}")
        if count > available:
            raise ValueError(f"nsynth_notes: count {count} exceeds the {available} notes of "
                             f"'{root}' in MIDI {pitch_range[0]}-{pitch_range[1]}")
        chosen = np.sort(np.random.default_rng(seed).choice(available, count, replace=False))
    length = max(1, int(round(clip_seconds * sample_rate)))
    waves = torch.zeros(len(chosen), length)
    family = torch.empty(len(chosen), dtype=torch.int64)
    pitch = torch.empty(len(chosen), dtype=torch.int64)
    for row, index in enumerate(chosen):
        wave, target = dataset[int(index)]
        wave = wave[0, :length]
        waves[row, : wave.shape[0]] = wave
        family[row] = target["instrument_family"]
        pitch[row] = target["pitch"]
    return NoteSpectrograms(log_mel_spectrograms(waves, sample_rate, n_filters=n_filters),
                            family, pitch, tuple(NSYNTH_FAMILIES), tuple(pitch_range))
