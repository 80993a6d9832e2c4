"""Audio file input/output and resampling.

Files are read and written through libsndfile (Erik de Castro Lopo,
via the ``soundfile`` bindings): WAV, FLAC and OGG/Vorbis. Resampling is libsoxr's polyphase
sinc resampler (Rob Sykes, SoX Resampler library, via the ``soxr`` bindings), the same
quality class as ``sox rate``.

Layout convention (torchaudio's): a wave is channels-first, ``(channels, samples)``, a batch
is ``(batch, channels, samples)``; integer PCM files are read as float32 in [-1, 1]
(divided by 2^15 for PCM_16); floating-point files are returned as stored. Times are in
seconds, rates in Hz, lengths in samples (frames: one sample per channel).
"""

from __future__ import annotations

import math
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr
import torch

from .._validation import check_choice, check_finite, check_floating, check_tensor

__all__ = ["AudioFileError", "AudioInfo", "load", "save", "resample", "info",
           "SUPPORTED_EXTENSIONS", "RESAMPLE_QUALITIES"]

# extension -> (libsndfile major format, default subtype, accepted subtypes)
_FORMATS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    ".wav": ("WAV", "PCM_16", ("PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")),
    ".flac": ("FLAC", "PCM_16", ("PCM_16", "PCM_24")),
    ".ogg": ("OGG", "VORBIS", ("VORBIS",)),
}
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(_FORMATS)
"""File extensions ``save`` writes (``load`` and ``info`` read anything libsndfile reads)."""

RESAMPLE_QUALITIES: tuple[str, ...] = ("QQ", "LQ", "MQ", "HQ", "VHQ")
"""libsoxr's quality recipes, quick to very high."""

_MAX_SAVE_CHANNELS = 8  # 7.1, the largest layout WAV, FLAC and Vorbis all map


class AudioFileError(ValueError):
    """A file exists but holds no readable audio (corrupt, unknown format, or empty)."""


@dataclass(frozen=True)
class AudioInfo:
    """What an audio file's header says, without decoding its samples."""

    sample_rate: int
    """Frames per second, Hz."""
    num_frames: int
    """Samples per channel."""
    num_channels: int
    duration_seconds: float
    """``num_frames / sample_rate``."""
    format: str
    """libsndfile's major format, e.g. ``"WAV"``, ``"FLAC"``, ``"OGG"``."""
    subtype: str
    """libsndfile's sample encoding, e.g. ``"PCM_16"``, ``"FLOAT"``, ``"VORBIS"``."""


def _check_sample_rate(fn: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{fn}: {name} must be a positive int (Hz), got "
                        f"{type(value).__name__} {value!r}")
    if value <= 0:
        raise ValueError(f"{fn}: {name} must be a positive int, got {value}")
    return int(value)


def _check_seconds(fn: str, name: str, value: object, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}: {name} must be a number of seconds, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{fn}: {name} must be finite and {bound} seconds, got {value}")
    return value


def _check_path(fn: str, path: object) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{fn}: path must be a str or os.PathLike, got {type(path).__name__}")
    return Path(path)


def _open(fn: str, path: object) -> tuple[Path, soundfile.SoundFile]:
    """Open ``path`` for reading, turning libsndfile's errors into ours."""
    path = _check_path(fn, path)
    if not path.exists():
        raise FileNotFoundError(f"{fn}: no such audio file: '{path}'")
    if path.is_dir():
        raise IsADirectoryError(f"{fn}: expected an audio file, got the directory '{path}'")
    try:
        return path, soundfile.SoundFile(path)
    except soundfile.LibsndfileError as error:
        raise AudioFileError(
            f"{fn}: cannot read '{path}' as audio: {error.error_string}") from error


def info(path: str | os.PathLike) -> AudioInfo:
    """Read an audio file's header: rate, length, channels, format and encoding.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        AudioFileError: ``path`` is not a file libsndfile can read.
    """
    path, file = _open("info", path)
    with file:
        return AudioInfo(sample_rate=file.samplerate, num_frames=file.frames,
                         num_channels=file.channels,
                         duration_seconds=file.frames / file.samplerate,
                         format=file.format, subtype=file.subtype)


def load(
    path: str | os.PathLike, sample_rate: int | None = None, mono: bool = True, *,
    offset: float = 0.0, duration: float | None = None,
) -> tuple[torch.Tensor, int]:
    """Read an audio file (any format libsndfile reads) as a float32 ``(channels, samples)``.

    Args:
        path: the file.
        sample_rate: the rate to return, Hz; ``None`` keeps the file's own. A different rate
            goes through :func:`resample` (libsoxr, ``"HQ"``).
        mono: average the channels into one, ``(1, samples)``; ``False`` keeps all of them.
        offset: where to start reading, seconds from the beginning (rounded to a frame at
            the file's rate). Only the requested part is decoded.
        duration: how much to read, seconds; ``None`` reads to the end. A duration past the
            end reads what there is.

    Returns:
        ``(wave, sample_rate)``: wave float32 ``(channels, samples)``, in [-1, 1] for integer
        PCM files, and the rate it is at (``sample_rate`` if given, else the file's).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        AudioFileError: the file cannot be decoded, holds 0 frames, or ``offset`` is at or past
            its end.
    """
    fn = "load"
    if sample_rate is not None:
        sample_rate = _check_sample_rate(fn, "sample_rate", sample_rate)
    if not isinstance(mono, bool):
        raise TypeError(f"{fn}: mono must be a bool, got {type(mono).__name__}")
    offset = _check_seconds(fn, "offset", offset, positive=False)
    if duration is not None:
        duration = _check_seconds(fn, "duration", duration, positive=True)

    path, file = _open(fn, path)
    with file:
        file_rate, total = file.samplerate, file.frames
        if total == 0:
            raise AudioFileError(f"{fn}: '{path}' contains no audio (0 frames)")
        start = round(offset * file_rate)
        if start >= total:
            raise AudioFileError(
                f"{fn}: offset={offset} s leaves no audio in '{path}', which lasts "
                f"{total / file_rate} s ({total} frames at {file_rate} Hz)")
        frames = -1 if duration is None else max(1, round(duration * file_rate))
        try:
            if start:
                file.seek(start)
            data = file.read(frames, dtype="float32", always_2d=True)  # (frames, channels)
        except soundfile.LibsndfileError as error:
            raise AudioFileError(
                f"{fn}: cannot decode '{path}': {error.error_string}") from error
    if data.shape[0] == 0:
        raise AudioFileError(f"{fn}: '{path}' yielded no audio (0 frames decoded from frame "
                             f"{start} of {total})")
    wave = data.mean(axis=1, keepdims=True) if mono else data
    wave = torch.from_numpy(np.ascontiguousarray(wave.T))
    if sample_rate is None or sample_rate == file_rate:
        return wave, file_rate
    return resample(wave, file_rate, sample_rate), sample_rate


def save(
    path: str | os.PathLike, wave: torch.Tensor | np.ndarray, sample_rate: int, *,
    subtype: str | None = None,
) -> None:
    """Write a float wave to ``path``, atomically; the format follows the extension.

    The file is written to a hidden temporary file in the same directory, flushed to disk,
    then renamed over ``path`` (``os.replace``), so readers never see a partial file and a
    failed write leaves any previous file untouched.

    Args:
        path: the destination, ending in ``.wav``, ``.flac`` or ``.ogg`` (OGG/Vorbis).
        wave: ``(samples,)`` or ``(channels, samples)``, floating dtype, finite; a tensor
            (detached and moved to CPU) or a numpy array. Integer subtypes clip to [-1, 1].
        sample_rate: Hz, a positive int.
        subtype: libsndfile's encoding; ``None`` gives PCM_16 for WAV and FLAC and VORBIS
            for OGG. WAV also takes PCM_24, PCM_32, FLOAT and DOUBLE; FLAC takes PCM_24.

    Raises:
        ValueError: unknown extension or subtype, a wave that is not 1-d/2-d, has more
            channels than samples (transposed), more than 8 channels, no samples, NaN/inf.
        TypeError: a wave that is not a float tensor/array.
        FileNotFoundError: the destination directory does not exist.
    """
    fn = "save"
    path = _check_path(fn, path)
    extension = path.suffix.lower()
    if extension not in _FORMATS:
        raise ValueError(f"{fn}: cannot infer the format of '{path}' from its extension "
                         f"'{path.suffix}'; supported: {', '.join(SUPPORTED_EXTENSIONS)}")
    major, default_subtype, subtypes = _FORMATS[extension]
    if subtype is None:
        subtype = default_subtype
    elif not isinstance(subtype, str):
        raise TypeError(f"{fn}: subtype must be a str or None, got {type(subtype).__name__}")
    elif subtype.upper() not in subtypes:
        raise ValueError(f"{fn}: subtype for {major} must be one of "
                         f"{', '.join(subtypes)}, got {subtype!r}")
    subtype = subtype.upper()
    sample_rate = _check_sample_rate(fn, "sample_rate", sample_rate)
    data = _as_float_array(fn, wave)
    if data.ndim == 1:
        data = data[None]
    if data.ndim != 2:
        raise ValueError(f"{fn}: wave must be (samples,) or (channels, samples), got a "
                         f"{data.ndim}-d array of shape {tuple(data.shape)}")
    channels, samples = data.shape
    if samples == 0:
        raise ValueError(f"{fn}: wave has no samples, got shape {tuple(data.shape)}")
    if channels > samples:
        raise ValueError(f"{fn}: wave has more channels than samples, got shape "
                         f"{tuple(data.shape)}; pass (channels, samples), e.g. wave.T")
    if channels > _MAX_SAVE_CHANNELS:
        raise ValueError(f"{fn}: wave has {channels} channels; at most {_MAX_SAVE_CHANNELS} "
                         f"(7.1) can be saved, got shape {tuple(data.shape)}")
    if not np.isfinite(data).all():
        num_bad = int((~np.isfinite(data)).sum())
        raise ValueError(f"{fn}: wave contains {num_bad} NaN or infinite value(s)")

    directory = path.parent
    if not directory.is_dir():
        raise FileNotFoundError(f"{fn}: the directory of '{path}' does not exist")
    temporary = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
    # O_EXCL: never clobber another writer's file; mode 0o666 lets the umask apply as for
    # any new file (mkstemp would force 0o600).
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "w+b") as handle:
            soundfile.write(handle, data.T, sample_rate, subtype=subtype, format=major)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _as_float_array(fn: str, wave: object) -> np.ndarray:
    """A float32/float64 numpy view of a tensor or array, refusing integer audio."""
    if isinstance(wave, torch.Tensor):
        check_floating(fn, "wave", wave)
        wave = wave.detach().cpu()
        if wave.dtype not in (torch.float32, torch.float64):
            wave = wave.float()  # float16/bfloat16: numpy has no bfloat16
        return wave.numpy()
    if isinstance(wave, np.ndarray):
        if not np.issubdtype(wave.dtype, np.floating):
            raise TypeError(f"{fn}: wave must have a floating-point dtype, got {wave.dtype}; "
                            f"convert it first, e.g. wave.astype(np.float32) / 32768")
        return wave if wave.dtype in (np.float32, np.float64) else wave.astype(np.float32)
    raise TypeError(f"{fn}: wave must be a torch.Tensor or numpy.ndarray, "
                    f"got {type(wave).__name__}")


def resample(
    wave: torch.Tensor, orig_sr: int, new_sr: int, *, quality: str = "HQ",
) -> torch.Tensor:
    """Change a wave's sample rate with libsoxr's polyphase sinc filter.

    Each channel is filtered independently along the last axis; the output has
    ``round(samples * new_sr / orig_sr)`` samples, is time-aligned with the input (libsoxr
    compensates the filter delay) and band-limited below ``min(orig_sr, new_sr) / 2``.

    Not differentiable: the samples go through numpy and C, so the result never requires
    grad and no gradient flows back to ``wave``. Use a differentiable resampler (e.g. a
    convolution with a windowed sinc) inside a model.

    Args:
        wave: ``(samples,)``, ``(channels, samples)`` or ``(batch, channels, samples)``,
            floating, finite, on any device (computed on CPU, returned on ``wave``'s device).
        orig_sr: the rate of ``wave``, Hz (positive int).
        new_sr: the rate to return, Hz (positive int).
        quality: libsoxr's recipe, one of ``RESAMPLE_QUALITIES`` ("HQ": 20-bit precision,
            passband to 91% of Nyquist).

    Returns:
        The resampled wave, same leading shape and dtype (float32 and float64 computed in
        their own precision, float16/bfloat16 in float32). ``wave`` itself when
        ``orig_sr == new_sr``.
    """
    fn = "resample"
    check_tensor(fn, "wave", wave, min_ndim=1)
    if wave.ndim > 3:
        raise ValueError(f"{fn}: wave must be (samples,), (channels, samples) or (batch, "
                         f"channels, samples), got a {wave.ndim}-d tensor of shape "
                         f"{tuple(wave.shape)}")
    check_floating(fn, "wave", wave)
    orig_sr = _check_sample_rate(fn, "orig_sr", orig_sr)
    new_sr = _check_sample_rate(fn, "new_sr", new_sr)
    check_choice(fn, "quality", quality, RESAMPLE_QUALITIES)
    if orig_sr == new_sr:
        return wave
    check_finite(fn, "wave", wave)

    compute_dtype = wave.dtype if wave.dtype in (torch.float32, torch.float64) else torch.float32
    rows = wave.detach().to(device="cpu", dtype=compute_dtype).reshape(-1, wave.shape[-1])
    if wave.shape[-1] == 0:
        out = np.zeros((rows.shape[0], 0), dtype=rows.numpy().dtype)
    else:
        # soxr takes (frames, channels); every row of every batch item is one channel.
        out = soxr.resample(np.ascontiguousarray(rows.numpy().T), orig_sr, new_sr,
                            quality=quality).T
    result = torch.from_numpy(np.ascontiguousarray(out))
    return result.reshape(*wave.shape[:-1], result.shape[-1]).to(device=wave.device,
                                                                 dtype=wave.dtype)
