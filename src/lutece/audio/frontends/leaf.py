"""LEAF, the learnable audio frontend (Zeghidour, Teboul, de Chaumont Quitry & Tagliasacchi,
"LEAF: A Learnable Frontend for Audio Classification", ICLR 2021).

waveform -> [pre-emphasis] -> complex Gabor filters (Eq. 3) -> squared modulus ->
Gaussian lowpass pooling (Eq. 5) -> max(., 1e-5) -> compression (sPCEN, Eq. 6; or log) ->
[per-channel mean/variance normalization]. Defaults are the paper's and its reference
code's (google-research/leaf-audio ``frontend.Leaf``): 40 filters, 25 ms windows (401 taps
at 16 kHz), 10 ms hop (160 samples), mel initialization over 60-7800 Hz, pooling width 0.4,
sPCEN with alpha 0.96, s 0.04, delta 2, r 2, floor 1e-12; 280 parameters for 40 filters.
"""

from __future__ import annotations

import torch
from torch import nn

from ..._validation import check_choice
from ._decimated import decimated_filter_and_pool
from ._framing import as_waveform_batch, check_frontend_config, hop_samples, window_samples
from .gabor import GaborConv1d
from .pcen import PCEN
from .pooling import GaussianLowpass, pool_frames

__all__ = ["Leaf", "LogCompression", "PreEmphasis"]

_ENERGY_FLOOR = 1e-5


class LogCompression(nn.Module):
    """log(x + offset), the mel baseline's compression (offset 1e-5 as in LEAF's code)."""

    def __init__(self, offset: float = 1e-5) -> None:
        super().__init__()
        self.offset = float(offset)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x + self.offset)

    def extra_repr(self) -> str:
        return f"offset={self.offset}"


class PreEmphasis(nn.Module):
    """Learnable first-order pre-emphasis y[t] = x[t] - a x[t - 1] (LEAF's optional
    ``preemp``; a initialized to 0.97, the sample before the clip taken as 0)."""

    def __init__(self, coefficient: float = 0.97) -> None:
        super().__init__()
        self.init_coefficient = float(coefficient)
        self.coefficient = nn.Parameter(torch.tensor(self.init_coefficient))

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.coefficient.fill_(self.init_coefficient)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        previous = nn.functional.pad(x[..., :-1], (1, 0))
        return x - self.coefficient.to(x.dtype) * previous


class Leaf(nn.Module):
    """LEAF: ``(batch, samples)`` or ``(batch, 1, samples)`` -> ``(batch, n_filters, frames)``
    with ``frames = ceil(samples / hop)``; a drop-in replacement for
    :class:`~lutece.audio.frontends.MelFilterbank` with the same frames.

    Args:
        n_filters: number of Gabor filters (output channels).
        sample_rate: Hz; inputs at other rates are refused when the caller states their rate.
        window_len: analysis window in ms (Gabor and pooling taps:
            ``int(sample_rate * window_len // 1000 + 1)``).
        window_stride: hop in ms.
        min_freq, max_freq: Hz range of the mel initialization.
        compression: ``"pcen"`` (learnable sPCEN), ``"log"`` (log(x + 1e-5)) or ``"none"``.
        learn_pooling: learn the Gaussian pooling widths.
        learn_filters: learn the Gabor center frequencies and widths.
        preemphasis: add the learnable pre-emphasis (off in the reference defaults).
        mean_var_norm: per-channel mean/variance normalization over time with a learnable
            affine map (``InstanceNorm1d``; off in the reference defaults).
        mode: ``"fast"`` (default) evaluates each band's energy at a reduced rate by FFT
            (see :mod:`._decimated`: the floored energies max(E, 1e-5) within 0.5% of the
            exact stage's); ``"exact"`` runs the reference
            computation, a 401-tap convolution at every sample.

    Frames: ``ceil(T / hop)``, frame i centered on sample hop * i + hop // 2, the same
    frames as TensorFlow's ``SAME`` padding in the reference for T a multiple of the hop
    (see :mod:`._framing`).
    """

    def __init__(self, n_filters: int = 40, sample_rate: int = 16000, window_len: float = 25.0,
                 window_stride: float = 10.0, min_freq: float = 60.0, max_freq: float = 7800.0,
                 compression: str = "pcen", learn_pooling: bool = True,
                 learn_filters: bool = True, preemphasis: bool = False,
                 mean_var_norm: bool = False, mode: str = "fast") -> None:
        super().__init__()
        check_frontend_config("Leaf", n_filters=n_filters, sample_rate=sample_rate,
                              window_len=window_len, window_stride=window_stride,
                              min_freq=min_freq, max_freq=max_freq)
        check_choice("Leaf", "compression", compression, ("pcen", "log", "none"))
        check_choice("Leaf", "mode", mode, ("fast", "exact"))
        self.n_filters = n_filters
        self.sample_rate = sample_rate
        self.window_size = window_samples(sample_rate, window_len)
        self.hop = hop_samples(sample_rate, window_stride)
        self.compression = compression
        self.mode = mode
        self.preemphasis = PreEmphasis() if preemphasis else None
        self.filterbank = GaborConv1d(n_filters, self.window_size, sample_rate, min_freq,
                                      max_freq)
        self.filterbank.requires_grad_(learn_filters)
        self.pooling = GaussianLowpass(n_filters, self.window_size, self.hop, init_sigma=0.4)
        self.pooling.requires_grad_(learn_pooling)
        if compression == "pcen":
            self.compress: nn.Module = PCEN(n_filters, alpha=0.96, smooth_coef=0.04, delta=2.0,
                                            root=2.0, floor=1e-12)
        elif compression == "log":
            self.compress = LogCompression(1e-5)
        else:
            self.compress = nn.Identity()
        self.normalize = nn.InstanceNorm1d(n_filters, eps=1e-6, affine=True) \
            if mean_var_norm else None

    def forward(self, waveform: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        x = as_waveform_batch("Leaf", waveform, min_samples=self.window_size,
                              sample_rate=sample_rate, expected_sample_rate=self.sample_rate)
        input_dtype = x.dtype
        if input_dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        energies = self.pooled_energies(x)
        out = self.compress(energies.clamp(min=_ENERGY_FLOOR))
        if self.normalize is not None:
            out = self.normalize(out)
        return out.to(input_dtype)

    def pooled_energies(self, x: torch.Tensor, mode: str | None = None) -> torch.Tensor:
        """Pooled Gabor energies before the floor and compression, ``(batch, n_filters,
        frames)`` from a checked ``(batch, samples)`` waveform."""
        if self.preemphasis is not None:
            x = self.preemphasis(x)
        mode = self.mode if mode is None else mode
        if mode == "exact":
            return pool_frames(self.filterbank_energies(x), self.pooling.windows(), self.hop)
        eta, sigma = self.filterbank.constrained_parameters()
        pool_std = self.pooling.constrained_sigma() * 0.5 * (self.window_size - 1)
        return decimated_filter_and_pool(x, eta.to(x.dtype), sigma.to(x.dtype),
                                         self.pooling.windows().to(x.dtype), pool_std,
                                         self.window_size, self.hop)

    def filterbank_energies(self, x: torch.Tensor) -> torch.Tensor:
        """|x * phi_n|^2 at every sample, ``(batch, n_filters, samples)``."""
        z = self.filterbank(x)
        return z.real.square() + z.imag.square()

    def num_frames(self, num_samples: int) -> int:
        return -(-num_samples // self.hop)

    def extra_repr(self) -> str:
        return (f"n_filters={self.n_filters}, sample_rate={self.sample_rate}, "
                f"window={self.window_size} taps, hop={self.hop}, "
                f"compression={self.compression!r}, mode={self.mode!r}")
