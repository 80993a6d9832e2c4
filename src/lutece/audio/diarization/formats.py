"""Readers and writers for the file formats of speaker diarization.

* **RTTM** (Rich Transcription Time Marked, NIST RT-09 evaluation plan, appendix A): one
  space-separated line per turn,
  ``SPEAKER <uri> <channel> <onset> <duration> <NA> <NA> <speaker> <NA> <NA>``, times in
  seconds. Ten fields; nine are accepted too (EEND and some older tools drop the last
  ``<NA>``). Lines of other types (``SPKR-INFO``, ``LEXEME``, ...) are skipped, as md-eval
  does for speaker scoring.
* **UEM** (un-partitioned evaluation map, md-eval / dscore): ``<uri> <channel> <start> <end>``
  in seconds, one scored region per line.
* **Kaldi data directory** files (Kaldi "Data preparation" documentation): ``wav.scp``
  (``<recording-id> <extended-filename>``, where a value ending in ``|`` is a shell pipe),
  ``segments`` (``<utterance-id> <recording-id> <begin> <end>``, seconds), ``utt2spk``
  (``<utterance-id> <speaker-id>``) and ``reco2dur`` (``<recording-id> <duration>``,
  seconds). Writers sort lines by their first field, as Kaldi's ``validate_data_dir.sh``
  expects (C-locale order for ASCII identifiers).

Readers raise :class:`DiarizationFormatError` with the file and the 1-based line number.
Writers are atomic: the text is written to a temporary file in the destination folder, then
moved in place with :func:`os.replace`, so a failed write leaves neither a half-written file
nor a temporary file behind.
"""

from __future__ import annotations

import math
import numbers
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pyannote.core import Annotation, Segment, Timeline

from .annotation import annotation_from_turns, turns

__all__ = ["DiarizationFormatError", "read_rttm", "write_rttm", "read_uem", "write_uem",
           "read_wav_scp", "write_wav_scp", "resolve_wav_path", "read_segments",
           "write_segments", "read_utt2spk", "write_utt2spk", "read_reco2dur",
           "write_reco2dur", "check_uem_uris", "KaldiDataDir", "read_kaldi_data_dir"]

PathLike = str | os.PathLike


class DiarizationFormatError(ValueError):
    """A diarization file (or the data written to one) does not follow its format."""


# ---------------------------------------------------------------------------- helpers


def _atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file in the same folder, fsync,
    :func:`os.replace`). On any failure the temporary file is removed and ``path`` is left
    as it was."""
    path = Path(path)
    handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent or ".",
                                         prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        try:
            os.unlink(handle.name)
        except FileNotFoundError:
            pass
        raise


def _lines(path: PathLike, function: str) -> Iterable[tuple[int, list[str], str]]:
    """``(line_number, fields, raw_line)`` of the non-blank, non-comment lines of ``path``
    (comments start with ``#`` or ``;;``); line numbers are 1-based."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise DiarizationFormatError(f"{function}: {path}: no such file") from None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.startswith(";;"):
            continue
        yield number, stripped.split(), stripped


def _fail(function: str, path: PathLike, number: int, message: str) -> DiarizationFormatError:
    return DiarizationFormatError(f"{function}: {path} line {number}: {message}")


def _number(function: str, path: PathLike, number: int, name: str, text: str) -> float:
    """Parse a finite float field, or raise naming the field, file and line."""
    try:
        value = float(text)
    except ValueError:
        raise _fail(function, path, number, f"{name} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise _fail(function, path, number, f"{name} must be finite, got {text!r}")
    return value


def _start_end(function: str, path: PathLike, number: int, start_text: str, end_text: str
               ) -> tuple[float, float]:
    """The ``start end`` columns of a UEM or segments line: numbers, ``0 <= start <= end``."""
    start = _number(function, path, number, "start", start_text)
    end = _number(function, path, number, "end", end_text)
    if start < 0:
        raise _fail(function, path, number, f"start must be >= 0, got {start_text}")
    if end < start:
        raise _fail(function, path, number,
                    f"end must be >= start, got start {start_text} and end {end_text}")
    return start, end


def _check_field_count(function: str, path: PathLike, number: int, fields: list[str],
                       allowed: tuple[int, ...], layout: str) -> None:
    if len(fields) not in allowed:
        expected = " or ".join(str(n) for n in allowed)
        raise _fail(function, path, number,
                    f"expected {expected} fields ({layout}), got {len(fields)}")


def _check_token(function: str, what: str, value: str) -> str:
    """Identifiers are single whitespace-free tokens in every format here."""
    value = str(value)
    if not value or len(value.split()) != 1 or value != value.strip():
        raise DiarizationFormatError(f"{function}: {what} must be a non-empty token without "
                                     f"whitespace, got {value!r}")
    return value


def _check_unique(function: str, path: PathLike, number: int, seen: dict, key: str) -> None:
    if key in seen:
        raise _fail(function, path, number, f"duplicate id {key!r}")


# ---------------------------------------------------------------------------- RTTM

_RTTM_LAYOUT = "SPEAKER uri channel onset duration <NA> <NA> speaker <NA> <NA>"


def read_rttm(path: PathLike) -> dict[str, Annotation]:
    """Read an RTTM file into ``{uri: Annotation}`` (uris in order of first appearance).

    Only ``SPEAKER`` lines are read; onset and duration are seconds. Zero-duration turns are
    skipped. Raises :class:`DiarizationFormatError` naming the file and line for a wrong
    field count, a non-numeric or non-finite onset or duration, a negative onset or a
    negative duration."""
    items: dict[str, list[tuple[float, float, str]]] = {}
    for number, fields, _ in _lines(path, "read_rttm"):
        if fields[0] != "SPEAKER":
            continue
        _check_field_count("read_rttm", path, number, fields, (10, 9), _RTTM_LAYOUT)
        uri, speaker = fields[1], fields[7]
        onset = _number("read_rttm", path, number, "onset", fields[3])
        duration = _number("read_rttm", path, number, "duration", fields[4])
        if onset < 0:
            raise _fail("read_rttm", path, number, f"onset must be >= 0, got {fields[3]}")
        if duration < 0:
            raise _fail("read_rttm", path, number, f"duration must be >= 0, got {fields[4]}")
        turn_list = items.setdefault(uri, [])
        if duration > 0:
            turn_list.append((onset, onset + duration, speaker))
    return {uri: annotation_from_turns(sorted(turn_list), uri=uri)
            for uri, turn_list in items.items()}


def _named_annotations(annotations: Annotation | Mapping[str, Annotation]
                       | Iterable[Annotation], function: str) -> list[tuple[str, Annotation]]:
    """``(uri, annotation)`` pairs: dict keys are the uris, otherwise ``annotation.uri``."""
    if isinstance(annotations, Annotation):
        annotations = [annotations]
    if isinstance(annotations, Mapping):
        pairs = [(str(uri), annotation) for uri, annotation in annotations.items()]
    else:
        pairs = []
        for index, annotation in enumerate(annotations):
            if not isinstance(annotation, Annotation):
                raise DiarizationFormatError(f"{function}: item {index} is a "
                                             f"{type(annotation).__name__}, not an Annotation")
            if annotation.uri is None or str(annotation.uri) == "":
                raise DiarizationFormatError(f"{function}: annotation {index} has no uri; set "
                                             f"annotation.uri or pass a dict {{uri: "
                                             f"annotation}}")
            pairs.append((str(annotation.uri), annotation))
    for uri, _ in pairs:
        _check_token(function, "uri", uri)
    return pairs


def write_rttm(path: PathLike, annotations: Annotation | Mapping[str, Annotation]
               | Iterable[Annotation]) -> None:
    """Write annotations as RTTM, one ``SPEAKER`` line per turn sorted by onset, times in
    seconds with millisecond precision, channel ``1``.

    ``annotations`` is one :class:`Annotation`, a dict ``{uri: Annotation}`` or an iterable
    of annotations whose ``uri`` is set. The end time is rounded (not onset + rounded
    duration), so a read-back turn is within 0.5 ms of the original at both ends."""
    lines = []
    for uri, annotation in _named_annotations(annotations, "write_rttm"):
        for start, end, speaker in sorted(turns(annotation)):
            _check_token("write_rttm", "speaker label", speaker)
            onset = round(start, 3)
            duration = max(round(end, 3) - onset, 0.0)
            lines.append(f"SPEAKER {uri} 1 {onset:.3f} {duration:.3f} <NA> <NA> {speaker} "
                         f"<NA> <NA>\n")
    _atomic_write_text(path, "".join(lines))


# ---------------------------------------------------------------------------- UEM


def read_uem(path: PathLike) -> dict[str, Timeline]:
    """Read a UEM file (``uri channel start end``, seconds) into ``{uri: Timeline}``.

    Raises :class:`DiarizationFormatError` naming the file and line for a wrong field
    count, a non-numeric time, a negative start or ``end < start``."""
    segments: dict[str, list[Segment]] = {}
    for number, fields, _ in _lines(path, "read_uem"):
        _check_field_count("read_uem", path, number, fields, (4,), "uri channel start end")
        start, end = _start_end("read_uem", path, number, fields[2], fields[3])
        segments.setdefault(fields[0], []).append(Segment(start, end))
    return {uri: Timeline(segments=regions, uri=uri) for uri, regions in segments.items()}


def _regions(value: Timeline | tuple[float, float] | Iterable[tuple[float, float]]
             ) -> list[tuple[float, float]]:
    """``(start, end)`` pairs, in seconds, of a Timeline, one pair or a list of pairs."""
    if isinstance(value, Timeline):
        return [(segment.start, segment.end) for segment in value]
    if isinstance(value, Segment):
        return [(value.start, value.end)]
    value = list(value)
    if len(value) == 2 and all(isinstance(v, numbers.Real) for v in value):
        return [(float(value[0]), float(value[1]))]
    return [(float(start), float(end)) for start, end in value]


def write_uem(path: PathLike, uems: Mapping[str, Timeline | tuple[float, float]
                                            | Iterable[tuple[float, float]]]) -> None:
    """Write ``{uri: regions}`` as UEM (``uri 1 start end``, seconds, 3 decimals), regions
    being a :class:`Timeline`, one ``(start, end)`` pair or a list of pairs."""
    lines = []
    for uri, value in uems.items():
        uri = _check_token("write_uem", "uri", uri)
        for start, end in sorted(_regions(value)):
            if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end < start:
                raise DiarizationFormatError(f"write_uem: uri {uri!r}: need 0 <= start <= "
                                             f"end, got ({start}, {end})")
            lines.append(f"{uri} 1 {start:.3f} {end:.3f}\n")
    _atomic_write_text(path, "".join(lines))


def check_uem_uris(uems: Mapping[str, object], annotations: Mapping[str, Annotation],
                   path: PathLike | None = None) -> None:
    """Raise :class:`DiarizationFormatError` if the UEM names recordings (uris) that the
    reference ``annotations`` do not have; the message names ``path`` and the uris."""
    unknown = [uri for uri in uems if uri not in annotations]
    if unknown:
        source = f"{path}: " if path is not None else ""
        raise DiarizationFormatError(f"check_uem_uris: {source}uem names recordings absent "
                                     f"from the reference: {', '.join(map(str, unknown))}")


# ---------------------------------------------------------------------------- Kaldi


def read_wav_scp(path: PathLike) -> dict[str, str]:
    """Read a Kaldi ``wav.scp`` into ``{recording_id: value}``. Each line is split once on
    whitespace; the value (a path, or a shell pipe ending in ``|``) is kept as written.
    Duplicate ids and lines without a value raise :class:`DiarizationFormatError`."""
    mapping: dict[str, str] = {}
    for number, _, line in _lines(path, "read_wav_scp"):
        fields = line.split(maxsplit=1)
        if len(fields) != 2:
            raise _fail("read_wav_scp", path, number,
                        "expected 'recording-id value', got only one field")
        _check_unique("read_wav_scp", path, number, mapping, fields[0])
        mapping[fields[0]] = fields[1].strip()
    return mapping


def write_wav_scp(path: PathLike, mapping: Mapping[str, PathLike]) -> None:
    """Write ``{recording_id: path or pipe}`` as a Kaldi ``wav.scp``, sorted by id."""
    lines = []
    for key in sorted(mapping):
        value = str(os.fspath(mapping[key]) if not isinstance(mapping[key], str)
                    else mapping[key])
        if not value.strip() or "\n" in value:
            raise DiarizationFormatError(f"write_wav_scp: value of {key!r} must be a "
                                         f"non-empty single line, got {value!r}")
        lines.append(f"{_check_token('write_wav_scp', 'recording id', key)} {value}\n")
    _atomic_write_text(path, "".join(lines))


def resolve_wav_path(value: str, base_dir: PathLike) -> Path:
    """The audio file a ``wav.scp`` value names: absolute paths as they are, relative ones
    under ``base_dir``. Pipe commands (values ending in ``|``) raise
    :class:`DiarizationFormatError`, since running shell commands is not supported."""
    value = value.strip()
    if value.endswith("|"):
        raise DiarizationFormatError(f"resolve_wav_path: pipe commands are not supported in "
                                     f"wav.scp (got {value!r}); convert the audio to a file "
                                     f"first, e.g. run the command with '> file.wav'")
    path = Path(value)
    return path if path.is_absolute() else Path(base_dir) / path


def read_segments(path: PathLike) -> list[tuple[str, str, float, float]]:
    """Read a Kaldi ``segments`` file into ``(utterance, recording, start, end)`` rows,
    seconds, in file order. A fifth (channel) field is accepted and ignored."""
    rows: list[tuple[str, str, float, float]] = []
    seen: dict[str, None] = {}
    for number, fields, _ in _lines(path, "read_segments"):
        _check_field_count("read_segments", path, number, fields, (4, 5),
                           "utterance-id recording-id start end")
        _check_unique("read_segments", path, number, seen, fields[0])
        seen[fields[0]] = None
        start, end = _start_end("read_segments", path, number, fields[2], fields[3])
        rows.append((fields[0], fields[1], start, end))
    return rows


def write_segments(path: PathLike, rows: Iterable[tuple[str, str, float, float]]) -> None:
    """Write ``(utterance, recording, start, end)`` rows (seconds) as a Kaldi ``segments``
    file, sorted by utterance id, times with 3 decimals."""
    lines = []
    for utterance, recording, start, end in sorted(rows, key=lambda row: str(row[0])):
        utterance = _check_token("write_segments", "utterance id", utterance)
        recording = _check_token("write_segments", "recording id", recording)
        start, end = float(start), float(end)
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end < start:
            raise DiarizationFormatError(f"write_segments: utterance {utterance!r}: need "
                                         f"0 <= start <= end, got ({start}, {end})")
        lines.append(f"{utterance} {recording} {start:.3f} {end:.3f}\n")
    _atomic_write_text(path, "".join(lines))


def _read_two_columns(path: PathLike, function: str, layout: str, parse=None) -> dict:
    """``{first field: parse(line number, second field)}`` of a two-column Kaldi file."""
    mapping: dict = {}
    for number, fields, _ in _lines(path, function):
        _check_field_count(function, path, number, fields, (2,), layout)
        _check_unique(function, path, number, mapping, fields[0])
        mapping[fields[0]] = fields[1] if parse is None else parse(number, fields[1])
    return mapping


def read_utt2spk(path: PathLike) -> dict[str, str]:
    """Read a Kaldi ``utt2spk`` file into ``{utterance_id: speaker_id}``."""
    return _read_two_columns(path, "read_utt2spk", "utterance-id speaker-id")


def write_utt2spk(path: PathLike, mapping: Mapping[str, str]) -> None:
    """Write ``{utterance_id: speaker_id}`` as a Kaldi ``utt2spk`` file, sorted by
    utterance id."""
    lines = [f"{_check_token('write_utt2spk', 'utterance id', key)} "
             f"{_check_token('write_utt2spk', 'speaker id', mapping[key])}\n"
             for key in sorted(mapping)]
    _atomic_write_text(path, "".join(lines))


def read_reco2dur(path: PathLike) -> dict[str, float]:
    """Read a Kaldi ``reco2dur`` file into ``{recording_id: duration}`` (seconds, >= 0)."""

    def duration(number: int, text: str) -> float:
        value = _number("read_reco2dur", path, number, "duration", text)
        if value < 0:
            raise _fail("read_reco2dur", path, number, f"duration must be >= 0, got {text}")
        return value

    return _read_two_columns(path, "read_reco2dur", "recording-id duration", duration)


def write_reco2dur(path: PathLike, mapping: Mapping[str, float]) -> None:
    """Write ``{recording_id: duration}`` (seconds) as a Kaldi ``reco2dur`` file, sorted by
    id, durations with 3 decimals."""
    lines = []
    for key in sorted(mapping):
        duration = float(mapping[key])
        if not math.isfinite(duration) or duration < 0:
            raise DiarizationFormatError(f"write_reco2dur: duration of {key!r} must be a "
                                         f"finite number >= 0, got {mapping[key]!r}")
        lines.append(f"{_check_token('write_reco2dur', 'recording id', key)} "
                     f"{duration:.3f}\n")
    _atomic_write_text(path, "".join(lines))


@dataclass(frozen=True)
class KaldiDataDir:
    """The diarization view of a Kaldi data directory.

    ``wavs``: ``{recording_id: audio path}`` from ``wav.scp`` (relative paths resolved under
    the directory); ``rttm``: ``{uri: Annotation}`` from ``rttm``; ``uem``: ``{uri:
    Timeline}`` from ``uem`` or ``None`` when absent; ``reco2dur``: ``{recording_id:
    seconds}`` from ``reco2dur`` or ``None`` when absent."""

    wavs: dict[str, Path]
    rttm: dict[str, Annotation]
    uem: dict[str, Timeline] | None = None
    reco2dur: dict[str, float] | None = None


def read_kaldi_data_dir(directory: PathLike) -> KaldiDataDir:
    """Read ``wav.scp`` and ``rttm`` (required) and ``uem`` and ``reco2dur`` (optional) from
    a Kaldi data directory. Raises :class:`DiarizationFormatError` naming a missing required
    file, a pipe in ``wav.scp`` (with its line) or UEM uris absent from the rttm."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DiarizationFormatError(f"read_kaldi_data_dir: {directory} is not a directory")
    for name in ("wav.scp", "rttm"):
        if not (directory / name).is_file():
            raise DiarizationFormatError(f"read_kaldi_data_dir: {directory / name} is "
                                         f"missing; a diarization data directory needs "
                                         f"wav.scp and rttm")
    wav_scp = directory / "wav.scp"
    wavs = {}
    raw = read_wav_scp(wav_scp)
    for recording, value in raw.items():
        try:
            wavs[recording] = resolve_wav_path(value, directory)
        except DiarizationFormatError as error:
            number = _line_of(wav_scp, recording)
            raise _fail("read_kaldi_data_dir", wav_scp, number, str(error)) from None
    rttm = read_rttm(directory / "rttm")
    uem = read_uem(directory / "uem") if (directory / "uem").is_file() else None
    if uem is not None:
        check_uem_uris(uem, rttm, directory / "uem")
    reco2dur = (read_reco2dur(directory / "reco2dur")
                if (directory / "reco2dur").is_file() else None)
    return KaldiDataDir(wavs=wavs, rttm=rttm, uem=uem, reco2dur=reco2dur)


def _line_of(path: PathLike, key: str) -> int:
    """1-based line number of the first line of ``path`` whose first field is ``key``."""
    for number, fields, _ in _lines(path, "read_kaldi_data_dir"):
        if fields[0] == key:
            return number
    return 0
