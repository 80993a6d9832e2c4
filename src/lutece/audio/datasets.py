"""Map-style datasets over the audio corpora's own on-disk layouts.

Nothing is downloaded: each class indexes a folder laid out as the corpus ships it and
reads every file through :func:`lutece.audio.io.load`. Items are ``(wave, target)`` with
``wave`` float32 ``(1, samples)`` (mono, channels-first) at ``sample_rate``; files at other
rates are resampled on load (libsoxr). Optionally every wave is cropped or zero-padded to
``clip_samples`` and passed through ``transform``.

Corpora: NSynth (Engel et al., "Neural Audio Synthesis of Musical Notes with WaveNet
Autoencoders", ICML 2017), Speech Commands (Warden, "Speech Commands: A Dataset for
Limited-Vocabulary Speech Recognition", arXiv:1804.03209, 2018) and LibriSpeech (Panayotov,
Chen, Povey & Khudanpur, "Librispeech: an ASR corpus based on public domain audio books",
ICASSP 2015); :class:`AudioFolder` is torchvision's ImageFolder convention for audio.
"""

from __future__ import annotations

import json
import operator
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from .io import load

__all__ = [
    "AudioFolder", "AudioFolderExample",
    "NSynth", "NSynthExample", "NSYNTH_FAMILIES", "NSYNTH_SOURCES",
    "SpeechCommands", "SpeechCommandsExample",
    "LibriSpeech", "LibriSpeechExample",
    "collate_padded",
]

NSYNTH_FAMILIES: tuple[str, ...] = (
    "bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string",
    "synth_lead", "vocal",
)
"""NSynth's instrument families, in the order of its ``instrument_family`` index."""

NSYNTH_SOURCES: tuple[str, ...] = ("acoustic", "electronic", "synthetic")
"""NSynth's instrument sources, in the order of its ``instrument_source`` index."""

class _Example(Protocol):
    @property
    def path(self) -> Path: ...


ExampleT = TypeVar("ExampleT", bound=_Example)


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


# --------------------------------------------------------------------------- shared base


class _AudioDataset(Dataset, Generic[ExampleT]):
    """Loading, cropping/padding and transforming shared by every corpus.

    Subclasses fill ``self.examples`` (frozen records with a ``path``) and implement
    ``_target``. Items are ``(transform(crop_or_pad(load(path))), _target(example))``.
    """

    examples: list[ExampleT]

    def __init__(
        self, root: str | os.PathLike, *, sample_rate: int, clip_samples: int | None,
        random_crop: bool, seed: int | None, transform: Callable[[torch.Tensor], Any] | None,
    ) -> None:
        name = type(self).__name__
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"{name}: root must be a str or os.PathLike, "
                            f"got {type(root).__name__}")
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"{name}: root directory '{root}' does not exist")
        if not root.is_dir():
            raise NotADirectoryError(f"{name}: root '{root}' is not a directory")
        for arg, value in (("sample_rate", sample_rate), ("clip_samples", clip_samples)):
            if arg == "clip_samples" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name}: {arg} must be a positive int, "
                                f"got {type(value).__name__}")
            if value <= 0:
                raise ValueError(f"{name}: {arg} must be a positive int, got {value}")
        if not isinstance(random_crop, bool):
            raise TypeError(f"{name}: random_crop must be a bool, "
                            f"got {type(random_crop).__name__}")
        if random_crop and clip_samples is None:
            raise ValueError(f"{name}: random_crop=True needs clip_samples, got None")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                                 or seed < 0):
            raise ValueError(f"{name}: seed must be a non-negative int or None, got {seed!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"{name}: transform must be callable or None, "
                            f"got {type(transform).__name__}")
        self.root = root
        self.sample_rate = sample_rate
        self.clip_samples = clip_samples
        self.random_crop = random_crop
        self.seed = seed
        self.transform = transform
        self._generator: torch.Generator | None = None
        self._generator_owner: object = None

    # ------------------------------------------------------------------ subclass hooks

    def _target(self, example: ExampleT) -> Any:
        raise NotImplementedError

    def _summary(self) -> str:
        """Extra ``key=value`` pairs for ``repr``."""
        return ""

    def _set_classes(self, classes: Sequence[Any]) -> None:
        """``classes`` (index -> label) and ``class_to_index`` (label -> index)."""
        self.classes = list(classes)
        self.class_to_index = {label: index for index, label in enumerate(self.classes)}

    def _no_examples(self, expected_layout: str) -> ValueError:
        return ValueError(f"{type(self).__name__}: found no examples under '{self.root}'; "
                          f"expected the layout\n{expected_layout}")

    # ------------------------------------------------------------------ Dataset protocol

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        position = operator.index(index)
        if not -len(self.examples) <= position < len(self.examples):
            raise IndexError(f"{type(self).__name__}: index {position} is out of range for "
                             f"{len(self.examples)} examples")
        example = self.examples[position]
        wave, _ = load(example.path, sample_rate=self.sample_rate, mono=True)
        if self.clip_samples is not None:
            wave = self._crop_or_pad(wave, self.clip_samples)
        if self.transform is not None:
            wave = self.transform(wave)
        return wave, self._target(example)

    def __repr__(self) -> str:
        clip = "" if self.clip_samples is None else (
            f", clip_samples={self.clip_samples}, random_crop={self.random_crop}")
        extra = self._summary()
        return (f"{type(self).__name__}(root='{self.root}', examples={len(self)}"
                f"{', ' + extra if extra else ''}, sample_rate={self.sample_rate}{clip}"
                f"{'' if self.transform is None else f', transform={self.transform!r}'})")

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()  # the generator is per process: rebuilt where used
        state["_generator"] = None
        state["_generator_owner"] = None
        return state

    # ------------------------------------------------------------------ cropping

    def _crop_or_pad(self, wave: torch.Tensor, length: int) -> torch.Tensor:
        """``(1, n) -> (1, length)``: centre (or random) crop, right zero-pad."""
        excess = wave.shape[-1] - length
        if excess < 0:
            return torch.nn.functional.pad(wave, (0, -excess))
        if self.random_crop:
            start = int(torch.randint(excess + 1, (), generator=self._crop_generator()))
        else:
            start = excess // 2
        return wave[..., start:start + length]

    def _crop_generator(self) -> torch.Generator | None:
        """The stream random crops draw from; ``None`` (torch's global RNG) without a seed.

        In the main process the stream is seeded with ``seed`` once. A DataLoader worker
        gets its own stream, seeded from ``seed`` and the worker's seed (which the
        DataLoader derives per epoch from its own generator), so workers and epochs differ
        and a seeded DataLoader reproduces them.
        """
        if self.seed is None:
            return None
        worker = get_worker_info()
        owner = None if worker is None else (worker.id, worker.seed)
        if self._generator is None or self._generator_owner != owner:
            if worker is None:
                seed = self.seed
            else:
                state = np.random.SeedSequence([self.seed, worker.seed % 2**64])
                seed = int(state.generate_state(1, np.uint64)[0])
            self._generator = torch.Generator().manual_seed(seed)
            self._generator_owner = owner
        return self._generator


# --------------------------------------------------------------------------- AudioFolder


@dataclass(frozen=True)
class AudioFolderExample:
    path: Path
    label: str
    """The class folder's name."""
    target: int
    """Index of ``label`` in the dataset's sorted ``classes``."""


class AudioFolder(_AudioDataset[AudioFolderExample]):
    """One sub-folder per class, torchvision's ImageFolder convention for audio::

        root/
            dog/
                0001.wav
                barks/0002.flac     (files are found at any depth)
            rain/
                0003.ogg

    Classes are the sorted folder names, indexed from 0; the target is the class index.
    Hidden folders and files (names starting with ``.``) and files in ``root`` itself are
    ignored; a class folder without audio files is an error.

    Args:
        root: the folder holding the class folders.
        extensions: file name endings to take, compared case-insensitively.
        sample_rate: Hz of the returned waves; other rates are resampled on load.
        clip_samples: crop (centre, or random with ``random_crop``) or right-zero-pad each
            wave to exactly this many samples; ``None`` keeps every file's own length.
        random_crop: crop at a uniform random position (needs ``clip_samples``).
        seed: seeds the random crops (reproducible); ``None`` draws from torch's global RNG.
        transform: applied to the ``(1, samples)`` wave after cropping.
    """

    def __init__(
        self, root: str | os.PathLike, extensions: Sequence[str] = (".wav", ".flac", ".ogg"),
        *, sample_rate: int = 16000, clip_samples: int | None = None,
        random_crop: bool = False, seed: int | None = None,
        transform: Callable[[torch.Tensor], Any] | None = None,
    ) -> None:
        super().__init__(root, sample_rate=sample_rate, clip_samples=clip_samples,
                         random_crop=random_crop, seed=seed, transform=transform)
        if isinstance(extensions, str) or not all(
                isinstance(e, str) and e.startswith(".") and len(e) > 1 for e in extensions):
            raise ValueError(f"AudioFolder: extensions must be a sequence of strings starting "
                             f"with '.', e.g. ('.wav', '.flac'), got {extensions!r}")
        self.extensions = tuple(e.lower() for e in extensions)
        layout = ("  root/<class>/<file> with extensions " + ", ".join(self.extensions)
                  + " (one sub-folder per class)")
        folders = sorted(entry.name for entry in os.scandir(self.root)
                         if entry.is_dir() and not _is_hidden(entry.name))
        if not folders:
            raise self._no_examples(layout)
        self._set_classes(folders)
        self.examples = []
        empty = []
        for target, label in enumerate(self.classes):
            files = self._find_files(self.root / label)
            if not files:
                empty.append(label)
            self.examples.extend(AudioFolderExample(path, label, target) for path in files)
        if empty:
            raise ValueError(f"AudioFolder: class folder(s) {', '.join(map(repr, empty))} under "
                             f"'{self.root}' hold no files with extensions "
                             f"{', '.join(self.extensions)}; expected the layout\n{layout}")

    def _find_files(self, folder: Path) -> list[Path]:
        found: list[Path] = []
        for directory, subdirectories, files in os.walk(folder, followlinks=True):
            subdirectories[:] = [d for d in subdirectories if not _is_hidden(d)]
            found.extend(Path(directory, name) for name in files if not _is_hidden(name)
                         and name.lower().endswith(self.extensions))
        return sorted(found)

    def _target(self, example: AudioFolderExample) -> int:
        return example.target

    def _summary(self) -> str:
        return f"classes={len(self.classes)}"


# --------------------------------------------------------------------------- NSynth


@dataclass(frozen=True)
class NSynthExample:
    path: Path
    note_str: str
    """The note's id, e.g. ``"bass_synthetic_033-022-050"``."""
    pitch: int
    """MIDI pitch, 0 to 127."""
    velocity: int
    """MIDI velocity, 0 to 127."""
    instrument_family: int
    """Index in ``NSYNTH_FAMILIES``."""
    instrument_family_str: str
    instrument_source: int
    """Index in ``NSYNTH_SOURCES``."""
    instrument_source_str: str
    qualities: tuple[int, ...]
    """NSynth's 10 binary note qualities (bright, dark, distortion, ...)."""
    instrument: int | None = None
    """The instrument's id, when ``examples.json`` gives it."""


class NSynth(_AudioDataset[NSynthExample]):
    """One split of NSynth, Engel et al. (ICML 2017): 4-second notes at 16 kHz::

        nsynth-test/                     (root: one split, as extracted from its archive)
            examples.json                {note_str: {"pitch", "velocity",
                                          "instrument_family", "instrument_source", ...}}
            audio/
                bass_synthetic_033-022-050.wav
                ...                      (audio/<note_str>.wav)

    The target is a dict of ints ``{"pitch", "velocity", "instrument_family",
    "instrument_source"}`` with NSynth's own indices (``NSYNTH_FAMILIES``,
    ``NSYNTH_SOURCES``), kept unchanged by the filters. ``classes`` are the 11 family names.
    Examples are sorted by ``note_str``; audio files are looked up when an item is read.

    Args:
        root: the split folder (``nsynth-train``, ``nsynth-valid`` or ``nsynth-test``).
        pitch_range: ``(lowest, highest)`` MIDI pitches to keep, inclusive, e.g. ``(21, 108)``
            for the piano's range; ``None`` keeps all.
        families: family names to keep (from ``NSYNTH_FAMILIES``); ``None`` keeps all.
        sample_rate, clip_samples, random_crop, seed, transform: as in :class:`AudioFolder`.
    """

    FAMILIES = NSYNTH_FAMILIES
    SOURCES = NSYNTH_SOURCES
    _LAYOUT = ("  root/examples.json   {note_str: {pitch, velocity, instrument_family, "
               "instrument_source, ...}}\n  root/audio/<note_str>.wav")
    _REQUIRED = ("pitch", "velocity", "instrument_family", "instrument_source")

    def __init__(
        self, root: str | os.PathLike, *, pitch_range: tuple[int, int] | None = None,
        families: Iterable[str] | None = None, sample_rate: int = 16000,
        clip_samples: int | None = None, random_crop: bool = False, seed: int | None = None,
        transform: Callable[[torch.Tensor], Any] | None = None,
    ) -> None:
        super().__init__(root, sample_rate=sample_rate, clip_samples=clip_samples,
                         random_crop=random_crop, seed=seed, transform=transform)
        if pitch_range is not None:
            if (not isinstance(pitch_range, (tuple, list)) or len(pitch_range) != 2
                    or not all(isinstance(p, int) and not isinstance(p, bool)
                               for p in pitch_range)
                    or pitch_range[0] > pitch_range[1]):
                raise ValueError(f"NSynth: pitch_range must be (lowest, highest) MIDI pitches "
                                 f"with lowest <= highest, got {pitch_range!r}")
            pitch_range = (pitch_range[0], pitch_range[1])
        if families is not None:
            families = (families,) if isinstance(families, str) else tuple(families)
            unknown = [f for f in families if f not in NSYNTH_FAMILIES]
            if unknown or not families:
                raise ValueError(f"NSynth: families must be names from "
                                 f"{', '.join(NSYNTH_FAMILIES)}, got {list(families)!r}")
        self.pitch_range = pitch_range
        self.families = None if families is None else frozenset(families)
        self._set_classes(NSYNTH_FAMILIES)

        metadata_path = self.root / "examples.json"
        if not metadata_path.is_file() or not (self.root / "audio").is_dir():
            raise self._no_examples(self._LAYOUT)
        try:
            with open(metadata_path, encoding="utf-8") as handle:
                metadata = json.load(handle)
        except json.JSONDecodeError as error:
            raise ValueError(f"NSynth: '{metadata_path}' is not valid JSON: {error}") from error
        if not isinstance(metadata, dict) or not metadata:
            raise self._no_examples(self._LAYOUT)
        self.examples = []
        for note_str in sorted(metadata):
            example = self._record(note_str, metadata[note_str], metadata_path)
            if self.pitch_range is not None and not (
                    self.pitch_range[0] <= example.pitch <= self.pitch_range[1]):
                continue
            if self.families is not None and example.instrument_family_str not in self.families:
                continue
            self.examples.append(example)
        if not self.examples:
            raise ValueError(f"NSynth: no note in '{metadata_path}' passes the filters "
                             f"pitch_range={self.pitch_range}, families={families}")

    def _record(self, note_str: str, fields: object, metadata_path: Path) -> NSynthExample:
        if not isinstance(fields, dict) or any(key not in fields for key in self._REQUIRED):
            raise ValueError(f"NSynth: entry {note_str!r} of '{metadata_path}' must be an "
                             f"object with the fields {', '.join(self._REQUIRED)}, "
                             f"got {fields!r}")
        family, source = int(fields["instrument_family"]), int(fields["instrument_source"])
        if not (0 <= family < len(NSYNTH_FAMILIES) and 0 <= source < len(NSYNTH_SOURCES)):
            raise ValueError(f"NSynth: entry {note_str!r} of '{metadata_path}' has "
                             f"instrument_family={family}, instrument_source={source}; "
                             f"expected 0..{len(NSYNTH_FAMILIES) - 1} and "
                             f"0..{len(NSYNTH_SOURCES) - 1}")
        instrument = fields.get("instrument")
        return NSynthExample(
            path=self.root / "audio" / f"{note_str}.wav", note_str=note_str,
            pitch=int(fields["pitch"]), velocity=int(fields["velocity"]),
            instrument_family=family,
            instrument_family_str=fields.get("instrument_family_str", NSYNTH_FAMILIES[family]),
            instrument_source=source,
            instrument_source_str=fields.get("instrument_source_str", NSYNTH_SOURCES[source]),
            qualities=tuple(int(q) for q in fields.get("qualities", ())),
            instrument=None if instrument is None else int(instrument))

    def _target(self, example: NSynthExample) -> dict[str, int]:
        return {"pitch": example.pitch, "velocity": example.velocity,
                "instrument_family": example.instrument_family,
                "instrument_source": example.instrument_source}

    def _summary(self) -> str:
        filters = "" if self.pitch_range is None else f", pitch_range={self.pitch_range}"
        if self.families is not None:
            filters += f", families={sorted(self.families)}"
        return filters.removeprefix(", ")


# --------------------------------------------------------------------------- Speech Commands


@dataclass(frozen=True)
class SpeechCommandsExample:
    path: Path
    word: str
    """The word folder's name."""
    target: int
    """Index of ``word`` in the dataset's sorted ``classes``."""
    speaker_id: str
    """The anonymized speaker hash before ``_nohash_`` (the whole stem without it)."""
    utterance_number: int | None
    """The repetition ``n`` after ``_nohash_`` (``None`` when the name has none)."""


class SpeechCommands(_AudioDataset[SpeechCommandsExample]):
    """Speech Commands, Warden (2018): one-second words at 16 kHz, v0.01 or v0.02::

        speech_commands_v0.02/           (root)
            validation_list.txt          relative paths, e.g. "yes/0a7c2a8d_nohash_0.wav"
            testing_list.txt
            _background_noise_/          (excluded, as is any folder starting with "_")
            yes/
                0a7c2a8d_nohash_0.wav    (<speaker_hash>_nohash_<n>.wav)
                ...
            no/ ...

    ``subset="validation"`` and ``"testing"`` are the files named in their lists,
    ``"training"`` every other one (the corpus's own hash-based split, which keeps each
    speaker in one subset). The target is the word's index among the sorted word folders
    (``classes``), or among the sorted ``words`` when given.

    Args:
        root: the extracted corpus.
        subset: ``"training"``, ``"validation"`` or ``"testing"``.
        words: keep only these words (folder names), e.g. the 10 commands of the 12-class
            task; ``None`` keeps every word folder.
        sample_rate, clip_samples, random_crop, seed, transform: as in :class:`AudioFolder`.
    """

    SUBSETS = ("training", "validation", "testing")
    _LAYOUT = ("  root/<word>/<speaker_hash>_nohash_<n>.wav\n"
               "  root/validation_list.txt, root/testing_list.txt   (lines '<word>/<file>.wav')")

    def __init__(
        self, root: str | os.PathLike, subset: str = "training", *,
        words: Iterable[str] | None = None, sample_rate: int = 16000,
        clip_samples: int | None = None, random_crop: bool = False, seed: int | None = None,
        transform: Callable[[torch.Tensor], Any] | None = None,
    ) -> None:
        super().__init__(root, sample_rate=sample_rate, clip_samples=clip_samples,
                         random_crop=random_crop, seed=seed, transform=transform)
        if subset not in self.SUBSETS:
            raise ValueError(f"SpeechCommands: subset must be one of "
                             f"{', '.join(map(repr, self.SUBSETS))}, got {subset!r}")
        self.subset = subset
        lists = {name: self.root / f"{name}_list.txt" for name in ("validation", "testing")}
        available = sorted(entry.name for entry in os.scandir(self.root) if entry.is_dir()
                           and not entry.name.startswith(("_", ".")))
        if not available or not all(path.is_file() for path in lists.values()):
            raise self._no_examples(self._LAYOUT)
        if words is not None:
            words = (words,) if isinstance(words, str) else tuple(words)
            unknown = [w for w in words if w not in available]
            if unknown or not words:
                raise ValueError(f"SpeechCommands: words {unknown or list(words)!r} are not word "
                                 f"folders of '{self.root}'; valid: {', '.join(available)}")
        self._set_classes(sorted(set(words)) if words is not None else available)

        listed = {name: self._read_list(path) for name, path in lists.items()}
        self.examples = []
        for target, word in enumerate(self.classes):
            for name in sorted(entry.name for entry in os.scandir(self.root / word)
                               if entry.is_file() and not _is_hidden(entry.name)
                               and entry.name.lower().endswith(".wav")):
                relative = f"{word}/{name}"
                membership = ("validation" if relative in listed["validation"] else
                              "testing" if relative in listed["testing"] else "training")
                if membership != subset:
                    continue
                speaker, marker, number = Path(name).stem.partition("_nohash_")
                self.examples.append(SpeechCommandsExample(
                    path=self.root / word / name, word=word, target=target, speaker_id=speaker,
                    utterance_number=int(number) if marker and number.isdigit() else None))
        if not self.examples:
            raise ValueError(f"SpeechCommands: the {subset!r} subset of '{self.root}' is empty "
                             f"(words: {', '.join(self.classes)}); expected the layout\n"
                             f"{self._LAYOUT}")

    @staticmethod
    def _read_list(path: Path) -> frozenset[str]:
        with open(path, encoding="utf-8") as handle:
            return frozenset(line.strip().replace("\\", "/").removeprefix("./")
                             for line in handle if line.strip())

    def _target(self, example: SpeechCommandsExample) -> int:
        return example.target

    def _summary(self) -> str:
        return f"subset={self.subset!r}, classes={len(self.classes)}"


# --------------------------------------------------------------------------- LibriSpeech


@dataclass(frozen=True)
class LibriSpeechExample:
    path: Path
    speaker_id: int
    chapter_id: int
    utterance_id: int
    transcript: str
    """Upper-case words as in the corpus's ``.trans.txt``."""


class LibriSpeech(_AudioDataset[LibriSpeechExample]):
    """One subset of LibriSpeech, Panayotov et al. (ICASSP 2015): read English at 16 kHz::

        LibriSpeech/                             (root)
            train-clean-100/                     (subset: any sub-folder)
                19/                              (speaker id)
                    198/                         (chapter id)
                        19-198.trans.txt         lines "19-198-0001 NORTHANGER ABBEY ..."
                        19-198-0000.flac
                        19-198-0001.flac         (<speaker>-<chapter>-<utterance:04d>.flac)

    The utterances are those of the transcript files. The target is a dict
    ``{"speaker": index of the speaker among the subset's sorted speaker ids (int),
    "transcript": str, "speaker_id": int, "chapter_id": int, "utterance_id": int}``;
    ``classes`` are the sorted speaker ids. Waves differ in length: batch them with
    :meth:`collate` (``DataLoader(dataset, collate_fn=LibriSpeech.collate)``).

    Args:
        root: the folder holding the subsets (``LibriSpeech/`` as extracted).
        subset: a sub-folder of ``root``, e.g. ``"train-clean-100"``, ``"dev-clean"``,
            ``"test-other"``.
        sample_rate, clip_samples, random_crop, seed, transform: as in :class:`AudioFolder`.
    """

    _LAYOUT = ("  root/<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt   "
               "(lines '<speaker>-<chapter>-<utterance> TRANSCRIPT')\n"
               "  root/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utterance>.flac")

    def __init__(
        self, root: str | os.PathLike, subset: str = "train-clean-100", *,
        sample_rate: int = 16000, clip_samples: int | None = None, random_crop: bool = False,
        seed: int | None = None, transform: Callable[[torch.Tensor], Any] | None = None,
    ) -> None:
        super().__init__(root, sample_rate=sample_rate, clip_samples=clip_samples,
                         random_crop=random_crop, seed=seed, transform=transform)
        available = sorted(entry.name for entry in os.scandir(self.root)
                           if entry.is_dir() and not _is_hidden(entry.name))
        if not isinstance(subset, str) or subset not in available:
            raise ValueError(f"LibriSpeech: subset must be a sub-folder of '{self.root}', one "
                             f"of {', '.join(available) or '(none found)'}; got {subset!r}")
        self.subset = subset
        self.examples = []
        subset_dir = self.root / subset
        for speaker in self._numeric_folders(subset_dir):
            for chapter in self._numeric_folders(subset_dir / str(speaker)):
                self.examples.extend(self._chapter(subset_dir / str(speaker) / str(chapter),
                                                   speaker, chapter))
        if not self.examples:
            raise self._no_examples(self._LAYOUT)
        self.examples.sort(key=lambda e: (e.speaker_id, e.chapter_id, e.utterance_id))
        self._set_classes(sorted({example.speaker_id for example in self.examples}))

    @staticmethod
    def _numeric_folders(folder: Path) -> list[int]:
        return sorted(int(entry.name) for entry in os.scandir(folder)
                      if entry.is_dir() and entry.name.isdigit())

    def _chapter(self, folder: Path, speaker: int, chapter: int) -> list[LibriSpeechExample]:
        names = {entry.name for entry in os.scandir(folder) if entry.is_file()}
        transcripts = folder / f"{speaker}-{chapter}.trans.txt"
        if transcripts.name not in names:
            if any(name.endswith(".flac") for name in names):
                raise ValueError(f"LibriSpeech: '{folder}' holds audio but no transcript file "
                                 f"'{transcripts.name}'; expected the layout\n{self._LAYOUT}")
            return []
        examples = []
        with open(transcripts, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                utterance, _, transcript = line.strip().partition(" ")
                parts = utterance.split("-")
                if (len(parts) != 3 or not all(p.isdigit() for p in parts)
                        or (int(parts[0]), int(parts[1])) != (speaker, chapter)):
                    raise ValueError(f"LibriSpeech: line {number} of '{transcripts}' must start "
                                     f"with '{speaker}-{chapter}-<utterance>', got {line!r}")
                if f"{utterance}.flac" not in names:
                    raise ValueError(f"LibriSpeech: '{transcripts}' lists {utterance} but "
                                     f"'{folder / (utterance + '.flac')}' is missing")
                examples.append(LibriSpeechExample(
                    path=folder / f"{utterance}.flac", speaker_id=speaker, chapter_id=chapter,
                    utterance_id=int(parts[2]), transcript=transcript.strip()))
        return examples

    def _target(self, example: LibriSpeechExample) -> dict[str, Any]:
        return {"speaker": self.class_to_index[example.speaker_id],
                "transcript": example.transcript, "speaker_id": example.speaker_id,
                "chapter_id": example.chapter_id, "utterance_id": example.utterance_id}

    def _summary(self) -> str:
        return f"subset={self.subset!r}, speakers={len(self.classes)}"

    @staticmethod
    def collate(batch: Sequence[tuple[torch.Tensor, Any]]) -> tuple[
            torch.Tensor, torch.Tensor, Any]:
        """:func:`collate_padded`, for ``DataLoader(..., collate_fn=LibriSpeech.collate)``."""
        return collate_padded(batch)


# --------------------------------------------------------------------------- batching


def collate_padded(
    batch: Sequence[tuple[torch.Tensor, Any]],
) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """Batch ``(wave, target)`` items of different lengths (``default_collate`` refuses).

    Args:
        batch: items with waves ``(channels, samples_i)``, all with the same channels and
            dtype, and targets that are all ints, all strings, or all dicts of those.

    Returns:
        ``(waves, lengths, targets)``: waves ``(batch, channels, max_i samples_i)``
        right-padded with zeros; lengths int64 ``(batch,)``, each wave's own length; targets
        an int64 tensor for ints, a list for strings (or anything else), and a dict of these
        for dict targets.
    """
    if not batch:
        raise ValueError("collate_padded: batch must hold at least one item, got 0")
    waves = [item[0] for item in batch]
    shapes = {wave.shape[:-1] for wave in waves}
    if any(wave.ndim != 2 for wave in waves) or len(shapes) != 1:
        raise ValueError(f"collate_padded: waves must all be (channels, samples) with the same "
                         f"channels, got shapes {[tuple(w.shape) for w in waves]}")
    lengths = torch.tensor([wave.shape[-1] for wave in waves], dtype=torch.int64)
    padded = waves[0].new_zeros((len(waves), waves[0].shape[0], int(lengths.max())))
    for row, wave in enumerate(waves):
        padded[row, :, :wave.shape[-1]] = wave

    def stack(values: list[Any]) -> Any:
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return torch.tensor(values, dtype=torch.int64)
        return list(values)

    targets = [item[1] for item in batch]
    if all(isinstance(t, dict) for t in targets):
        return padded, lengths, {key: stack([t[key] for t in targets]) for key in targets[0]}
    return padded, lengths, stack(targets)
