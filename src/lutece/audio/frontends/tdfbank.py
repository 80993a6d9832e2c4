"""Time-domain filterbanks (Zeghidour, Usunier, Kokkinos, Schatz, Synnaeve & Dupoux,
"Learning filterbanks from raw speech for phone recognition", ICASSP 2018), in the form the
LEAF paper compares against (its reference code's ``TimeDomainFilterbanks``).

waveform -> free-form complex filters (2 n_filters real 401-tap kernels, initialized with
the mel-initialized Gabor filters) -> squared modulus -> free-form per-channel lowpass
pooling (initialized with a squared Hann window) -> max(., 1e-5) -> log(x + 1e-5).
Every tap is a parameter: 48 120 for 40 filters at 16 kHz, against LEAF's 280.
"""

from __future__ import annotations

import torch
from torch import nn

from ._convolution import filterbank_correlate
from ._framing import as_waveform_batch, check_frontend_config, hop_samples, window_samples
from .gabor import gabor_impulse_responses
from .mel_scale import gabor_parameters_from_mel
from .pooling import LearnablePooling

__all__ = ["TDFilterbank"]


class TDFilterbank(nn.Module):
    """``(batch, samples)`` or ``(batch, 1, samples)`` -> ``(batch, n_filters,
    ceil(samples / hop))`` log energies; same frames as :class:`.MelFilterbank` and
    :class:`.Leaf`. Arguments as :class:`.Leaf` (ms and Hz)."""

    def __init__(self, n_filters: int = 40, sample_rate: int = 16000, window_len: float = 25.0,
                 window_stride: float = 10.0, min_freq: float = 60.0,
                 max_freq: float = 7800.0) -> None:
        super().__init__()
        check_frontend_config("TDFilterbank", n_filters=n_filters, sample_rate=sample_rate,
                              window_len=window_len, window_stride=window_stride,
                              min_freq=min_freq, max_freq=max_freq)
        self.n_filters = n_filters
        self.sample_rate = sample_rate
        self.window_size = window_samples(sample_rate, window_len)
        self.hop = hop_samples(sample_rate, window_stride)
        self.min_freq, self.max_freq = float(min_freq), float(max_freq)
        # rows 0..n-1 real parts, n..2n-1 imaginary parts
        self.filters = nn.Parameter(torch.empty(2 * n_filters, self.window_size))
        self.pooling = LearnablePooling(n_filters, self.window_size, self.hop)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        eta, sigma = gabor_parameters_from_mel(self.n_filters, self.sample_rate, self.min_freq,
                                               self.max_freq)
        real, imag = gabor_impulse_responses(torch.from_numpy(eta), torch.from_numpy(sigma),
                                             self.window_size)
        with torch.no_grad():
            self.filters.copy_(torch.cat([real, imag], dim=0))
        self.pooling.reset_parameters()

    def forward(self, waveform: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        x = as_waveform_batch("TDFilterbank", waveform, min_samples=self.window_size,
                              sample_rate=sample_rate, expected_sample_rate=self.sample_rate)
        input_dtype = x.dtype
        if input_dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        response = filterbank_correlate(x, self.filters)
        energy = response[:, : self.n_filters].square() + response[:, self.n_filters:].square()
        pooled = self.pooling(energy)
        return torch.log(pooled.clamp(min=1e-5) + 1e-5).to(input_dtype)

    def extra_repr(self) -> str:
        return (f"n_filters={self.n_filters}, sample_rate={self.sample_rate}, "
                f"window={self.window_size} taps, hop={self.hop}")
