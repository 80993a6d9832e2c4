"""Seeded generators of labelled audio that stand in for real corpora in tests and
experiments: speech-like voices (source-filter, Klatt 1980), musical notes of NSynth's
instrument families (additive synthesis), acoustic events and background noises, and the
classification tasks built from them (:func:`make_task`).

Modules: :mod:`.speech` (speakers, words, :func:`speak`), :mod:`.music` (:func:`play_note`),
:mod:`.events` (:func:`make_event`, :func:`background_noise`, :func:`mix_at_snr`),
:mod:`.tasks` (:class:`LabelledAudio`, :func:`make_task`). All randomness comes from
``numpy.random.Generator`` arguments or integer seeds; nothing reads global state.
"""

from .events import EVENT_CLASSES, NOISE_KINDS, babble, background_noise, make_event, mix_at_snr
from .music import (
    FAMILIES,
    MIDI_RANGE,
    Instrument,
    hz_to_midi,
    midi_to_hz,
    play_note,
    random_instrument,
)
from .speech import (
    PHONES,
    REFERENCE_TRACT_CM,
    VOWELS,
    Speaker,
    Word,
    WordSpan,
    random_speaker,
    random_word,
    speak,
    speak_with_alignment,
)
from .tasks import (
    TASKS,
    LabelledAudio,
    make_task,
    task_instruments,
    task_speakers,
    task_vocabulary,
)

__all__ = [
    # speech
    "Speaker", "Word", "WordSpan", "PHONES", "VOWELS", "REFERENCE_TRACT_CM", "random_speaker",
    "random_word", "speak", "speak_with_alignment",
    # music
    "FAMILIES", "MIDI_RANGE", "Instrument", "midi_to_hz", "hz_to_midi", "random_instrument",
    "play_note",
    # events and noise
    "EVENT_CLASSES", "NOISE_KINDS", "make_event", "background_noise", "babble", "mix_at_snr",
    # tasks
    "TASKS", "LabelledAudio", "make_task", "task_vocabulary", "task_speakers",
    "task_instruments",
]
