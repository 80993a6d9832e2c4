"""Speaker embeddings of fixed-length windows: GE2E d-vectors and MFCC statistics.

:class:`DVectorEncoder` is the d-vector network of Wan, Wang, Papir & Lopez Moreno,
"Generalized End-to-End Loss for Speaker Verification" (ICASSP 2018, GE2E): 40 mel
channels -> 3-layer LSTM(256) -> last hidden state of the top layer -> Linear(256) -> ReLU ->
L2 normalisation, trained on partial utterances of 160 frames (1.6 s). The architecture and
the front end (16 kHz, 25 ms / 400-sample Hann windows every 10 ms, a 40-band Slaney mel
filterbank over the *power* spectrum, no log) are those of Resemblyzer (Resemble AI,
Apache-2.0, after Jemine's "Real-Time Voice Cloning" thesis, 2019), whose shipped
``pretrained.pt`` :meth:`DVectorEncoder.pretrained` loads; the code here is lutece's own and
never imports the ``resemblyzer`` package.

:func:`mfcc_statistics` is the always-available baseline: per window, the mean and standard
deviation of MFCCs and their deltas, standardised over the windows of the recording (the
classic GMM/BIC-era diarization features; no learned weights).
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..io import resample

__all__ = ["slaney_mel_filterbank", "mel_spectrogram", "DVectorEncoder", "mfcc_statistics",
           "DVECTOR_SAMPLE_RATE", "normalize_volume"]

DVECTOR_SAMPLE_RATE = 16000
"""Rate the d-vector front end and weights expect, Hz."""
_N_FFT = 400  # 25 ms at 16 kHz
_HOP = 160  # 10 ms at 16 kHz
_N_MELS = 40
_PARTIAL_FRAMES = 160  # GE2E/Resemblyzer partial utterance, 1.6 s
_TARGET_DBFS = -30.0  # Resemblyzer's volume normalisation target (increase only)


def slaney_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                          fmax: float | None = None) -> np.ndarray:
    """Triangular mel filters on the Slaney mel scale with Slaney area normalisation.

    The mel scale is the Auditory Toolbox's (Slaney, 1998): linear below 1 kHz
    (m = 3 f / 200) and logarithmic above (m = 15 + 27 ln(f / 1000) / ln 6.4). The
    ``n_mels + 2`` edges are equally spaced in mel between ``fmin`` and ``fmax`` (Hz, default
    ``sample_rate / 2``); filter ``j`` rises linearly *in Hz* from edge ``j`` to edge ``j + 1``
    and falls to edge ``j + 2``, then is scaled by ``2 / (f_{j+2} - f_j)`` so every filter
    has the same area. These are librosa's defaults (``htk=False, norm="slaney"``).

    Returns:
        ``(n_mels, n_fft // 2 + 1)`` float64 weights over the rfft bins ``k sample_rate / n_fft``.
    """
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    if not 0.0 <= fmin < fmax <= sample_rate / 2.0:
        raise ValueError(f"slaney_mel_filterbank: need 0 <= fmin < fmax <= sample_rate / 2, "
                         f"got fmin={fmin}, fmax={fmax}, sample_rate={sample_rate}")
    edges_hz = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    bins_hz = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    widths = np.diff(edges_hz)
    rising = (bins_hz[None, :] - edges_hz[:-2, None]) / widths[:-1, None]
    falling = (edges_hz[2:, None] - bins_hz[None, :]) / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return weights * (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]


_MEL_BREAK_HZ = 1000.0
_MEL_LINEAR_SLOPE = 200.0 / 3.0  # Hz per mel below the break
_MEL_LOG_STEP = math.log(6.4) / 27.0  # ln(Hz ratio) per mel above the break


def _hz_to_mel(frequency: np.ndarray | float) -> np.ndarray:
    frequency = np.asarray(frequency, dtype=np.float64)
    linear = frequency / _MEL_LINEAR_SLOPE
    above = _MEL_BREAK_HZ / _MEL_LINEAR_SLOPE + np.log(np.maximum(frequency, 1e-12)
                                                       / _MEL_BREAK_HZ) / _MEL_LOG_STEP
    return np.where(frequency >= _MEL_BREAK_HZ, above, linear)


def _mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    break_mel = _MEL_BREAK_HZ / _MEL_LINEAR_SLOPE
    return np.where(mel >= break_mel, _MEL_BREAK_HZ * np.exp(_MEL_LOG_STEP * (mel - break_mel)),
                    _MEL_LINEAR_SLOPE * mel)


def mel_spectrogram(wave: torch.Tensor, sample_rate: int = DVECTOR_SAMPLE_RATE, *,
                    n_fft: int = _N_FFT, hop_length: int = _HOP, n_mels: int = _N_MELS,
                    fmin: float = 0.0, fmax: float | None = None) -> torch.Tensor:
    """Mel power spectrogram, librosa's ``feature.melspectrogram`` convention.

    Periodic Hann window of ``n_fft`` samples, frames centred on ``t * hop_length`` (the wave
    is zero-padded by ``n_fft // 2`` on both sides), ``|STFT|^2`` (power 2) weighted by
    :func:`slaney_mel_filterbank`. The defaults are the GE2E / Resemblyzer front end at
    16 kHz: 25 ms windows, 10 ms hop, 40 bands over 0-8 kHz.

    Args:
        wave: ``(..., samples)`` floating tensor at ``sample_rate`` Hz.

    Returns:
        ``(..., n_mels, 1 + samples // hop_length)`` in the dtype of ``wave`` (float32 for
        half precision inputs).
    """
    if not isinstance(wave, torch.Tensor) or not wave.is_floating_point():
        raise TypeError("mel_spectrogram: wave must be a floating torch.Tensor")
    dtype = wave.dtype if wave.dtype in (torch.float32, torch.float64) else torch.float32
    leading = wave.shape[:-1]
    flat = wave.reshape(-1, wave.shape[-1]).to(dtype)
    window = torch.hann_window(n_fft, periodic=True, dtype=dtype, device=wave.device)
    spectrum = torch.stft(flat, n_fft, hop_length=hop_length, window=window, center=True,
                          pad_mode="constant", return_complex=True)
    power = spectrum.real.square() + spectrum.imag.square()
    filters = torch.from_numpy(slaney_mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax))
    mel = filters.to(dtype=dtype, device=wave.device) @ power
    return mel.reshape(*leading, n_mels, mel.shape[-1])


def normalize_volume(wave: np.ndarray, target_dbfs: float = _TARGET_DBFS) -> np.ndarray:
    """Scale ``wave`` up so that its RMS level is ``target_dbfs`` dB full scale; louder waves
    are returned unchanged (Resemblyzer's ``increase_only`` preprocessing; the d-vector
    network sees power spectra, so its input level matters)."""
    level = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
    if level <= 0.0:
        return wave
    gain_db = target_dbfs - 20.0 * math.log10(level)
    return wave * np.float32(10.0 ** (gain_db / 20.0)) if gain_db > 0 else wave


def _as_mono_16k(fn: str, wave: np.ndarray | torch.Tensor, sample_rate: int) -> np.ndarray:
    """``wave`` as float32 numpy ``(samples,)`` at 16 kHz."""
    if isinstance(wave, np.ndarray):
        wave = torch.from_numpy(np.ascontiguousarray(wave))
    if not isinstance(wave, torch.Tensor):
        raise TypeError(f"{fn}: wave must be a numpy array or torch tensor, "
                        f"got {type(wave).__name__}")
    if wave.ndim == 2 and wave.shape[0] == 1:
        wave = wave[0]
    if wave.ndim != 1:
        raise ValueError(f"{fn}: wave must be mono (samples,) or (1, samples), "
                         f"got shape {tuple(wave.shape)}")
    wave = wave.detach().cpu().float()
    if sample_rate != DVECTOR_SAMPLE_RATE:
        wave = resample(wave, int(sample_rate), DVECTOR_SAMPLE_RATE)
    return wave.numpy()


def _window_frames(fn: str, starts: Sequence[float] | np.ndarray, duration: float,
                   hop_seconds: float) -> tuple[np.ndarray, int]:
    """First frame of each window and the common window length in frames."""
    starts = np.asarray(starts, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(starts)) or np.any(starts < 0):
        raise ValueError(f"{fn}: starts must be finite and >= 0 seconds")
    if not duration > 0:
        raise ValueError(f"{fn}: duration must be > 0 seconds, got {duration!r}")
    length = max(int(round(duration / hop_seconds)), 1)
    return np.round(starts / hop_seconds).astype(np.int64), length


def _gather_frames(features: torch.Tensor, first: np.ndarray, length: int) -> torch.Tensor:
    """``(windows, length, channels)`` slices of ``features (frames, channels)``; frames
    past the end read zeros (a silent tail)."""
    need = int(first.max(initial=0)) + length
    if need > features.shape[0]:
        pad = features.new_zeros(need - features.shape[0], features.shape[1])
        features = torch.cat([features, pad])
    index = torch.from_numpy(first)[:, None] + torch.arange(length)[None, :]
    return features[index]


class DVectorEncoder(nn.Module):
    """GE2E d-vector encoder (Wan et al., 2018), Resemblyzer's configuration.

    ``forward``: mel power spectrograms ``(batch, frames, n_mels)`` -> embeddings
    ``(batch, embedding_size)``, non-negative and of unit L2 norm: the ReLU of a linear map of
    the top LSTM layer's last hidden state, divided by its norm.

    ``similarity_weight`` and ``similarity_bias`` are GE2E's learnable scale and offset of
    the cosine similarity matrix (``S = w cos + b``, Eq. 5 of the paper); they only matter
    for training, and are kept so that Resemblyzer's checkpoint loads strictly.

    Args:
        n_mels: mel channels of the input (40).
        hidden_size: LSTM width (256).
        embedding_size: output dimension (256).
        num_layers: stacked LSTM layers (3).
    """

    def __init__(self, n_mels: int = _N_MELS, hidden_size: int = 256, embedding_size: int = 256,
                 num_layers: int = 3) -> None:
        super().__init__()
        self.n_mels = n_mels
        self.hidden_size = hidden_size
        self.embedding_size = embedding_size
        self.num_layers = num_layers
        self.lstm = nn.LSTM(n_mels, hidden_size, num_layers, batch_first=True)
        self.linear = nn.Linear(hidden_size, embedding_size)
        self.similarity_weight = nn.Parameter(torch.empty(1))
        self.similarity_bias = nn.Parameter(torch.empty(1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default LSTM/Linear initialisation; GE2E's (w, b) = (10, -5)."""
        self.lstm.reset_parameters()
        self.linear.reset_parameters()
        with torch.no_grad():
            self.similarity_weight.fill_(10.0)
            self.similarity_bias.fill_(-5.0)

    def extra_repr(self) -> str:
        return (f"n_mels={self.n_mels}, hidden_size={self.hidden_size}, "
                f"embedding_size={self.embedding_size}, num_layers={self.num_layers}")

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """``mels``: ``(batch, frames, n_mels)`` mel power spectra -> ``(batch,
        embedding_size)`` unit-norm d-vectors."""
        _, (hidden, _) = self.lstm(mels)
        raw = torch.relu(self.linear(hidden[-1]))
        return raw / raw.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    @staticmethod
    def resemblyzer_weights_path() -> Path:
        """Where the installed ``resemblyzer`` package keeps ``pretrained.pt`` (found without
        importing the package, whose ``webrtcvad`` dependency may not import)."""
        spec = importlib.util.find_spec("resemblyzer")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(
                "DVectorEncoder.pretrained: the pretrained GE2E weights come from the "
                "'resemblyzer' package, which is not installed; install it with "
                "`pip install resemblyzer` (only its weight file is used) or pass path=")
        return Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"

    @classmethod
    def pretrained(cls, path: str | os.PathLike | None = None,
                   device: str | torch.device = "cpu") -> DVectorEncoder:
        """The encoder with Resemblyzer's pretrained weights (``path`` defaults to
        :meth:`resemblyzer_weights_path`), in eval mode on ``device``."""
        path = cls.resemblyzer_weights_path() if path is None else Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"DVectorEncoder.pretrained: no weight file at {path}")
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        state = checkpoint.get("model_state", checkpoint)
        encoder = cls()
        encoder.load_state_dict(state, strict=True)
        return encoder.to(device).eval()

    @torch.no_grad()
    def embed_windows(self, wave: np.ndarray | torch.Tensor, sample_rate: int,
                      starts: Sequence[float] | np.ndarray, duration: float, *,
                      batch_size: int = 128, normalize: bool = True) -> np.ndarray:
        """d-vectors of equal-length windows of one recording, batched.

        The whole wave is resampled to 16 kHz, raised to -30 dBFS if quieter
        (:func:`normalize_volume`, when ``normalize``) and turned into one mel spectrogram;
        window ``i`` is the ``round(duration / 10 ms)`` frames from ``starts[i]`` (frames past
        the end are silent). GE2E was trained on 1.6 s partials, so ``duration`` in 0.5-2 s
        suits it best.

        Args:
            wave: mono ``(samples,)`` (or ``(1, samples)``) float array or tensor.
            sample_rate: rate of ``wave``, Hz.
            starts: ``(n,)`` window starts, seconds.
            duration: window length, seconds.

        Returns:
            ``(n, embedding_size)`` float32 numpy array of unit-norm d-vectors.
        """
        fn = "DVectorEncoder.embed_windows"
        first, length = _window_frames(fn, starts, duration, _HOP / DVECTOR_SAMPLE_RATE)
        if first.size == 0:
            return np.zeros((0, self.embedding_size), dtype=np.float32)
        samples = _as_mono_16k(fn, wave, sample_rate)
        if normalize:
            samples = normalize_volume(samples)
        device = self.linear.weight.device
        mel = mel_spectrogram(torch.from_numpy(np.ascontiguousarray(samples)).to(device)).T
        windows = _gather_frames(mel, first, length)
        outputs = [self(windows[i:i + batch_size]) for i in range(0, len(windows), batch_size)]
        return torch.cat(outputs).cpu().numpy().astype(np.float32)


def _dct_matrix(n_mfcc: int, n_mels: int) -> torch.Tensor:
    """Orthonormal DCT-II rows ``(n_mfcc, n_mels)``: C[k, m] = s_k cos(pi k (m + 1/2) / M)."""
    k = torch.arange(n_mfcc, dtype=torch.float64)[:, None]
    m = torch.arange(n_mels, dtype=torch.float64)[None, :]
    basis = torch.cos(math.pi * k * (m + 0.5) / n_mels) * math.sqrt(2.0 / n_mels)
    basis[0] /= math.sqrt(2.0)
    return basis


def _deltas(features: torch.Tensor, width: int = 2) -> torch.Tensor:
    """Regression deltas along the last axis: d_t = sum_n n (c_{t+n} - c_{t-n}) /
    (2 sum_n n^2), n = 1..width, edges repeated."""
    padded = torch.nn.functional.pad(features[None], (width, width), mode="replicate")[0]
    steps = features.shape[-1]
    numerator = sum(n * (padded[..., width + n:width + n + steps]
                         - padded[..., width - n:width - n + steps]) for n in range(1, width + 1))
    return numerator / (2.0 * sum(n * n for n in range(1, width + 1)))


def mfcc_statistics(wave: np.ndarray | torch.Tensor, sample_rate: int,
                    starts: Sequence[float] | np.ndarray, duration: float, *, n_mfcc: int = 20,
                    n_mels: int = 40, deltas: bool = True, standardize: bool = True
                    ) -> np.ndarray:
    """Mean and standard deviation of MFCCs (and deltas) per window: a baseline speaker
    embedding that needs no trained weights.

    MFCCs: 16 kHz, 25 ms Hann windows every 10 ms, 40 Slaney mel bands, log(power + 1e-10),
    orthonormal DCT-II; ``c_0`` (the frame's log energy, a loudness cue) is dropped, keeping
    ``c_1 .. c_{n_mfcc-1}``. Deltas are the usual +-2-frame regression. Per window the
    features are summarised by their mean and standard deviation over its frames; with
    ``standardize`` every dimension is then z-scored across the ``n`` windows (which also
    removes the recording's channel, as cepstral mean normalisation would).

    Args:
        wave: mono ``(samples,)`` float array or tensor at ``sample_rate`` Hz.
        starts: ``(n,)`` window starts, seconds; duration: window length, seconds.

    Returns:
        ``(n, d)`` float32, ``d = 2 (n_mfcc - 1) (2 if deltas else 1)`` (76 by default).
    """
    fn = "mfcc_statistics"
    if not 2 <= n_mfcc <= n_mels:
        raise ValueError(f"{fn}: n_mfcc must be in [2, n_mels={n_mels}], got {n_mfcc}")
    first, length = _window_frames(fn, starts, duration, _HOP / DVECTOR_SAMPLE_RATE)
    dim = 2 * (n_mfcc - 1) * (2 if deltas else 1)
    if first.size == 0:
        return np.zeros((0, dim), dtype=np.float32)
    samples = torch.from_numpy(np.ascontiguousarray(_as_mono_16k(fn, wave, sample_rate)))
    mel = mel_spectrogram(samples.double(), n_mels=n_mels)
    cepstra = (_dct_matrix(n_mfcc, n_mels) @ torch.log(mel + 1e-10))[1:]
    if deltas:
        cepstra = torch.cat([cepstra, _deltas(cepstra)])
    # frames past the end of the wave are excluded from the statistics, not read as zeros
    valid = torch.ones(1, cepstra.shape[1], dtype=cepstra.dtype)
    windows = _gather_frames(cepstra.T, first, length)  # (n, length, channels)
    weights = _gather_frames(valid.T, first, length)  # (n, length, 1)
    count = weights.sum(dim=1).clamp_min(1.0)
    mean = (windows * weights).sum(dim=1) / count
    spread = (((windows - mean[:, None]) ** 2 * weights).sum(dim=1) / count).sqrt()
    stats = torch.cat([mean, spread], dim=1).numpy()
    if standardize:
        stats = stats - stats.mean(axis=0)
        scale = stats.std(axis=0)
        stats = stats / np.where(scale > 1e-8, scale, 1.0)
    return stats.astype(np.float32)
