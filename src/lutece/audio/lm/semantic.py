"""Semantic tokens for AudioLM: frozen frame features, standardized, then k-means.

Borsos et al., "AudioLM" (2022, arXiv 2209.03143) tokenizes audio twice: acoustic
tokens from a SoundStream codec (:mod:`lutece.audio.lm.codec`, 50 Hz) and *semantic* tokens
from an intermediate layer of a self-supervised masked-language model (w2v-BERT; Chung et al.,
2021, arXiv 2108.06209), each dimension normalized to zero mean and unit variance, then
quantized by k-means with K = 1024 centroids, at 25 Hz. No pretrained self-supervised model
can be downloaded here, so this module builds the whole chain from scratch:

- :class:`Tokenizer`, the contract every tokenizer meets: ``sample_rate`` (Hz),
  ``frame_rate`` (tokens per second), ``vocab_size`` and ``tokenize(wave) -> ids``, with the
  frame-count rule below; :func:`check_rate_alignment` asserts that acoustic frames nest in
  semantic frames (25 Hz vs 50 Hz -> 2).
- Feature extractors (:class:`LogMelFeatures`, :class:`MFCCFeatures`): log-mel energies
  (:class:`lutece.audio.frontends.MelFilterbank`) and MFCCs (the orthonormal DCT-II of the
  log-mel frames, first ``n_mfcc`` coefficients, plus first and second differences: the
  39-dimensional MFCCs of HuBERT's first iteration; Hsu et al., 2021, arXiv 2106.07447).
- :func:`kmeans`: greedy k-means++ seeding, Lloyd iterations, empty clusters re-seeded.
- :class:`KMeansTokenizer`: ``fit`` standardizes the features of a set of waves and
  clusters them; ``tokenize`` returns the nearest centroid of each frame.
- :class:`MaskedFeatureEncoder` and :func:`train_masked_encoder`: a tiny HuBERT-style encoder
  (masked prediction of the k-means ids of MFCC frames, HuBERT's first iteration) whose
  intermediate layers (:class:`SSLFeatures`) are then clustered: the semantic tokens.
- :class:`HuBERTFeatures`: a loader for a local HuBERT checkpoint in Hugging Face
  ``transformers`` format, for users who have one (never downloads).
- :func:`remove_consecutive_duplicates`, used by AudioLM's semantic stage.

**Frame rule** (every tokenizer and feature extractor here): a wave of ``T`` samples at
``sample_rate`` gives ``floor(T * frame_rate / sample_rate)`` frames, i.e. ``T // hop`` with
``hop = sample_rate / frame_rate`` samples (which must be a whole number): only complete hop
intervals count, frame ``i`` summarizes samples ``[i hop, (i + 1) hop)`` (analysis windows are
centered on ``i hop + hop // 2``, lutece's frontend convention, with zeros outside the clip).
A wave shorter than one hop is an error. The codec counts ``ceil(T / hop)`` frames (it pads
the last one); for ``T`` a multiple of the semantic hop (a multiple of the acoustic one when
the rates are aligned) both rules agree and give exactly ``ratio`` acoustic frames per
semantic token. Crop waves to whole semantic frames before pairing the two token streams.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import TensorDataset

from ..._validation import check_choice, check_finite, check_floating, check_tensor
from ...train import TrainConfig, TrainResult, atomic_save, load_tagged, train
from ..frontends.mel import MelFilterbank

__all__ = ["Tokenizer", "num_token_frames", "check_rate_alignment", "LogMelFeatures",
           "MFCCFeatures", "ChromaFeatures", "ConcatenatedFeatures", "pitch_class_matrix",
           "KMeansResult", "kmeans", "KMeansTokenizer", "MaskedFeatureEncoder",
           "SSLFeatures", "train_masked_encoder", "HuBERTFeatures",
           "remove_consecutive_duplicates", "TOKENIZER_FORMAT"]

TOKENIZER_FORMAT = "lutece.audio.lm.kmeans_tokenizer/1"
_RATE_TOLERANCE = 1e-6


# ---------------------------------------------------------------------------- contract
@runtime_checkable
class Tokenizer(Protocol):
    """What AudioLM's stages need from a tokenizer (semantic or acoustic).

    Attributes:
        sample_rate: Hz of the waves it accepts.
        frame_rate: tokens per second (25.0 for AudioLM's semantic tokens).
        vocab_size: ids lie in ``[0, vocab_size)``.

    ``tokenize(wave)`` maps ``wave (batch, samples)`` float to ``(batch, frames)`` int64 ids
    with ``frames = floor(samples * frame_rate / sample_rate)`` (the module's frame rule).
    The tokenizers of this module also accept ``(batch, 1, samples)`` and a keyword
    ``sample_rate=`` that, when given, must equal theirs.
    """

    sample_rate: int
    frame_rate: float
    vocab_size: int

    def tokenize(self, wave: torch.Tensor) -> torch.Tensor: ...


def num_token_frames(num_samples: int, sample_rate: int, frame_rate: float) -> int:
    """The frame rule: ``floor(num_samples * frame_rate / sample_rate)`` (0 below one hop)."""
    return math.floor(num_samples * frame_rate / sample_rate + _RATE_TOLERANCE)


def _check_rate(fn: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{fn}: {name} must be a positive number of Hz, got {value!r}")
    return float(value)


def check_rate_alignment(semantic_rate: float, acoustic_rate: float) -> int:
    """The number of acoustic frames per semantic token, ``acoustic_rate / semantic_rate``.

    AudioLM pairs 25 Hz semantic tokens with 50 Hz SoundStream frames (ratio 2; each semantic
    token then covers ``2 Q'`` coarse acoustic tokens, per a figure caption of Borsos et
    al. 2022). The mismatch of HuBERT's 50 Hz with EnCodec's 75 Hz is a recurring bug
    report of audiolm-pytorch (its issues #108, #148, #218), so it is refused here.

    Raises:
        ValueError: when a rate is not a positive number or the ratio is not a positive
            integer (within 1e-6).
    """
    fn = "check_rate_alignment"
    semantic = _check_rate(fn, "semantic_rate", semantic_rate)
    acoustic = _check_rate(fn, "acoustic_rate", acoustic_rate)
    ratio = acoustic / semantic
    nearest = round(ratio)
    if nearest < 1 or abs(ratio - nearest) > _RATE_TOLERANCE:
        raise ValueError(
            f"{fn}: the acoustic frame rate ({acoustic:g} Hz) must be a positive integer "
            f"multiple of the semantic frame rate ({semantic:g} Hz), got a ratio of "
            f"{ratio:.6g}; choose rates such as 25 Hz semantic vs 50 Hz acoustic")
    return int(nearest)


def _hop_length(fn: str, sample_rate: int, frame_rate: float) -> int:
    """``sample_rate / frame_rate`` samples, which must be a whole number."""
    hop = sample_rate / frame_rate
    if abs(hop - round(hop)) > _RATE_TOLERANCE * max(1.0, hop) or round(hop) < 1:
        raise ValueError(
            f"{fn}: sample_rate / frame_rate must be a whole number of samples, got "
            f"{sample_rate} / {frame_rate:g} = {hop:.6g}; choose e.g. 25.0 or 50.0 Hz at "
            f"16000 Hz")
    return int(round(hop))


def _check_positive_int(fn: str, name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{fn}: {name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value}")
    return value


def _check_wave(fn: str, wave: object, *, hop: int, sample_rate: int,
                given_rate: int | None) -> torch.Tensor:
    """``(batch, samples)`` float, finite, at ``sample_rate``, at least one hop long."""
    x = check_tensor(fn, "wave", wave)
    if given_rate is not None and given_rate != sample_rate:
        raise ValueError(f"{fn}: built for {sample_rate} Hz audio, got sample_rate="
                         f"{given_rate}; resample first (lutece.audio.io.resample)")
    if x.ndim == 3 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 2:
        hint = "; add a batch dimension with wave.unsqueeze(0)" if x.ndim == 1 else ""
        raise ValueError(f"{fn}: wave must have shape (batch, samples) or (batch, 1, samples), "
                         f"got {tuple(x.shape)}{hint}")
    check_floating(fn, "wave", x)
    if x.shape[-1] < hop:
        raise ValueError(
            f"{fn}: wave has {x.shape[-1]} samples, fewer than one frame ({hop} samples = "
            f"{1000.0 * hop / sample_rate:g} ms at {sample_rate} Hz)")
    check_finite(fn, "wave", x)
    return x


@contextlib.contextmanager
def _evaluating(module: nn.Module) -> Iterator[None]:
    """Run ``module`` in eval mode (no dropout, no masking) and restore its mode after."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


# ---------------------------------------------------------------------------- features
class LogMelFeatures(nn.Module):
    """Log-mel frames ``(batch, samples) -> (batch, samples // hop_length, n_mels)``.

    :class:`lutece.audio.frontends.MelFilterbank` (HTK mel scale, symmetric Hann window,
    power spectrum, ``log(x + 1e-5)``, frames centered on ``hop i + hop // 2``) keeping only
    the module's ``floor`` frames. Defaults follow that frontend (40 bands over
    60-7800 Hz, 25 ms windows, 10 ms hop, 512-point FFT).

    Args:
        sample_rate: Hz.
        n_mels: mel bands.
        hop_length: samples between frames (160 = 10 ms at 16 kHz); ``frame_rate`` is
            ``sample_rate / hop_length``.
        window_ms: analysis window (25 ms -> 401 taps at 16 kHz).
        n_fft: FFT size.
        min_freq, max_freq: Hz range of the bands (``max_freq`` None: ``min(7800, sr / 2)``).
        mean_normalization: subtract each clip's mean frame (per-utterance cepstral mean
            normalization, CMN, as Kaldi's ``apply-cmvn --norm-vars=false``): removes the
            clip's average spectral envelope, i.e. most of what identifies the voice,
            instrument or channel, and keeps how the spectrum moves (False).
    """

    def __init__(self, sample_rate: int = 16000, n_mels: int = 40, hop_length: int = 160,
                 window_ms: float = 25.0, n_fft: int = 512, min_freq: float = 60.0,
                 max_freq: float | None = None, mean_normalization: bool = False) -> None:
        super().__init__()
        fn = "LogMelFeatures"
        _check_positive_int(fn, "sample_rate", sample_rate)
        _check_positive_int(fn, "hop_length", hop_length)
        max_freq = min(7800.0, sample_rate / 2.0) if max_freq is None else max_freq
        self.filterbank = MelFilterbank(n_filters=n_mels, sample_rate=sample_rate,
                                        window_len=window_ms,
                                        window_stride=1000.0 * hop_length / sample_rate,
                                        n_fft=n_fft, min_freq=min_freq, max_freq=max_freq)
        if self.filterbank.hop != hop_length:
            raise ValueError(f"{fn}: hop_length={hop_length} is not a whole number of "
                             f"milliseconds' worth of samples at {sample_rate} Hz")
        self.sample_rate = sample_rate
        self.n_mels = n_mels
        self.hop_length = hop_length
        self.mean_normalization = bool(mean_normalization)
        self.options = {"n_mels": n_mels, "hop_length": hop_length, "window_ms": window_ms,
                        "n_fft": n_fft, "min_freq": min_freq, "max_freq": max_freq,
                        "mean_normalization": self.mean_normalization}

    @property
    def frame_rate(self) -> float:
        """Frames per second, ``sample_rate / hop_length``."""
        return self.sample_rate / self.hop_length

    @property
    def dim(self) -> int:
        """Size of one frame (``n_mels``)."""
        return self.n_mels

    def forward(self, wave: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """``wave (batch, samples)`` or ``(batch, 1, samples)`` -> ``(batch, frames, n_mels)``
        with ``frames = samples // hop_length`` (at least one); with ``mean_normalization``
        each clip's frames have zero mean over time."""
        x = _check_wave("LogMelFeatures", wave, hop=self.hop_length,
                        sample_rate=self.sample_rate, given_rate=sample_rate)
        frames = x.shape[-1] // self.hop_length
        # MelFilterbank treats samples outside the clip as zeros, so padding on the right
        # (up to its one-window minimum) leaves the first `frames` frames unchanged.
        short = self.filterbank.window_size - x.shape[-1]
        if short > 0:
            x = F.pad(x, (0, short))
        log_mel = self.filterbank(x)[..., :frames].transpose(1, 2)
        if self.mean_normalization:
            log_mel = log_mel - log_mel.mean(dim=1, keepdim=True)
        return log_mel

    def extra_repr(self) -> str:
        return (f"sample_rate={self.sample_rate}, n_mels={self.n_mels}, "
                f"hop_length={self.hop_length}, mean_normalization={self.mean_normalization}")


def _dct_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """Rows of the orthonormal DCT-II: ``C[k, m] = s_k cos(pi k (2 m + 1) / (2 M))`` with
    ``s_0 = sqrt(1 / M)`` and ``s_k = sqrt(2 / M)`` (``scipy.fft.dct(type=2, norm="ortho")``)."""
    m = np.arange(n_in)
    k = np.arange(n_out)[:, None]
    matrix = np.cos(np.pi * k * (2 * m + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    matrix[0] /= np.sqrt(2.0)
    return torch.from_numpy(matrix)


def _deltas(x: torch.Tensor, width: int = 2) -> torch.Tensor:
    """Regression differences along frames (dim -2), edges replicated:
    ``d_t = sum_{n=1}^{N} n (c_{t+n} - c_{t-n}) / (2 sum_n n^2)`` with ``N = width``."""
    frames = x.shape[-2]
    index = torch.arange(frames, device=x.device)
    total = torch.zeros_like(x)
    for n in range(1, width + 1):
        ahead = x[..., (index + n).clamp(max=frames - 1), :]
        behind = x[..., (index - n).clamp(min=0), :]
        total = total + n * (ahead - behind)
    return total / (2 * sum(n * n for n in range(1, width + 1)))


class MFCCFeatures(nn.Module):
    """MFCC frames: the first ``n_mfcc`` coefficients of the orthonormal DCT-II of
    :class:`LogMelFeatures` frames, plus (``deltas=True``) their first and second
    regression differences over +-2 frames: ``(batch, samples // hop_length, dim)`` with
    ``dim = 3 n_mfcc`` (39 for 13 coefficients, the features of HuBERT's first iteration,
    Hsu et al. 2021) or ``n_mfcc``.

    Args:
        n_mfcc: cepstral coefficients kept (13), at most ``n_mels``.
        deltas: append first and second differences (True).
        sample_rate, n_mels, hop_length, window_ms, n_fft, min_freq, max_freq,
            mean_normalization: of the log-mel frames (:class:`LogMelFeatures`); the DCT is
            linear, so mean-normalized log-mel frames give mean-normalized cepstra (CMN), and
            the deltas do not change.
    """

    def __init__(self, sample_rate: int = 16000, n_mfcc: int = 13, n_mels: int = 40,
                 hop_length: int = 160, deltas: bool = True, window_ms: float = 25.0,
                 n_fft: int = 512, min_freq: float = 60.0,
                 max_freq: float | None = None, mean_normalization: bool = False) -> None:
        super().__init__()
        fn = "MFCCFeatures"
        _check_positive_int(fn, "n_mfcc", n_mfcc)
        if n_mfcc > n_mels:
            raise ValueError(f"{fn}: n_mfcc ({n_mfcc}) must be <= n_mels ({n_mels})")
        self.log_mel = LogMelFeatures(sample_rate, n_mels, hop_length, window_ms, n_fft,
                                      min_freq, max_freq, mean_normalization)
        self.n_mfcc = n_mfcc
        self.deltas = bool(deltas)
        self.register_buffer("dct", _dct_matrix(n_mels, n_mfcc).float(), persistent=False)
        self.options = {**self.log_mel.options, "n_mfcc": n_mfcc, "deltas": self.deltas}

    @property
    def sample_rate(self) -> int:
        return self.log_mel.sample_rate

    @property
    def hop_length(self) -> int:
        return self.log_mel.hop_length

    @property
    def frame_rate(self) -> float:
        """Frames per second, ``sample_rate / hop_length``."""
        return self.log_mel.frame_rate

    @property
    def dim(self) -> int:
        """Size of one frame: ``3 n_mfcc`` with deltas, else ``n_mfcc``."""
        return self.n_mfcc * (3 if self.deltas else 1)

    def forward(self, wave: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """``wave (batch, samples)`` -> ``(batch, samples // hop_length, dim)``."""
        log_mel = self.log_mel(wave, sample_rate)
        cepstra = log_mel @ self.dct.to(log_mel.dtype).T
        if not self.deltas:
            return cepstra
        first = _deltas(cepstra)
        return torch.cat([cepstra, first, _deltas(first)], dim=-1)

    def extra_repr(self) -> str:
        return f"n_mfcc={self.n_mfcc}, deltas={self.deltas}"


def pitch_class_matrix(sample_rate: int, n_fft: int, min_freq: float, max_freq: float, *,
                       fn: str = "pitch_class_matrix") -> torch.Tensor:
    """``(n_fft // 2 + 1, 12)`` float64 one-hot rows: FFT bin ``k`` (centre ``f = k sr / n_fft``
    Hz) goes to pitch class ``round(12 log2(f / 440) + 69) mod 12`` (0 = C) when
    ``min_freq <= f <= max_freq``; other bins are zero rows (Fujishima's pitch-class profile,
    1999).

    Raises:
        ValueError: unless ``0 < min_freq < max_freq <= sample_rate / 2`` (``fn`` names the
            caller in the message).
    """
    if not 0 < min_freq < max_freq <= sample_rate / 2:
        raise ValueError(f"{fn}: need 0 < min_freq < max_freq <= sample_rate / 2, got "
                         f"{min_freq}, {max_freq} at {sample_rate} Hz")
    frequencies = torch.fft.rfftfreq(n_fft, 1.0 / sample_rate).double()
    used = (frequencies >= min_freq) & (frequencies <= max_freq)
    matrix = torch.zeros(frequencies.shape[0], 12, dtype=torch.float64)
    classes = (torch.round(12 * torch.log2(frequencies[used] / 440.0) + 69) % 12).long()
    matrix[used] = F.one_hot(classes, 12).double()
    return matrix


class ChromaFeatures(nn.Module):
    """Pitch-class (chroma) frames ``(batch, samples) -> (batch, samples // hop_length, 12)``.

    Frame ``i``: the power spectrum of a Hann window of ``n_fft`` samples centred on
    ``i hop + hop // 2`` (zeros outside the clip), each bin between ``min_freq`` and
    ``max_freq`` added to its pitch class (:func:`pitch_class_matrix`), raised to ``power``
    and divided by its sum (frames sum to 1; silence gives zeros). The profile names the notes
    sounding whatever plays them, so k-means on it gives tokens that follow a melody and
    its key and much less the instrument (the MFCCs' low cepstra keep the spectral envelope
    and drop the pitch). For music; in speech it follows the voice's pitch.

    Args:
        sample_rate: Hz.
        hop_length: samples between frames (``frame_rate = sample_rate / hop_length``).
        n_fft: window and FFT size (None: the power of two nearest ``sample_rate / 8``:
            1024 at 8 kHz, 7.8 Hz bins, about a semitone at 130 Hz).
        min_freq, max_freq: Hz range of the bins used (60; None: ``min(2000, sr / 2)``,
            the first harmonics, whose pitch classes are those of the note or its fifth
            and third).
        power: exponent applied before normalizing (1: energy shares; larger values
            sharpen each frame towards its strongest pitch class).
    """

    def __init__(self, sample_rate: int = 16000, hop_length: int = 160,
                 n_fft: int | None = None, min_freq: float = 60.0,
                 max_freq: float | None = None, power: float = 1.0) -> None:
        super().__init__()
        fn = "ChromaFeatures"
        self.sample_rate = _check_positive_int(fn, "sample_rate", sample_rate)
        self.hop_length = _check_positive_int(fn, "hop_length", hop_length)
        if n_fft is None:
            n_fft = 2 ** round(math.log2(sample_rate / 8))
        self.n_fft = _check_positive_int(fn, "n_fft", n_fft, minimum=16)
        max_freq = min(2000.0, sample_rate / 2.0) if max_freq is None else float(max_freq)
        if not isinstance(power, (int, float)) or isinstance(power, bool) \
                or not math.isfinite(power) or power <= 0:
            raise ValueError(f"{fn}: power must be a positive number, got {power!r}")
        self.power = float(power)
        matrix = pitch_class_matrix(sample_rate, self.n_fft, min_freq, max_freq, fn=fn)
        if not matrix.any():
            raise ValueError(f"{fn}: no FFT bin lies in [{min_freq}, {max_freq}] Hz with "
                             f"n_fft={self.n_fft}")
        # float64 buffers, cast to the wave's dtype, so float64 waves get float64 frames
        self.register_buffer("assignment", matrix, persistent=False)
        self.register_buffer("window", torch.hann_window(self.n_fft, dtype=torch.float64),
                             persistent=False)
        self.options = {"hop_length": self.hop_length, "n_fft": self.n_fft,
                        "min_freq": float(min_freq), "max_freq": max_freq, "power": self.power}

    @property
    def frame_rate(self) -> float:
        """Frames per second, ``sample_rate / hop_length``."""
        return self.sample_rate / self.hop_length

    @property
    def dim(self) -> int:
        """12 pitch classes, C first."""
        return 12

    def forward(self, wave: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """``wave (batch, samples)`` -> ``(batch, samples // hop_length, 12)``, rows summing
        to 1 (0 for silent frames)."""
        x = _check_wave("ChromaFeatures", wave, hop=self.hop_length,
                        sample_rate=self.sample_rate, given_rate=sample_rate)
        frames = x.shape[-1] // self.hop_length
        left = self.n_fft // 2 - self.hop_length // 2
        right = max(0, (frames - 1) * self.hop_length + self.n_fft - left - x.shape[-1])
        padded = F.pad(x, (max(left, 0), right))
        if left < 0:  # a window shorter than the hop: start inside the clip
            padded = padded[..., -left:]
        segments = padded.unfold(-1, self.n_fft, self.hop_length)[:, :frames]
        power = torch.fft.rfft(segments * self.window.to(x.dtype)).abs().square()
        profile = power @ self.assignment.to(x.dtype)
        # scaled to a peak of 1 first, so that a large power cannot overflow
        profile = (profile / profile.amax(-1, keepdim=True).clamp_min(1e-30)) ** self.power
        return profile / profile.sum(-1, keepdim=True).clamp_min(1e-30)

    def extra_repr(self) -> str:
        return (f"sample_rate={self.sample_rate}, hop_length={self.hop_length}, "
                f"n_fft={self.n_fft}, power={self.power:g}")


class ConcatenatedFeatures(nn.Module):
    """Frame features of several extractors side by side: ``(batch, frames, sum of dims)``.
    All must share ``sample_rate`` and ``frame_rate`` (e.g. MFCCs + chroma: the envelope of
    speech and the notes of music in one frame)."""

    def __init__(self, *extractors: nn.Module) -> None:
        super().__init__()
        fn = "ConcatenatedFeatures"
        if not extractors:
            raise ValueError(f"{fn}: give at least one extractor")
        rates = {(int(e.sample_rate), float(e.frame_rate)) for e in extractors}
        if len(rates) != 1:
            raise ValueError(f"{fn}: the extractors must share sample_rate and frame_rate, got "
                             f"{sorted(rates)}")
        self.extractors = nn.ModuleList(extractors)
        self.sample_rate, self.frame_rate = rates.pop()
        self.dim = sum(int(e.dim) for e in extractors)

    def forward(self, wave: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        parts = [extractor(wave, sample_rate) for extractor in self.extractors]
        frames = min(part.shape[1] for part in parts)
        return torch.cat([part[:, :frames] for part in parts], dim=-1)


# ----------------------------------------------------------------------------- k-means
@dataclass(frozen=True)
class KMeansResult:
    """What :func:`kmeans` returns.

    Attributes:
        centroids: ``(K, dim)``.
        labels: ``(n,)`` int64, the nearest centroid of each point.
        inertia: sum over points of the squared distance to their centroid.
        iterations: Lloyd iterations of the kept run.
    """

    centroids: torch.Tensor
    labels: torch.Tensor
    inertia: float
    iterations: int


def _squared_distances(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """``||x||^2 - 2 x.c + ||c||^2``: ``(n, K)``, clamped at 0 (rounding)."""
    return (x.square().sum(-1, keepdim=True) - 2.0 * x @ centroids.T
            + centroids.square().sum(-1)).clamp_min_(0.0)


def _assign(x: torch.Tensor, centroids: torch.Tensor, chunk_size: int = 8192
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid and its squared distance for each row of ``x``, ``chunk_size`` rows
    at a time (the ``(n, K)`` distance matrix is never held whole)."""
    labels, distances = [], []
    for part in torch.split(x, chunk_size):
        d = _squared_distances(part, centroids)
        best, index = d.min(dim=-1)
        labels.append(index)
        distances.append(best)
    return torch.cat(labels), torch.cat(distances)


def _draw(weights: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` indices drawn with probability proportional to ``weights`` (uniform when
    they are all 0), by inverting the cumulative sum (no category limit)."""
    cumulative = weights.double().cumsum(0)
    total = float(cumulative[-1])
    u = torch.rand(count, generator=generator, dtype=torch.float64).to(weights.device)
    if not total > 0:
        return (u * len(weights)).long().clamp_(max=len(weights) - 1)
    return torch.searchsorted(cumulative, u * total).clamp_(max=len(weights) - 1)


def _kmeans_plus_plus(x: torch.Tensor, num_clusters: int, generator: torch.Generator
                      ) -> torch.Tensor:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii, 2007; the greedy variant with
    ``2 + ln K`` candidates per centroid, as scikit-learn): each new centroid is the
    candidate, drawn with probability proportional to ``D(x)^2``, that most lowers the
    potential ``sum_x D(x)^2``."""
    n = x.shape[0]
    trials = 2 + int(math.log(num_clusters))
    first = _draw(torch.ones(n, device=x.device), 1, generator)
    centroids = [x[first[0]]]
    closest = _squared_distances(x, x[first])[:, 0]
    for _ in range(1, num_clusters):
        candidates = _draw(closest, trials, generator)
        candidate_distances = torch.minimum(closest, _squared_distances(x, x[candidates]).T)
        best = int(candidate_distances.sum(-1).argmin())
        centroids.append(x[candidates[best]])
        closest = candidate_distances[best]
    return torch.stack(centroids)


def _lloyd(x: torch.Tensor, centroids: torch.Tensor, max_iterations: int
           ) -> tuple[torch.Tensor, int]:
    """Lloyd iterations until the assignment stops changing (a fixed point) or
    ``max_iterations``. A cluster left empty is re-seeded with the point farthest from its
    own centroid (scikit-learn's relocation), so all ``K`` centroids stay in use."""
    num_clusters = centroids.shape[0]
    previous = None
    iterations = 0
    while iterations < max_iterations:
        iterations += 1
        labels, distances = _assign(x, centroids)
        counts = torch.bincount(labels, minlength=num_clusters)
        empty = torch.nonzero(counts == 0).flatten()
        if previous is not None and not len(empty) and torch.equal(labels, previous):
            break
        previous = labels
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        centroids = sums / counts.clamp_min(1).unsqueeze(-1).to(x.dtype)
        if len(empty):
            far = distances.topk(len(empty)).indices
            centroids[empty] = x[far]
            previous = None
    return centroids, iterations


def kmeans(x: torch.Tensor, num_clusters: int, *, max_iterations: int = 100, n_init: int = 1,
           generator: torch.Generator | None = None) -> KMeansResult:
    """k-means of the rows of ``x (n, dim)`` into ``num_clusters`` clusters.

    Minimizes the inertia ``sum_i min_k ||x_i - c_k||^2`` by greedy k-means++ seeding then
    Lloyd iterations (assign each point to its nearest centroid with
    ``||x||^2 - 2 x.c + ||c||^2``, move each centroid to the mean of its points) until the
    assignment is a fixed point or ``max_iterations``; empty clusters are re-seeded. Of
    ``n_init`` seeded runs, the one with the lowest inertia is kept.

    Args:
        x: ``(n, dim)`` float, finite, ``n >= num_clusters``.
        num_clusters: ``K >= 2``.
        max_iterations: Lloyd iterations per run (100, the ``max_iter`` of fairseq's HuBERT
            k-means script as we recall it, unverified).
        n_init: seeded runs (1).
        generator: CPU ``torch.Generator`` for the seeding (None: a fresh one seeded 0).

    Raises:
        ValueError: K < 2, fewer points than clusters, NaN/inf, wrong shapes.
    """
    fn = "kmeans"
    check_tensor(fn, "x", x)
    if x.ndim != 2:
        raise ValueError(f"{fn}: x must have shape (n, dim), got {tuple(x.shape)}")
    check_floating(fn, "x", x)
    _check_positive_int(fn, "num_clusters", num_clusters, minimum=2)
    _check_positive_int(fn, "max_iterations", max_iterations)
    _check_positive_int(fn, "n_init", n_init)
    if x.shape[0] < num_clusters:
        raise ValueError(f"{fn}: need at least num_clusters={num_clusters} points, got "
                         f"{x.shape[0]}")
    check_finite(fn, "x", x)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    best: KMeansResult | None = None
    for _ in range(n_init):
        centroids = _kmeans_plus_plus(x, num_clusters, generator)
        centroids, iterations = _lloyd(x, centroids, max_iterations)
        labels, distances = _assign(x, centroids)
        inertia = float(distances.double().sum())
        if best is None or inertia < best.inertia:
            best = KMeansResult(centroids, labels, inertia, iterations)
    assert best is not None
    return best


# --------------------------------------------------------------------------- tokenizer
_FEATURE_KINDS = ("log_mel", "mfcc", "chroma", "mfcc_chroma")


def _named_features(kind: str, sample_rate: int, hop_length: int,
                    options: dict[str, Any]) -> nn.Module:
    """The extractor a :class:`KMeansTokenizer` builds for ``kind``; ``options`` override
    ``hop_length`` and, for ``"mfcc_chroma"``, go to the MFCCs but for a ``"chroma"`` dict of
    :class:`ChromaFeatures` arguments (its hop is the MFCCs')."""
    options = {"hop_length": hop_length, **options}
    if kind == "mfcc_chroma":
        chroma = options.pop("chroma", None) or {}
        if not isinstance(chroma, dict):
            raise TypeError(f"'chroma' must be a dict of ChromaFeatures arguments, got "
                            f"{type(chroma).__name__}")
        return ConcatenatedFeatures(
            MFCCFeatures(sample_rate=sample_rate, **options),
            ChromaFeatures(sample_rate=sample_rate, hop_length=options["hop_length"], **chroma))
    extractor_class = {"mfcc": MFCCFeatures, "log_mel": LogMelFeatures,
                       "chroma": ChromaFeatures}[kind]
    return extractor_class(sample_rate=sample_rate, **options)


def _iterate_waves(fn: str, waves: object, chunk: int = 16) -> Iterator[torch.Tensor]:
    """``(batch, samples)`` blocks from a 2-D tensor, or from a sequence/dataset whose items
    are waves ``(samples,)`` / ``(batch, samples)`` (or tuples starting with one)."""
    if isinstance(waves, torch.Tensor):
        if waves.ndim != 2:
            raise ValueError(f"{fn}: waves must be a (batch, samples) tensor or a sequence of "
                             f"waves, got a tensor of shape {tuple(waves.shape)}")
        yield from torch.split(waves, chunk)
        return
    if not isinstance(waves, Iterable) and not hasattr(waves, "__getitem__"):
        raise TypeError(f"{fn}: waves must be a tensor, a sequence or a dataset of waves, got "
                        f"{type(waves).__name__}")
    items = (waves[i] for i in range(len(waves))) if hasattr(waves, "__len__") \
        and hasattr(waves, "__getitem__") else iter(waves)
    for item in items:
        if isinstance(item, (tuple, list)) and item and isinstance(item[0], torch.Tensor):
            item = item[0]
        if not isinstance(item, torch.Tensor):
            raise TypeError(f"{fn}: every wave must be a torch.Tensor, got "
                            f"{type(item).__name__}")
        yield item.unsqueeze(0) if item.ndim == 1 else item


class SSLFeatures(nn.Module):
    """The hidden states of one layer of a :class:`MaskedFeatureEncoder`, as a feature
    extractor: ``(batch, samples) -> (batch, samples // hop, dim)`` (eval mode, no mask)."""

    def __init__(self, encoder: MaskedFeatureEncoder, layer: int) -> None:
        super().__init__()
        if not isinstance(encoder, MaskedFeatureEncoder):
            raise TypeError(f"SSLFeatures: encoder must be a MaskedFeatureEncoder, got "
                            f"{type(encoder).__name__}")
        self.encoder = encoder
        self.layer = encoder._check_layer("SSLFeatures", layer)

    @property
    def sample_rate(self) -> int:
        return self.encoder.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.encoder.frame_rate

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def forward(self, wave: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        return self.encoder.features(wave, layer=self.layer, sample_rate=sample_rate)

    def extra_repr(self) -> str:
        return f"layer={self.layer}"


class KMeansTokenizer(nn.Module):
    """Semantic tokens: per-dimension standardized frame features, quantized by k-means.

    AudioLM (Borsos et al. 2022) normalizes each dimension of w2v-BERT's layer-7
    activations to zero mean and unit variance and runs k-means with K = 1024, at 25 Hz;
    HuBERT (Hsu et al. 2021) clusters 39-d MFCCs into 100 clusters for its first iteration
    and its own layer-6 features into 500 for the second (audiolm-pytorch ships
    ``hubert_base_ls960_L9_km500``). Frames of the features are stacked (concatenated) to
    reach ``frame_rate``: 10 ms log-mel frames -> 4 per token at 25 Hz, 2 at 50 Hz.

    Args:
        features: ``"mfcc"`` (:class:`MFCCFeatures`), ``"log_mel"``
            (:class:`LogMelFeatures`), ``"chroma"`` (:class:`ChromaFeatures`),
            ``"mfcc_chroma"`` (both side by side), a :class:`MaskedFeatureEncoder` (with
            ``layer``), or
            any module with ``sample_rate``, ``frame_rate``, ``dim`` attributes that maps
            ``(batch, samples)`` to ``(batch, floor(samples * frame_rate / sample_rate),
            dim)`` (:class:`SSLFeatures`, :class:`HuBERTFeatures`). Its frame rate must be a
            whole multiple of ``frame_rate``.
        num_clusters: ``K`` = ``vocab_size`` (1024, AudioLM), at least 2.
        sample_rate: Hz (16000, AudioLM).
        frame_rate: tokens per second (25.0, AudioLM's semantic rate).
        layer: the encoder layer to cluster, when ``features`` is a MaskedFeatureEncoder.
        feature_options: keyword arguments of the named extractor (e.g. ``n_mels``,
            ``n_mfcc``, ``hop_length``, ``power``); for ``"mfcc_chroma"`` those of the MFCCs
            plus ``chroma``, a dict of :class:`ChromaFeatures` arguments.
        max_iterations, n_init: of :func:`kmeans`.

    Learned state (buffers, so ``state_dict`` and :meth:`save` carry it): ``mean_`` and
    ``std_`` ``(dim,)`` of the fitting frames, ``centroids_`` ``(K, dim)`` in standardized
    units, ``fitted_``. :meth:`fit` then :meth:`tokenize`.
    """

    def __init__(self, features: str | nn.Module = "mfcc", num_clusters: int = 1024, *,
                 sample_rate: int = 16000, frame_rate: float = 25.0, layer: int | None = None,
                 feature_options: dict[str, Any] | None = None, max_iterations: int = 100,
                 n_init: int = 1) -> None:
        super().__init__()
        fn = "KMeansTokenizer"
        self.num_clusters = _check_positive_int(fn, "num_clusters", num_clusters, minimum=2)
        self.sample_rate = _check_positive_int(fn, "sample_rate", sample_rate)
        self.frame_rate = _check_rate(fn, "frame_rate", frame_rate)
        self.hop_length = _hop_length(fn, sample_rate, self.frame_rate)
        self.max_iterations = _check_positive_int(fn, "max_iterations", max_iterations)
        self.n_init = _check_positive_int(fn, "n_init", n_init)
        self.feature_options = dict(feature_options or {})
        if isinstance(features, str):
            check_choice(fn, "features", features, _FEATURE_KINDS)
            if layer is not None:
                raise ValueError(f"{fn}: layer applies to an encoder, not to {features!r}")
            self.feature_kind = features
            try:
                extractor: nn.Module = _named_features(features, sample_rate,
                                                       min(160, self.hop_length),
                                                       self.feature_options)
            except TypeError as error:
                raise TypeError(f"{fn}: bad feature_options for {features!r}: {error}") \
                    from error
        elif isinstance(features, nn.Module):
            if self.feature_options:
                raise ValueError(f"{fn}: feature_options apply to the named features "
                                 f"{_FEATURE_KINDS} only")
            if isinstance(features, MaskedFeatureEncoder):
                if layer is None:
                    raise ValueError(f"{fn}: pass layer= to cluster a MaskedFeatureEncoder "
                                     f"(0 .. {features.num_layers})")
                features = SSLFeatures(features, layer)
                self.feature_kind = "masked_encoder"
            else:
                if layer is not None:
                    raise ValueError(f"{fn}: layer applies to a MaskedFeatureEncoder only; "
                                     f"select the layer in {type(features).__name__} itself")
                self.feature_kind = "module"
            for name in ("sample_rate", "frame_rate", "dim"):
                if not hasattr(features, name):
                    raise TypeError(f"{fn}: the features module must have a {name!r} "
                                    f"attribute ({type(features).__name__} has none)")
            extractor = features
        else:
            raise TypeError(f"{fn}: features must be one of {_FEATURE_KINDS} or an nn.Module, "
                            f"got {type(features).__name__}")
        if extractor.sample_rate != sample_rate:
            raise ValueError(f"{fn}: the features run at {extractor.sample_rate} Hz but "
                             f"sample_rate={sample_rate}")
        try:
            self.stack = check_rate_alignment(self.frame_rate, float(extractor.frame_rate))
        except ValueError as error:
            raise ValueError(f"{fn}: the features' frame rate ({extractor.frame_rate:g} Hz) "
                             f"must be a whole multiple of frame_rate ({self.frame_rate:g} "
                             f"Hz)") from error
        self.features = extractor
        self.dim = int(extractor.dim) * self.stack
        self.register_buffer("mean_", torch.zeros(self.dim))
        self.register_buffer("std_", torch.ones(self.dim))
        self.register_buffer("centroids_", torch.zeros(self.num_clusters, self.dim))
        self.register_buffer("fitted_", torch.tensor(False))
        self.inertia_: float | None = None

    @property
    def vocab_size(self) -> int:
        """``K``: ids lie in ``[0, num_clusters)``."""
        return self.num_clusters

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted_)

    def extra_repr(self) -> str:
        return (f"features={self.feature_kind!r}, num_clusters={self.num_clusters}, "
                f"sample_rate={self.sample_rate}, frame_rate={self.frame_rate:g}, "
                f"dim={self.dim} ({self.stack} stacked frame(s)), fitted={self.is_fitted}")

    def num_frames(self, num_samples: int) -> int:
        """Tokens for ``num_samples`` samples: ``num_samples // hop_length``."""
        return num_samples // self.hop_length

    def _frames(self, fn: str, wave: object, sample_rate: int | None) -> torch.Tensor:
        """Stacked raw features ``(batch, frames, dim)`` of a wave, checked at the boundary."""
        x = _check_wave(fn, wave, hop=self.hop_length, sample_rate=self.sample_rate,
                        given_rate=sample_rate)
        x = x.to(device=self.mean_.device, dtype=self.mean_.dtype)
        with torch.no_grad(), _evaluating(self.features):
            values = self.features(x)
        frames = self.num_frames(x.shape[-1])
        expected = frames * self.stack
        if values.ndim != 3 or values.shape[1] < expected or values.shape[2] * self.stack \
                != self.dim:
            raise ValueError(
                f"{fn}: the features module returned shape {tuple(values.shape)} for "
                f"{x.shape[-1]} samples; expected (batch, {expected}, "
                f"{self.dim // self.stack}) by the rule floor(samples * frame_rate / "
                f"sample_rate)")
        values = values[:, :expected].to(self.mean_.dtype)
        return values.reshape(values.shape[0], frames, self.dim)

    def fit(self, waves: torch.Tensor | Iterable[torch.Tensor], *,
            max_frames: int | None = None, seed: int = 0) -> KMeansTokenizer:
        """Standardize and cluster the feature frames of ``waves``; returns ``self``.

        Args:
            waves: a ``(batch, samples)`` tensor, or a sequence / map-style dataset of waves
                ``(samples,)`` or ``(batch, samples)`` of any lengths (items may be tuples
                whose first element is the wave), at ``sample_rate``.
            max_frames: cluster at most this many frames, drawn uniformly without
                replacement (seeded) from all the waves' frames (None: all of them).
            seed: seeds the frame draw and the k-means++ seeding.

        Raises:
            ValueError: fewer frames than ``num_clusters``; the errors of :meth:`tokenize`.
        """
        fn = "KMeansTokenizer.fit"
        if max_frames is not None:
            _check_positive_int(fn, "max_frames", max_frames)
        blocks = [self._frames(fn, wave, None).reshape(-1, self.dim)
                  for wave in _iterate_waves(fn, waves)]
        if not blocks:
            raise ValueError(f"{fn}: waves is empty")
        data = torch.cat(blocks)
        generator = torch.Generator().manual_seed(seed)
        if max_frames is not None and data.shape[0] > max_frames:
            keep = torch.randperm(data.shape[0], generator=generator)[:max_frames]
            data = data[keep.to(data.device)]
        if data.shape[0] < self.num_clusters:
            raise ValueError(f"{fn}: the waves give {data.shape[0]} frames, fewer than "
                             f"num_clusters={self.num_clusters}; give more audio or lower K")
        mean = data.mean(0)
        std = data.std(0, unbiased=False)
        std = torch.where(std > 1e-6, std, torch.ones_like(std))  # a constant dimension
        result = kmeans((data - mean) / std, self.num_clusters,
                        max_iterations=self.max_iterations, n_init=self.n_init,
                        generator=generator)
        self.mean_.copy_(mean)
        self.std_.copy_(std)
        self.centroids_.copy_(result.centroids)
        self.fitted_.fill_(True)
        self.inertia_ = result.inertia
        return self

    def tokenize(self, wave: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """Ids ``(batch, samples // hop_length)`` int64 in ``[0, num_clusters)`` of
        ``wave (batch, samples)`` (or ``(batch, 1, samples)``) float at ``sample_rate``
        (stated by the caller or assumed); computed in the buffers' dtype and device."""
        fn = "KMeansTokenizer.tokenize"
        if not self.is_fitted:
            raise RuntimeError(f"{fn}: the tokenizer is not fitted; call fit(waves) or load a "
                               f"fitted one with KMeansTokenizer.load(path)")
        frames = self._frames(fn, wave, sample_rate)
        standardized = (frames - self.mean_) / self.std_
        labels, _ = _assign(standardized.reshape(-1, self.dim), self.centroids_)
        return labels.reshape(frames.shape[:2])

    # ------------------------------------------------------------------ persistence
    def _feature_spec(self) -> dict[str, Any]:
        if self.feature_kind in _FEATURE_KINDS:
            return {"kind": self.feature_kind, "options": self.feature_options}
        if self.feature_kind == "masked_encoder":
            return {"kind": "masked_encoder", "config": self.features.encoder.config,
                    "layer": self.features.layer}
        return {"kind": "module", "class": type(self.features).__qualname__}

    def save(self, path: str | Path) -> Path:
        """Write the configuration, the feature spec and the ``state_dict`` (feature
        weights included) atomically to ``path``."""
        if not self.is_fitted:
            raise RuntimeError("KMeansTokenizer.save: the tokenizer is not fitted")
        config = {"num_clusters": self.num_clusters, "sample_rate": self.sample_rate,
                  "frame_rate": self.frame_rate, "max_iterations": self.max_iterations,
                  "n_init": self.n_init}
        atomic_save({"format": TOKENIZER_FORMAT, "config": config,
                     "features": self._feature_spec(),
                     "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()}},
                    path)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, features: nn.Module | None = None) -> KMeansTokenizer:
        """The tokenizer saved at ``path``, on CPU. Log-mel, MFCC and MaskedFeatureEncoder
        features are rebuilt from the file; any other features module (e.g.
        :class:`HuBERTFeatures`) must be passed as ``features`` (its weights are then
        loaded from the file, which must match it)."""
        fn = "KMeansTokenizer.load"
        payload = load_tagged(fn, path, TOKENIZER_FORMAT, "KMeansTokenizer file")
        spec, config = payload["features"], payload["config"]
        kwargs: dict[str, Any] = {}
        if features is not None:
            chosen: str | nn.Module = features
            if isinstance(features, MaskedFeatureEncoder) and spec["kind"] == "masked_encoder":
                kwargs = {"layer": spec["layer"]}
        elif spec["kind"] in _FEATURE_KINDS:
            chosen, kwargs = spec["kind"], {"feature_options": spec["options"]}
        elif spec["kind"] == "masked_encoder":
            chosen, kwargs = MaskedFeatureEncoder(**spec["config"]), {"layer": spec["layer"]}
        else:
            raise ValueError(f"{fn}: '{path}' was fitted on a {spec['class']} features "
                             f"module; pass the same module as features=")
        tokenizer = cls(chosen, **config, **kwargs)
        try:
            tokenizer.load_state_dict(payload["state_dict"])
        except RuntimeError as error:
            raise ValueError(f"{fn}: '{path}' does not match these features ({error})") \
                from error
        return tokenizer.eval()


# ----------------------------------------------------------------- masked SSL encoder
class MaskedFeatureEncoder(nn.Module):
    """A tiny HuBERT / w2v-BERT-style encoder trained by masked prediction of cluster ids.

    - **Input** (w2v-BERT, Chung et al. 2021, feeds log-mel frames subsampled 4x by
      convolutions to 25 Hz; HuBERT, Hsu et al. 2021, a waveform CNN at 50 Hz): 10 ms
      log-mel frames (:class:`LogMelFeatures`) stacked ``hop / mel_hop_length`` at a time to
      reach ``frame_rate`` (4 at 25 Hz, 2 at 50 Hz), LayerNorm, a linear projection to
      ``dim``.
    - **Masking** (HuBERT, after wav2vec 2.0): each frame starts a masked span
      with probability ``mask_prob`` = 0.08 and a span covers ``mask_span`` = 10 frames
      (spans overlap; the expected masked fraction away from the start of a sequence is
      ``1 - (1 - p)^l`` = 0.57); masked frames take a learned mask embedding. Every
      sequence gets at least one span.
    - **Positions**: a grouped convolution over frames added to its input (the
      "convolutional relative positional embedding" of wav2vec 2.0 / HuBERT), GELU.
    - **Transformer**: ``layers`` pre-norm ``nn.TransformerEncoderLayer`` blocks (GELU, FFN
      ``4 dim``, dropout 0.1 as HuBERT), then a final LayerNorm.
    - **Objective** (HuBERT's masked loss, its alpha = 1: masked frames only): the
      logits of cluster ``c`` at frame ``t`` are ``cos(A o_t, e_c) / tau``, ``A`` a linear
      projection, ``e_c`` learned code embeddings, ``tau = 0.1``; cross-entropy against the
      k-means ids of the input (MFCC k-means for the first iteration).

    Args:
        n_mels: log-mel bands of the input (40, lutece's MelFilterbank default).
        dim: model width (128: our CPU-scale choice; HuBERT Base 768).
        layers: Transformer blocks (4; HuBERT Base 12).
        heads: attention heads (4), dividing ``dim``.
        frame_rate: frames per second (25.0, AudioLM's semantic rate; 50.0 HuBERT's).
        sample_rate: Hz (16000).
        num_targets: clusters of the target tokenizer (100, HuBERT's first iteration).
        mask_prob, mask_span: HuBERT's p = 0.08 and l = 10 (frames).
        dropout: 0.1 (HuBERT).
        conv_pos_kernel, conv_pos_groups: odd kernel width in frames (31) and groups (4) of
            the positional convolution (our choices; HuBERT: 128 and 16 at 50 Hz).
        mel_hop_length: hop of the log-mel frames (160 = 10 ms at 16 kHz), dividing the
            model's hop ``sample_rate / frame_rate``.
        temperature: ``tau`` of the cosine logits (0.1, HuBERT).

    Hidden states: layer 0 is the input of the first block (projected, masked, plus
    positions), layer ``l`` the output of block ``l`` (the residual stream, before the
    final LayerNorm). :meth:`features` returns one of them.
    """

    def __init__(self, n_mels: int = 40, dim: int = 128, layers: int = 4, heads: int = 4,
                 frame_rate: float = 25.0, *, sample_rate: int = 16000, num_targets: int = 100,
                 mask_prob: float = 0.08, mask_span: int = 10, dropout: float = 0.1,
                 conv_pos_kernel: int = 31, conv_pos_groups: int = 4,
                 mel_hop_length: int = 160, temperature: float = 0.1) -> None:
        super().__init__()
        fn = "MaskedFeatureEncoder"
        for name, value in (("n_mels", n_mels), ("dim", dim), ("layers", layers),
                            ("heads", heads), ("sample_rate", sample_rate),
                            ("mask_span", mask_span), ("conv_pos_kernel", conv_pos_kernel),
                            ("conv_pos_groups", conv_pos_groups),
                            ("mel_hop_length", mel_hop_length)):
            _check_positive_int(fn, name, value)
        _check_positive_int(fn, "num_targets", num_targets, minimum=2)
        frame_rate = _check_rate(fn, "frame_rate", frame_rate)
        if dim % heads or dim % conv_pos_groups:
            raise ValueError(f"{fn}: dim ({dim}) must be divisible by heads ({heads}) and by "
                             f"conv_pos_groups ({conv_pos_groups})")
        if conv_pos_kernel % 2 == 0:
            raise ValueError(f"{fn}: conv_pos_kernel must be odd, got {conv_pos_kernel}")
        for name, value in (("mask_prob", mask_prob), ("dropout", dropout)):
            if not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"{fn}: {name} must be in [0, 1), got {value!r}")
        if not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ValueError(f"{fn}: temperature must be > 0, got {temperature!r}")
        self.hop_length = _hop_length(fn, sample_rate, frame_rate)
        if self.hop_length % mel_hop_length:
            raise ValueError(f"{fn}: mel_hop_length ({mel_hop_length}) must divide the model's "
                             f"hop ({self.hop_length} samples at {frame_rate:g} Hz)")
        self.config = {"n_mels": n_mels, "dim": dim, "layers": layers, "heads": heads,
                       "frame_rate": frame_rate, "sample_rate": sample_rate,
                       "num_targets": num_targets, "mask_prob": float(mask_prob),
                       "mask_span": mask_span, "dropout": float(dropout),
                       "conv_pos_kernel": conv_pos_kernel, "conv_pos_groups": conv_pos_groups,
                       "mel_hop_length": mel_hop_length, "temperature": float(temperature)}
        self.sample_rate, self.frame_rate, self.dim = sample_rate, frame_rate, dim
        self.num_layers, self.num_targets = layers, num_targets
        self.mask_prob, self.mask_span = float(mask_prob), mask_span
        self.temperature = float(temperature)
        self.stack = self.hop_length // mel_hop_length
        self.log_mel = LogMelFeatures(sample_rate, n_mels, hop_length=mel_hop_length)
        self.input_norm = nn.LayerNorm(self.stack * n_mels)
        self.projection = nn.Linear(self.stack * n_mels, dim)
        self.mask_embedding = nn.Parameter(torch.empty(dim))
        self.position = nn.Conv1d(dim, dim, conv_pos_kernel, padding=conv_pos_kernel // 2,
                                  groups=conv_pos_groups)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(layers))
        self.final_norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, dim)
        self.code_embeddings = nn.Parameter(torch.empty(num_targets, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Mask embedding uniform in [0, 1) (as fairseq's HuBERT), code embeddings standard normal;
        the layers keep PyTorch's initializations."""
        nn.init.uniform_(self.mask_embedding)
        nn.init.normal_(self.code_embeddings)

    def extra_repr(self) -> str:
        return (f"frame_rate={self.frame_rate:g} Hz, hop={self.hop_length}, dim={self.dim}, "
                f"layers={self.num_layers}, num_targets={self.num_targets}, "
                f"mask_prob={self.mask_prob}, mask_span={self.mask_span}")

    def num_frames(self, num_samples: int) -> int:
        """Frames for ``num_samples`` samples: ``num_samples // hop_length``."""
        return num_samples // self.hop_length

    def _check_layer(self, fn: str, layer: object) -> int:
        if isinstance(layer, bool) or not isinstance(layer, int):
            raise TypeError(f"{fn}: layer must be an int, got {type(layer).__name__}")
        if not 0 <= layer <= self.num_layers:
            raise ValueError(f"{fn}: layer must be in [0, {self.num_layers}] (0: the input of "
                             f"the first block), got {layer}")
        return layer

    def sample_mask(self, batch: int, frames: int, *, generator: torch.Generator | None = None,
                    device: torch.device | str | None = None) -> torch.Tensor:
        """HuBERT's span mask ``(batch, frames)`` bool: each frame starts a span with
        probability ``mask_prob`` (at least one start per row) and frame ``t`` is masked when
        a span starts in ``(t - mask_span, t]``. ``generator`` None draws from the global
        RNG (which :func:`lutece.train.train` seeds and checkpoints)."""
        uniform = torch.rand(batch, frames, generator=generator,
                             device=generator.device if generator is not None else device)
        starts = uniform < self.mask_prob
        # a row without a start gets one at its smallest draw (a uniformly random frame)
        lonely = ~starts.any(dim=-1)
        starts[lonely, uniform[lonely].argmin(dim=-1)] = True
        counts = F.pad(starts.long().cumsum(dim=-1), (self.mask_span, 0))
        mask = (counts[:, self.mask_span:] - counts[:, :-self.mask_span]) > 0
        return mask.to(device) if device is not None else mask

    def _inputs(self, fn: str, wave: object, sample_rate: int | None) -> torch.Tensor:
        """Stacked log-mel frames ``(batch, frames, stack * n_mels)``."""
        x = _check_wave(fn, wave, hop=self.hop_length, sample_rate=self.sample_rate,
                        given_rate=sample_rate)
        x = x.to(self.projection.weight.dtype)
        mel = self.log_mel(x)
        frames = self.num_frames(x.shape[-1])
        return mel[:, :frames * self.stack].reshape(x.shape[0], frames, -1)

    def _hidden_states(self, inputs: torch.Tensor, mask: torch.Tensor | None,
                       upto: int) -> list[torch.Tensor]:
        x = self.projection(self.input_norm(inputs))
        if mask is not None:
            x = torch.where(mask.unsqueeze(-1), self.mask_embedding.to(x.dtype), x)
        x = x + F.gelu(self.position(x.transpose(1, 2))).transpose(1, 2)
        x = self.dropout(x)
        states = [x]
        for block in self.blocks[:upto]:
            x = block(x)
            states.append(x)
        return states

    def features(self, wave: torch.Tensor, layer: int, *,
                 sample_rate: int | None = None) -> torch.Tensor:
        """Hidden states of ``layer`` (0 .. ``layers``): ``(batch, samples // hop, dim)``,
        no masking (call ``.eval()`` to turn dropout off)."""
        fn = "MaskedFeatureEncoder.features"
        layer = self._check_layer(fn, layer)
        return self._hidden_states(self._inputs(fn, wave, sample_rate), None, layer)[-1]

    def forward(self, wave: torch.Tensor, mask: torch.Tensor | None = None, *,
                sample_rate: int | None = None) -> torch.Tensor:
        """Cluster logits ``(batch, frames, num_targets)``, ``cos(A o_t, e_c) / tau``, with
        the frames where ``mask (batch, frames)`` is True replaced by the mask embedding."""
        fn = "MaskedFeatureEncoder.forward"
        inputs = self._inputs(fn, wave, sample_rate)
        if mask is not None:
            check_tensor(fn, "mask", mask)
            if mask.dtype != torch.bool or tuple(mask.shape) != tuple(inputs.shape[:2]):
                raise ValueError(f"{fn}: mask must be a bool tensor of shape "
                                 f"{tuple(inputs.shape[:2])}, got {mask.dtype} "
                                 f"{tuple(mask.shape)}")
        hidden = self._hidden_states(inputs, mask, self.num_layers)[-1]
        projected = F.normalize(self.head(self.final_norm(hidden)), dim=-1)
        codes = F.normalize(self.code_embeddings, dim=-1)
        return projected @ codes.T / self.temperature

    def masked_prediction_loss(self, wave: torch.Tensor, targets: torch.Tensor, *,
                               mask: torch.Tensor | None = None,
                               generator: torch.Generator | None = None
                               ) -> tuple[torch.Tensor, float]:
        """HuBERT's loss: the mean cross-entropy of ``targets (batch, frames)`` at masked
        frames (a fresh :meth:`sample_mask` unless ``mask`` is given), and the accuracy
        there."""
        fn = "MaskedFeatureEncoder.masked_prediction_loss"
        check_tensor(fn, "targets", targets)
        if targets.ndim != 2 or targets.dtype != torch.long:
            raise ValueError(f"{fn}: targets must be an int64 (batch, frames) tensor, got "
                             f"{targets.dtype} {tuple(targets.shape)}")
        if mask is None:
            mask = self.sample_mask(*targets.shape, generator=generator,
                                    device=targets.device)
        return _masked_cross_entropy(self(wave, mask), targets, mask)


def _masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
                          ) -> tuple[torch.Tensor, float]:
    if logits.shape[:2] != targets.shape:
        raise ValueError(f"masked_prediction_loss: targets have shape {tuple(targets.shape)} "
                         f"but the wave gives {tuple(logits.shape[:2])} frames")
    chosen_logits, chosen_targets = logits[mask], targets[mask]
    loss = F.cross_entropy(chosen_logits, chosen_targets)
    accuracy = float((chosen_logits.argmax(-1) == chosen_targets).float().mean())
    return loss, accuracy


def _segments(fn: str, waves: object, segment_samples: int | None) -> torch.Tensor:
    """``(n, samples)`` training examples: the waves themselves (equal lengths) or their
    non-overlapping ``segment_samples`` crops (shorter remainders dropped)."""
    if isinstance(waves, torch.Tensor):
        if waves.ndim != 2:
            raise ValueError(f"{fn}: waves must be (batch, samples) or a sequence of 1-D "
                             f"waves, got shape {tuple(waves.shape)}")
        items: Sequence[torch.Tensor] = list(waves)
    else:
        items = list(_iterate_waves(fn, waves))
        items = [row for item in items for row in item]
    if not items:
        raise ValueError(f"{fn}: waves is empty")
    if segment_samples is None:
        lengths = {item.shape[-1] for item in items}
        if len(lengths) > 1:
            raise ValueError(f"{fn}: the waves have different lengths {sorted(lengths)[:5]}; "
                             f"pass segment_samples= to cut them into equal crops")
        return torch.stack(items)
    _check_positive_int(fn, "segment_samples", segment_samples)
    crops = [crop for item in items for crop in torch.split(item, segment_samples)
             if crop.shape[-1] == segment_samples]
    if not crops:
        raise ValueError(f"{fn}: every wave is shorter than segment_samples={segment_samples}")
    return torch.stack(crops)


def train_masked_encoder(encoder: MaskedFeatureEncoder,
                         waves: torch.Tensor | Sequence[torch.Tensor],
                         targets_tokenizer: Tokenizer, *, steps: int, batch_size: int = 8,
                         lr: float = 5e-4, seed: int = 0, segment_samples: int | None = None,
                         warmup_fraction: float = 0.08, weight_decay: float = 0.01,
                         grad_clip: float | None = 10.0, device: str = "auto",
                         checkpoint_dir: str | None = None, checkpoint_every: int = 100,
                         log_every: int = 10, progress: bool = True) -> TrainResult:
    """Train ``encoder`` by HuBERT's masked prediction of ``targets_tokenizer``'s ids.

    The targets are computed once, before training, on every example (the first HuBERT
    iteration uses a :class:`KMeansTokenizer` on MFCCs); then :func:`lutece.train.train`
    runs AdamW (betas (0.9, 0.98), eps 1e-6) with a linear warm-up over ``warmup_fraction``
    of the steps and a linear decay to 0 (HuBERT's schedule shape: 8% warm-up; peak 5e-4,
    weight decay 0.01 and gradient clipping at 10 follow fairseq's HuBERT Base recipe as we
    recall it, unverified), resumable from ``checkpoint_dir``. Masks are drawn from the
    global RNG that ``train`` seeds from ``seed`` and checkpoints.

    Args:
        encoder: the model (build it after ``seed_everything`` for a reproducible init).
        waves: ``(n, samples)``, or a sequence of 1-D waves (cut into ``segment_samples``
            crops, or all of one length).
        targets_tokenizer: a fitted tokenizer at the encoder's ``sample_rate`` and
            ``frame_rate`` with ``vocab_size == encoder.num_targets``.
        steps, batch_size, lr, seed: the run.
        segment_samples: crop length in samples (None: the waves as they are).
        warmup_fraction, weight_decay, grad_clip: of the optimizer and schedule.
        device, checkpoint_dir, checkpoint_every, log_every, progress: as
            :class:`lutece.train.TrainConfig`.

    Returns:
        :class:`lutece.train.TrainResult`; its history logs ``loss`` and
        ``masked_accuracy`` per step.
    """
    fn = "train_masked_encoder"
    if not isinstance(encoder, MaskedFeatureEncoder):
        raise TypeError(f"{fn}: encoder must be a MaskedFeatureEncoder, got "
                        f"{type(encoder).__name__}")
    if not isinstance(targets_tokenizer, Tokenizer):
        raise TypeError(f"{fn}: targets_tokenizer must meet the Tokenizer protocol "
                        f"(sample_rate, frame_rate, vocab_size, tokenize), got "
                        f"{type(targets_tokenizer).__name__}")
    if targets_tokenizer.sample_rate != encoder.sample_rate \
            or abs(targets_tokenizer.frame_rate - encoder.frame_rate) > _RATE_TOLERANCE:
        raise ValueError(
            f"{fn}: the targets tokenizer runs at {targets_tokenizer.sample_rate} Hz / "
            f"{targets_tokenizer.frame_rate:g} frames/s but the encoder at "
            f"{encoder.sample_rate} Hz / {encoder.frame_rate:g} frames/s; build them alike")
    if targets_tokenizer.vocab_size != encoder.num_targets:
        raise ValueError(f"{fn}: the targets tokenizer has {targets_tokenizer.vocab_size} ids "
                         f"but the encoder predicts num_targets={encoder.num_targets}")
    _check_positive_int(fn, "steps", steps)
    _check_positive_int(fn, "batch_size", batch_size)
    if not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"{fn}: lr must be > 0, got {lr!r}")
    if not isinstance(warmup_fraction, (int, float)) or not 0 <= warmup_fraction < 1:
        raise ValueError(f"{fn}: warmup_fraction must be in [0, 1), got {warmup_fraction!r}")
    segments = _segments(fn, waves, segment_samples).float()
    if segments.shape[0] < batch_size:
        raise ValueError(f"{fn}: {segments.shape[0]} training example(s), fewer than "
                         f"batch_size={batch_size}")
    with torch.no_grad():
        targets = torch.cat([targets_tokenizer.tokenize(part).cpu()
                             for part in torch.split(segments, 64)]).long()
    frames = encoder.num_frames(segments.shape[-1])
    if tuple(targets.shape) != (segments.shape[0], frames):
        raise ValueError(f"{fn}: the targets tokenizer gave shape {tuple(targets.shape)}, the "
                         f"encoder expects ({segments.shape[0]}, {frames})")

    def loss_fn(model: nn.Module, batch: list[torch.Tensor]) -> tuple[torch.Tensor, dict]:
        wave, target = batch
        module = model.module if isinstance(model, DistributedDataParallel) else model
        mask = module.sample_mask(*target.shape, device=target.device)
        loss, accuracy = _masked_cross_entropy(model(wave, mask), target, mask)
        return loss, {"masked_accuracy": accuracy}

    warmup = max(1, round(warmup_fraction * steps))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (steps - step) / max(1, steps - warmup))

    optimizer = torch.optim.AdamW(encoder.parameters(), lr=lr, betas=(0.9, 0.98), eps=1e-6,
                                  weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    config = TrainConfig(max_steps=steps, batch_size=batch_size, seed=seed, device=device,
                         checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
                         log_every=log_every, grad_clip=grad_clip, progress=progress)
    return train(encoder, optimizer, TensorDataset(segments, targets), loss_fn, config,
                 scheduler=scheduler)


# ------------------------------------------------------------------- local HuBERT loader
def _receptive_field(kernels: Sequence[int], strides: Sequence[int]) -> int:
    """Samples seen by one output frame of a stack of unpadded convs:
    ``1 + sum_i (k_i - 1) prod_{j < i} s_j`` (400 for HuBERT's CNN)."""
    field, jump = 1, 1
    for kernel, stride in zip(kernels, strides):
        field += (kernel - 1) * jump
        jump *= stride
    return field


class HuBERTFeatures(nn.Module):
    """One hidden layer of a Hugging Face ``transformers`` ``HubertModel`` as a feature
    extractor: ``(batch, samples) -> (batch, samples // hop, hidden_size)``, always in eval
    mode (a frozen tokenizer; no time masking).

    ``hop = prod(config.conv_stride)`` (320: 50 Hz at 16 kHz). HuBERT's unpadded CNN gives
    ``floor((T - R) / hop) + 1`` frames (``R`` its receptive field, 400), so the wave is
    zero-padded by ``R - hop`` samples, split around it, to follow the module's frame rule.
    Layer 0 is the Transformer's input (``hidden_states[0]``), layer ``l`` the output of
    block ``l`` (audiolm-pytorch clusters layer 9 of HuBERT Base into 500 ids; HuBERT's
    second iteration used layer 6).

    Args:
        model: a ``transformers.HubertModel``.
        layer: in ``[0, config.num_hidden_layers]``.
        sample_rate: Hz the model was trained at (16000).
        normalize: zero-mean, unit-variance normalization of each wave
            (``Wav2Vec2FeatureExtractor(do_normalize=True)``; needed by HuBERT Large, not
            Base).
    """

    def __init__(self, model: nn.Module, layer: int, *, sample_rate: int = 16000,
                 normalize: bool = False) -> None:
        super().__init__()
        fn = "HuBERTFeatures"
        config = getattr(model, "config", None)
        if config is None or not hasattr(config, "conv_stride"):
            raise TypeError(f"{fn}: model must be a transformers HubertModel, got "
                            f"{type(model).__name__}")
        self.model = model
        self.sample_rate = _check_positive_int(fn, "sample_rate", sample_rate)
        self.hop_length = math.prod(config.conv_stride)
        self.padding = _receptive_field(config.conv_kernel, config.conv_stride) \
            - self.hop_length
        self.num_layers = int(config.num_hidden_layers)
        if isinstance(layer, bool) or not isinstance(layer, int) \
                or not 0 <= layer <= self.num_layers:
            raise ValueError(f"{fn}: layer must be an int in [0, {self.num_layers}], got "
                             f"{layer!r}")
        self.layer = layer
        self.dim = int(config.hidden_size)
        self.normalize = bool(normalize)
        self.train(False)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def train(self, mode: bool = True) -> HuBERTFeatures:
        """Keeps the HuBERT model in eval mode whatever ``mode`` (it is frozen)."""
        super().train(mode)
        self.model.eval()
        return self

    @classmethod
    def from_pretrained(cls, local_dir: str | Path, layer: int, *,
                        normalize: bool | None = None) -> HuBERTFeatures:
        """Load ``HubertModel.from_pretrained(local_dir, local_files_only=True)`` (never
        downloads). ``normalize`` None reads ``do_normalize`` from the directory's
        ``preprocessor_config.json`` (False without one); the sample rate comes from its
        ``sampling_rate`` (16000 without one).

        Raises:
            FileNotFoundError: ``local_dir`` has no ``config.json``.
            ImportError: ``transformers`` is not installed.
        """
        fn = "HuBERTFeatures.from_pretrained"
        directory = Path(local_dir)
        if not (directory / "config.json").is_file():
            raise FileNotFoundError(
                f"{fn}: '{directory}' has no config.json; pass a local folder written by "
                f"HubertModel.save_pretrained (weights are never downloaded here)")
        try:
            import transformers
        except ImportError as error:
            raise ImportError(f"{fn}: loading a HuBERT checkpoint needs the 'transformers' "
                              f"package (pip install transformers)") from error
        preprocessor: dict[str, Any] = {}
        preprocessor_path = directory / "preprocessor_config.json"
        if preprocessor_path.is_file():
            preprocessor = json.loads(preprocessor_path.read_text())
        model = transformers.HubertModel.from_pretrained(str(directory), local_files_only=True)
        if normalize is None:
            normalize = bool(preprocessor.get("do_normalize", False))
        return cls(model, layer, sample_rate=int(preprocessor.get("sampling_rate", 16000)),
                   normalize=normalize)

    def forward(self, wave: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """Hidden states ``(batch, samples // hop, hidden_size)`` of ``self.layer``."""
        x = _check_wave("HuBERTFeatures", wave, hop=self.hop_length,
                        sample_rate=self.sample_rate, given_rate=sample_rate)
        if self.normalize:
            x = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True,
                                                                  unbiased=False) + 1e-7)
        left = self.padding // 2
        x = F.pad(x, (left, self.padding - left))
        output = self.model(x.to(next(self.model.parameters()).dtype),
                            output_hidden_states=True)
        return output.hidden_states[self.layer]

    def extra_repr(self) -> str:
        return (f"layer={self.layer}, hop={self.hop_length}, frame_rate={self.frame_rate:g}, "
                f"dim={self.dim}, normalize={self.normalize}")


# ------------------------------------------------------------------------------- dedup
def remove_consecutive_duplicates(tokens: torch.Tensor) -> list[torch.Tensor]:
    """Each row of ``tokens (batch, frames)`` integer with runs of a repeated id collapsed
    to one (AudioLM removes consecutive repeated semantic tokens for its semantic stage,
    Borsos et al. 2022): a list of ``batch`` 1-D tensors of varying lengths."""
    fn = "remove_consecutive_duplicates"
    check_tensor(fn, "tokens", tokens)
    if tokens.ndim != 2:
        raise ValueError(f"{fn}: tokens must have shape (batch, frames), got "
                         f"{tuple(tokens.shape)}")
    if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
        raise TypeError(f"{fn}: tokens must have an integer dtype, got {tokens.dtype}")
    return [torch.unique_consecutive(row) for row in tokens]
