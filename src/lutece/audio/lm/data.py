"""Training data for AudioLM from a user's folder of audio files of any length.

Borsos et al., "AudioLM" (2022, arXiv 2209.03143), Sec. IV, trains every model on random
crops of long recordings (Libri-Light): the stages on 30 s (semantic), 10 s (coarse) and
non-overlapping 3 s chunks (fine). This module provides those crops:

- :class:`AudioCropDataset`: random crops of ``crop_samples`` samples from every audio file
  under a folder (recursive), resampled on load (:func:`lutece.audio.io.load`, libsoxr); only
  the cropped part of a file is decoded. Files shorter than the crop are right-zero-padded
  (``short="pad"``, the default, as :class:`lutece.audio.AudioFolder` pads) or left out
  (``short="skip"``). Items are ``(crop_samples,)`` float32 waves.
- :func:`precompute_tokens`: the semantic tokens ``(T,)`` and the codec's codes
  ``(r T, Q)`` of every file, computed once (both tokenizers are frozen while the stages
  train, AudioLM Sec. III) and saved as a :class:`TokenStore`, resumably.
- :class:`SemanticTokenCrops` (``(T,)``), :class:`CoarseTokenCrops` (``((T,), (r T, Q))``
  whose acoustic part starts on the semantic-frame boundary ``r s``) and
  :class:`FineTokenCrops` (``(chunk_frames, Q)``): crops of a :class:`TokenStore`, in the
  batch formats of the stages' ``build_sequence`` (default collation stacks them into
  ``(batch, T)``, ``[(batch, T), (batch, r T, Q)]`` and ``(batch, chunk_frames, Q)``, which
  :func:`~lutece.audio.lm.transformers.stage_loss` passes to the stage). Files whose tokens
  are shorter than the crop are left out (a token sequence cannot be padded with a real id).

**Reproducible crops.** Item ``i`` is drawn from a generator seeded by ``(seed, i)`` alone,
so it does not depend on which items were read before, by which process or worker:
:func:`lutece.train.train`'s seeded per-epoch permutations, its exact resume and its
DistributedDataParallel rank slices see the same crops as an uninterrupted single-process
run. (:class:`lutece.audio.AudioFolder`'s random crops draw from one stateful stream per
process, whose draws depend on the order of the reads, so they are not reused here.)

**Epochs.** A file of ``n`` samples (or tokens) holds ``max(1, n // crop)`` *slots*, so an
epoch of ``len(dataset) = repeats x sum(slots)`` items covers the audio about ``repeats``
times, each file weighted by its duration. Item ``i`` belongs to slot ``i mod sum(slots)``
(which names the file) and draws a uniform start in that file; raising ``repeats`` gives fresh
crops instead of repeating an epoch's.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ...train import atomic_save, load_tagged
from ..io import AudioFileError, info, load
from .semantic import check_rate_alignment

__all__ = ["AUDIO_EXTENSIONS", "find_audio_files", "AudioCropDataset", "TokenStore",
           "precompute_tokens", "model_fingerprint", "SemanticTokenCrops", "CoarseTokenCrops",
           "FineTokenCrops", "TOKEN_STORE_FORMAT"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
TOKEN_STORE_FORMAT = "lutece.audio.lm.token_store/1"
_RESAMPLE_MARGIN = 0.01  # seconds read on each side of a crop before resampling it


# ------------------------------------------------------------------------------ files
def find_audio_files(root_or_files: str | os.PathLike | Sequence[str | os.PathLike],
                     extensions: Sequence[str] = AUDIO_EXTENSIONS) -> list[Path]:
    """The audio files under a folder (recursive, sorted, hidden names skipped, extensions
    compared case-insensitively), or the given list of files (checked to exist).

    Raises:
        FileNotFoundError: the folder or a listed file does not exist.
        ValueError: no audio file was found (the message names the folder and extensions).
    """
    fn = "find_audio_files"
    extensions = _check_extensions(fn, extensions)
    if isinstance(root_or_files, (str, os.PathLike)):
        root = Path(root_or_files)
        if not root.exists():
            raise FileNotFoundError(f"{fn}: no such folder: '{root}'")
        if root.is_file():
            files = [root]
        else:
            files = []
            for directory, subdirectories, names in os.walk(root, followlinks=True):
                subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
                files.extend(Path(directory, name) for name in names
                             if not name.startswith(".") and name.lower().endswith(extensions))
            files.sort()
        if not files:
            raise ValueError(f"{fn}: found no audio files ({', '.join(extensions)}) under "
                             f"'{root}'")
        return files
    if not isinstance(root_or_files, Iterable):
        raise TypeError(f"{fn}: expected a folder or a list of files, got "
                        f"{type(root_or_files).__name__}")
    files = [Path(path) for path in root_or_files]
    if not files:
        raise ValueError(f"{fn}: the list of files is empty")
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"{fn}: no such file(s): {', '.join(missing[:5])}")
    return files


def _check_extensions(fn: str, extensions: Sequence[str]) -> tuple[str, ...]:
    if isinstance(extensions, str) or not extensions or not all(
            isinstance(e, str) and e.startswith(".") and len(e) > 1 for e in extensions):
        raise ValueError(f"{fn}: extensions must be a sequence of strings starting with '.', "
                         f"e.g. ('.wav', '.flac'), got {extensions!r}")
    return tuple(e.lower() for e in extensions)


def _check_int(fn: str, name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{fn}: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


# ------------------------------------------------------------------------------ crops
class _Crops(Dataset):
    """Seeded crops of ``crop`` units from items of ``lengths`` units (see the module doc).

    Items shorter than ``crop`` get one slot starting at 0 (the subclass pads them) when
    ``keep_short``; otherwise they are left out (``eligible`` lists the kept items).
    """

    def __init__(self, fn: str, lengths: Sequence[int], crop: int, seed: int, repeats: int,
                 keep_short: bool) -> None:
        self.crop = _check_int(fn, "crop length", crop)
        self.seed = _check_int(fn, "seed", seed, minimum=0)
        self.repeats = _check_int(fn, "repeats", repeats)
        self.lengths = [int(n) for n in lengths]
        self.eligible = [index for index, n in enumerate(self.lengths)
                         if n >= self.crop or (keep_short and n > 0)]
        slots = [max(1, self.lengths[index] // self.crop) for index in self.eligible]
        self._ends = np.cumsum(slots).tolist()
        self.num_slots = int(self._ends[-1]) if slots else 0

    def __len__(self) -> int:
        return self.num_slots * self.repeats

    def position(self, index: int) -> tuple[int, int]:
        """``(item, start)`` of crop ``index``: the index of the file (or token sequence) in
        the dataset's list and the first sample (or frame) of the crop, a uniform draw in
        ``[0, length - crop]`` (0 for a short file) from a generator seeded by
        ``(seed, index)``."""
        count = len(self)
        if not -count <= index < count:
            raise IndexError(f"{type(self).__name__}: index {index} is out of range for "
                             f"{count} crops")
        index %= count
        slot = index % self.num_slots
        item = self.eligible[bisect.bisect_right(self._ends, slot)]
        excess = self.lengths[item] - self.crop
        if excess <= 0:
            return item, 0
        rng = np.random.default_rng([self.seed, index])
        return item, int(rng.integers(0, excess + 1))


class AudioCropDataset(_Crops):
    """Random crops ``(crop_samples,)`` float32 of a folder of audio files (module doc).

    Args:
        root_or_files: a folder (searched recursively; hidden names skipped) or a list of
            audio files, of any lengths, rates and channel counts (averaged to mono).
        sample_rate: Hz of the crops; other rates are resampled on load (libsoxr ``"HQ"``).
        crop_samples: samples per crop, at ``sample_rate``.
        seed: seeds every crop position (item ``i`` depends on ``(seed, i)`` only).
        extensions: file name endings to take (case-insensitive).
        short: ``"pad"`` (default) right-zero-pads a file shorter than the crop to
            ``crop_samples``; ``"skip"`` leaves it out.
        repeats: epochs of fresh crops in one pass over the dataset (``len = repeats x
            slots``); an attribute that may be raised after construction, e.g. to
            ``ceil(steps x batch_size / num_slots)`` so that no crop of a run repeats.

    Attributes:
        files: the files (``eligible`` indexes the ones crops are drawn from).
        num_samples: each file's length at ``sample_rate`` (from its header).

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: no audio file under the folder, a file that is not readable audio (named),
            or no file long enough with ``short="skip"``.
    """

    def __init__(self, root_or_files: str | os.PathLike | Sequence[str | os.PathLike], *,
                 sample_rate: int, crop_samples: int, seed: int = 0,
                 extensions: Sequence[str] = AUDIO_EXTENSIONS, short: str = "pad",
                 repeats: int = 1) -> None:
        fn = "AudioCropDataset"
        self.sample_rate = _check_int(fn, "sample_rate", sample_rate)
        _check_int(fn, "crop_samples", crop_samples)
        if short not in ("pad", "skip"):
            raise ValueError(f"{fn}: short must be 'pad' or 'skip', got {short!r}")
        self.short = short
        self.files = find_audio_files(root_or_files, extensions)
        self.file_rates: list[int] = []
        self.num_samples: list[int] = []
        for path in self.files:
            try:
                header = info(path)
            except AudioFileError as error:
                raise ValueError(f"{fn}: {error}") from error
            self.file_rates.append(header.sample_rate)
            self.num_samples.append(header.num_frames * self.sample_rate // header.sample_rate)
        super().__init__(fn, self.num_samples, crop_samples, seed, repeats,
                         keep_short=short == "pad")
        if not self.eligible:
            longest = max(self.num_samples) / self.sample_rate
            raise ValueError(
                f"{fn}: no file is at least crop_samples={crop_samples} samples "
                f"({crop_samples / self.sample_rate:g} s at {self.sample_rate} Hz) long; the "
                f"longest of {len(self.files)} lasts {longest:g} s. Use shorter crops or "
                f"short='pad'")

    @property
    def crop_samples(self) -> int:
        return self.crop

    @property
    def total_seconds(self) -> float:
        """Seconds of audio the crops are drawn from."""
        return sum(self.num_samples[index] for index in self.eligible) / self.sample_rate

    def __repr__(self) -> str:
        return (f"AudioCropDataset(files={len(self.eligible)}/{len(self.files)}, "
                f"seconds={self.total_seconds:.1f}, sample_rate={self.sample_rate}, "
                f"crop_samples={self.crop}, seed={self.seed}, short={self.short!r}, "
                f"crops={len(self)})")

    def __getitem__(self, index: int) -> torch.Tensor:
        item, start = self.position(int(index))
        path, rate = self.files[item], self.file_rates[item]
        if rate == self.sample_rate:
            wave, _ = load(path, None, offset=start / rate, duration=self.crop / rate)
            wave = wave[0]
        else:
            # Read from a margin before the crop, at a time on both rates' sample grids (a
            # multiple of 1 / gcd(rates) s, e.g. 20 ms for 22050 -> 16000 Hz) so that the
            # resampled chunk is the whole file's resampling, not shifted by a fraction of a
            # sample; the resampler's edge effects fall in the margins.
            grid = math.gcd(rate, self.sample_rate)
            first = max(0.0, start / self.sample_rate - _RESAMPLE_MARGIN)
            begin = math.floor(first * grid) / grid if grid >= 10 else first
            skip = start - round(begin * self.sample_rate)
            wave, _ = load(path, self.sample_rate, offset=begin,
                           duration=(skip + self.crop) / self.sample_rate + _RESAMPLE_MARGIN)
            wave = wave[0, skip:]
        wave = wave[:self.crop]
        return F.pad(wave, (0, self.crop - wave.shape[0])).contiguous()


# ----------------------------------------------------------------------------- tokens
def model_fingerprint(module: torch.nn.Module) -> str:
    """A SHA-256 (16 hex digits) of a module's ``state_dict`` (names, shapes, dtypes and
    values): equal for the same weights whatever file they were loaded from."""
    digest = hashlib.sha256()
    for name, value in sorted(module.state_dict().items()):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{tuple(value.shape)}:{tensor.dtype};".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:16]


@dataclass
class TokenStore:
    """The frozen tokenizers' outputs for a list of files (:func:`precompute_tokens`).

    Attributes:
        files: the source files (as strings).
        semantic: per file, ``(T_f,)`` int64 semantic ids (empty for a file shorter than one
            semantic frame).
        codes: per file, ``(r T_f, Q)`` int64 codes: acoustic frames ``[r t, r (t + 1))``
            cover semantic frame ``t``.
        sample_rate: Hz both tokenizers read.
        semantic_rate, acoustic_rate: frames per second; ``frames_per_semantic`` = ``r``.
        semantic_vocab_size, codebook_size, num_levels: ``K``, ``N`` and ``Q``.
        fingerprint: identifies the tokenizer, codec, files and settings it came from.
        complete: False while :func:`precompute_tokens` has files left.
    """

    files: list[str]
    semantic: list[torch.Tensor]
    codes: list[torch.Tensor]
    sample_rate: int
    semantic_rate: float
    acoustic_rate: float
    frames_per_semantic: int
    semantic_vocab_size: int
    codebook_size: int
    num_levels: int
    fingerprint: str = ""
    complete: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.semantic)

    @property
    def semantic_lengths(self) -> list[int]:
        return [int(tokens.shape[0]) for tokens in self.semantic]

    @property
    def acoustic_lengths(self) -> list[int]:
        return [int(codes.shape[0]) for codes in self.codes]

    @property
    def seconds(self) -> float:
        """Seconds of audio tokenized (whole semantic frames)."""
        return sum(self.semantic_lengths) / self.semantic_rate

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically; ids are stored as int16 when they fit (they are read back as
        int64)."""
        small = max(self.semantic_vocab_size, self.codebook_size) <= 2**15
        dtype = torch.int16 if small else torch.int32
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["semantic"] = [tokens.to(dtype) for tokens in self.semantic]
        values["codes"] = [codes.to(dtype) for codes in self.codes]
        atomic_save({"format": TOKEN_STORE_FORMAT, **values}, path)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> TokenStore:
        fn = "TokenStore.load"
        payload = load_tagged(fn, path, TOKEN_STORE_FORMAT, "token store")
        payload.pop("format")
        payload["semantic"] = [tokens.long() for tokens in payload["semantic"]]
        payload["codes"] = [codes.long() for codes in payload["codes"]]
        return cls(**payload)


def _files_signature(files: Sequence[Path]) -> list[tuple[str, int, int]]:
    signature = []
    for path in files:
        stat = Path(path).stat()
        signature.append((str(path), stat.st_size, stat.st_mtime_ns))
    return signature


def precompute_tokens(files: str | os.PathLike | Sequence[str | os.PathLike], tokenizer: Any,
                      codec: torch.nn.Module, *, path: str | os.PathLike | None = None,
                      block_seconds: float = 30.0, save_every_seconds: float = 60.0,
                      progress: bool = True) -> TokenStore:
    """Semantic tokens and codec codes of every file, computed once and saved.

    Each file is loaded whole at the tokenizers' rate (resampled, mono), cut to whole
    semantic frames (``r x codec hop`` samples; a shorter file gives empty tokens) and
    tokenized by blocks of ``block_seconds`` (rounded to whole semantic frames) so that long
    recordings fit in memory; a block boundary restarts the tokenizers' context (a codec
    with a receptive field longer than a hop codes the frames next to it slightly
    differently than in one pass).

    Args:
        files: a folder (searched as :func:`find_audio_files`) or a list of files.
        tokenizer: the semantic tokenizer (``sample_rate``, ``frame_rate``, ``vocab_size``,
            ``tokenize``), e.g. a fitted :class:`~lutece.audio.lm.semantic.KMeansTokenizer`.
        codec: a :class:`~lutece.audio.lm.codec.SoundStream`.
        path: where to save the store. If it holds a store of the same fingerprint
            (tokenizer and codec weights, the files' names, sizes and modification times,
            ``block_seconds``), it is returned, or completed when an earlier call was
            interrupted (partial stores are saved every ``save_every_seconds`` and on
            KeyboardInterrupt).
        progress: show a tqdm bar.

    Raises:
        ValueError: the tokenizer and the codec read different sample rates, or the codec's
            frame rate is not a whole multiple of the tokenizer's
            (:func:`~lutece.audio.lm.semantic.check_rate_alignment`); a file that is not
            readable audio.
    """
    fn = "precompute_tokens"
    sample_rate = int(tokenizer.sample_rate)
    codec_rate = int(codec.config.sample_rate)
    if sample_rate != codec_rate:
        raise ValueError(f"{fn}: the tokenizer reads {sample_rate} Hz audio but the codec "
                         f"{codec_rate} Hz; train them at the same sample rate")
    ratio = check_rate_alignment(float(tokenizer.frame_rate), float(codec.frame_rate))
    hop = ratio * codec.hop_length
    if not block_seconds > 0:
        raise ValueError(f"{fn}: block_seconds must be > 0, got {block_seconds!r}")
    block = max(1, round(block_seconds * sample_rate / hop)) * hop
    paths = find_audio_files(files)
    key = hashlib.sha256(repr((
        model_fingerprint(tokenizer) if isinstance(tokenizer, torch.nn.Module)
        else type(tokenizer).__qualname__, model_fingerprint(codec),
        _files_signature(paths), block, TOKEN_STORE_FORMAT)).encode()).hexdigest()[:16]
    store = None
    if path is not None and Path(path).is_file():
        try:
            cached = TokenStore.load(path)
        except ValueError:
            cached = None
        if cached is not None and cached.fingerprint == key:
            if cached.complete:
                return cached
            store = cached
    if store is None:
        store = TokenStore(files=[str(p) for p in paths], semantic=[], codes=[],
                           sample_rate=sample_rate, semantic_rate=float(tokenizer.frame_rate),
                           acoustic_rate=float(codec.frame_rate), frames_per_semantic=ratio,
                           semantic_vocab_size=int(tokenizer.vocab_size),
                           codebook_size=int(codec.config.codebook_size),
                           num_levels=int(codec.config.num_levels), fingerprint=key,
                           complete=False)
    device = next(codec.parameters()).device
    last_save = time.monotonic()
    was_training = codec.training
    codec.eval()
    bar = tqdm(total=len(paths), initial=len(store), desc="tokens", dynamic_ncols=True,
               disable=not progress)
    try:
        for file in paths[len(store):]:
            try:
                wave, _ = load(file, sample_rate)
            except AudioFileError as error:
                raise ValueError(f"{fn}: {error}") from error
            wave = wave[0, :wave.shape[1] // hop * hop]
            semantic, codes = [], []
            with torch.no_grad():
                for part in torch.split(wave, block):
                    tokens = tokenizer.tokenize(part[None].to(device)).cpu()
                    frames = part.shape[0] // hop
                    acoustic = codec.encode(part[None].to(device)).cpu()
                    if tokens.shape != (1, frames) or acoustic.shape[1] != ratio * frames:
                        raise ValueError(
                            f"{fn}: {file}: {part.shape[0]} samples gave {tokens.shape[-1]} "
                            f"semantic and {acoustic.shape[1]} acoustic frames; expected "
                            f"{frames} and {ratio * frames}")
                    semantic.append(tokens[0])
                    codes.append(acoustic[0])
            levels = int(codec.config.num_levels)
            store.semantic.append(torch.cat(semantic) if semantic
                                  else torch.zeros(0, dtype=torch.long))
            store.codes.append(torch.cat(codes) if codes
                               else torch.zeros(0, levels, dtype=torch.long))
            bar.update(1)
            if path is not None and time.monotonic() - last_save > save_every_seconds:
                store.save(path)
                last_save = time.monotonic()
    except KeyboardInterrupt:
        if path is not None and len(store):  # every stored file is complete: keep them
            store.save(path)
        raise
    finally:
        bar.close()
        codec.train(was_training)
    store.complete = True
    if path is not None:
        store.save(path)
    return store


def _check_store(fn: str, store: object) -> TokenStore:
    if not isinstance(store, TokenStore):
        raise TypeError(f"{fn}: store must be a TokenStore, got {type(store).__name__}")
    if not store.complete:
        raise ValueError(f"{fn}: the token store is incomplete; finish precompute_tokens")
    return store


def _too_short(fn: str, what: str, crop: int, unit: str, lengths: list[int],
               rate: float) -> ValueError:
    longest = max(lengths, default=0)
    return ValueError(
        f"{fn}: audio too short: no file gives {crop} {unit} ({crop / rate:g} s) of {what}; "
        f"the longest gives {longest} ({longest / rate:g} s). Use shorter crops or longer "
        f"files")


class SemanticTokenCrops(_Crops):
    """Crops ``(frames,)`` int64 of the semantic tokens of a :class:`TokenStore`: the
    :class:`~lutece.audio.lm.transformers.SemanticStage`'s batch (``(batch, frames)`` once
    stacked). Files with fewer than ``frames`` tokens are left out.

    Args:
        store: a complete :class:`TokenStore`.
        frames: tokens per crop (AudioLM: 30 s x 25 Hz = 750).
        seed, repeats: as :class:`AudioCropDataset`.
    """

    def __init__(self, store: TokenStore, *, frames: int, seed: int = 0,
                 repeats: int = 1) -> None:
        fn = "SemanticTokenCrops"
        self.store = _check_store(fn, store)
        super().__init__(fn, store.semantic_lengths, frames, seed, repeats, keep_short=False)
        if not self.eligible:
            raise _too_short(fn, "semantic tokens", self.crop, "frames",
                             store.semantic_lengths, store.semantic_rate)

    def __getitem__(self, index: int) -> torch.Tensor:
        item, start = self.position(int(index))
        return self.store.semantic[item][start:start + self.crop]


class CoarseTokenCrops(_Crops):
    """Aligned crops ``(semantic (T,), codes (r T, Q))`` int64 of a :class:`TokenStore`: the
    :class:`~lutece.audio.lm.transformers.CoarseStage`'s batch. A crop starting at semantic
    frame ``s`` takes acoustic frames ``[r s, r (s + T))``, so its acoustic part starts on a
    semantic-frame boundary and both cover the same samples.

    Args:
        store: a complete :class:`TokenStore`.
        semantic_frames: ``T`` per crop (AudioLM: 10 s x 25 Hz = 250).
        levels: keep the first ``levels`` RVQ levels (None: all ``Q``; the stage reads the
            first ``Q'``).
        seed, repeats: as :class:`AudioCropDataset`.
    """

    def __init__(self, store: TokenStore, *, semantic_frames: int, levels: int | None = None,
                 seed: int = 0, repeats: int = 1) -> None:
        fn = "CoarseTokenCrops"
        self.store = _check_store(fn, store)
        if levels is not None and not 1 <= _check_int(fn, "levels", levels) <= store.num_levels:
            raise ValueError(f"{fn}: levels must be in [1, {store.num_levels}], got {levels}")
        self.levels = levels if levels is not None else store.num_levels
        super().__init__(fn, store.semantic_lengths, semantic_frames, seed, repeats,
                         keep_short=False)
        if not self.eligible:
            raise _too_short(fn, "semantic and acoustic tokens", self.crop, "semantic frames",
                             store.semantic_lengths, store.semantic_rate)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        item, start = self.position(int(index))
        r = self.store.frames_per_semantic
        semantic = self.store.semantic[item][start:start + self.crop]
        codes = self.store.codes[item][r * start:r * (start + self.crop), :self.levels]
        return semantic, codes


class FineTokenCrops(_Crops):
    """Crops ``(chunk_frames, Q)`` int64 of the codes of a :class:`TokenStore`: the
    :class:`~lutece.audio.lm.transformers.FineStage`'s batch (one chunk per item, AudioLM's
    3 s = 150 frames). Files with fewer acoustic frames are left out.

    Args:
        store: a complete :class:`TokenStore`.
        chunk_frames: acoustic frames per crop (the fine stage's ``chunk_frames``).
        seed, repeats: as :class:`AudioCropDataset`.
    """

    def __init__(self, store: TokenStore, *, chunk_frames: int, seed: int = 0,
                 repeats: int = 1) -> None:
        fn = "FineTokenCrops"
        self.store = _check_store(fn, store)
        super().__init__(fn, store.acoustic_lengths, chunk_frames, seed, repeats,
                         keep_short=False)
        if not self.eligible:
            raise _too_short(fn, "codes", self.crop, "acoustic frames",
                             store.acoustic_lengths, store.acoustic_rate)

    def __getitem__(self, index: int) -> torch.Tensor:
        item, start = self.position(int(index))
        return self.store.codes[item][start:start + self.crop]

