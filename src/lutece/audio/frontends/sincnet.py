"""SincNet (Ravanelli & Bengio, "Speaker recognition from raw waveform with SincNet",
IEEE SLT 2018), in the form the LEAF paper compares against (its reference code's
``SincNet``): band-pass sinc filters with learnable cutoffs -> LeakyReLU(0.2) -> max pooling
over each frame's window -> layer normalization over channels.

Filter n passes [f1, f2] Hz with f1 = min_low_hz + |a_n| and
f2 = clip(f1 + min_band_hz + |b_n|, min_low_hz, sample_rate / 2) (50 Hz and 50 Hz, as in
SincNet): h_n(t) = 2 f2 sinc(2 f2 t) - 2 f1 sinc(2 f1 t) (frequencies in cycles/sample,
sinc(u) = sin(pi u) / (pi u)), times a Hamming window. Initialization: band edges equally
spaced on the mel scale over [min_freq, max_freq] (SincNet's own initialization is mel
spaced too). 2 n_filters cutoff parameters + 2 n_filters layer-norm parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from ._convolution import filterbank_correlate
from ._framing import (
    as_waveform_batch,
    check_frontend_config,
    frame_padding,
    hop_samples,
    window_samples,
)
from .mel_scale import hz_to_mel, mel_to_hz

__all__ = ["SincNet", "sinc_bandpass_filters"]

MIN_LOW_HZ = 50.0
MIN_BAND_HZ = 50.0


def sinc_bandpass_filters(low_hz: torch.Tensor, high_hz: torch.Tensor, kernel_size: int,
                          sample_rate: int) -> torch.Tensor:
    """Hamming-windowed band-pass filters ``(n, kernel_size)`` passing [low_hz, high_hz]."""
    t = torch.arange(kernel_size, dtype=low_hz.dtype, device=low_hz.device) - kernel_size // 2
    low = (low_hz / sample_rate)[:, None]
    high = (high_hz / sample_rate)[:, None]
    ideal = 2 * high * torch.sinc(2 * high * t) - 2 * low * torch.sinc(2 * low * t)
    window = torch.hamming_window(kernel_size, periodic=False, dtype=low_hz.dtype,
                                  device=low_hz.device)
    return ideal * window


class SincNet(nn.Module):
    """``(batch, samples)`` or ``(batch, 1, samples)`` -> ``(batch, n_filters,
    ceil(samples / hop))``; same frames as :class:`.MelFilterbank` and :class:`.Leaf`.
    Arguments as :class:`.Leaf` (ms and Hz)."""

    def __init__(self, n_filters: int = 40, sample_rate: int = 16000, window_len: float = 25.0,
                 window_stride: float = 10.0, min_freq: float = 60.0,
                 max_freq: float = 7800.0) -> None:
        super().__init__()
        check_frontend_config("SincNet", n_filters=n_filters, sample_rate=sample_rate,
                              window_len=window_len, window_stride=window_stride,
                              min_freq=min_freq, max_freq=max_freq)
        self.n_filters = n_filters
        self.sample_rate = sample_rate
        self.window_size = window_samples(sample_rate, window_len)
        self.hop = hop_samples(sample_rate, window_stride)
        self.min_freq, self.max_freq = float(min_freq), float(max_freq)
        self.low = nn.Parameter(torch.empty(n_filters))
        self.band = nn.Parameter(torch.empty(n_filters))
        self.norm = nn.LayerNorm(n_filters)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        edges = mel_to_hz(torch.linspace(float(hz_to_mel(self.min_freq)),
                                         float(hz_to_mel(self.max_freq)),
                                         self.n_filters + 1, dtype=torch.float64).numpy())
        edges = torch.from_numpy(edges)
        with torch.no_grad():
            self.low.copy_((edges[:-1] - MIN_LOW_HZ).clamp(min=0.0))
            self.band.copy_((edges[1:] - edges[:-1] - MIN_BAND_HZ).clamp(min=0.0))
        self.norm.reset_parameters()

    def cutoffs_hz(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(low, high) band edges in Hz as the forward pass uses them."""
        low = MIN_LOW_HZ + self.low.abs()
        high = (low + MIN_BAND_HZ + self.band.abs()).clamp(MIN_LOW_HZ, self.sample_rate / 2)
        return low, high

    def forward(self, waveform: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        x = as_waveform_batch("SincNet", waveform, min_samples=self.window_size,
                              sample_rate=sample_rate, expected_sample_rate=self.sample_rate)
        input_dtype = x.dtype
        if input_dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        low, high = self.cutoffs_hz()
        filters = sinc_bandpass_filters(low.to(x.dtype), high.to(x.dtype), self.window_size,
                                        self.sample_rate)
        response = nn.functional.leaky_relu(filterbank_correlate(x, filters), 0.2)
        left, right = frame_padding(x.shape[-1], self.window_size, self.hop)
        padded = nn.functional.pad(response, (left, right), value=float("-inf"))
        pooled = nn.functional.max_pool1d(padded, self.window_size, self.hop)
        return self.norm(pooled.transpose(1, 2)).transpose(1, 2).to(input_dtype)

    def extra_repr(self) -> str:
        return (f"n_filters={self.n_filters}, sample_rate={self.sample_rate}, "
                f"window={self.window_size} taps, hop={self.hop}")
