"""Log-mel filterbank energies, the fixed baseline every learnable frontend is measured
against (and the representation LEAF approximates at initialization).

Parameters follow the LEAF paper's comparison (Zeghidour et al., ICLR 2021; reference code
``MelFilterbanks``): 40 mel bands over 60-7800 Hz, 25 ms (symmetric) Hann windows (401 samples at
16 kHz) every 10 ms (160 samples), a 512-point FFT, power spectrum, log(x + 1e-5). One
departure: frames follow lutece's convention (``ceil(T / hop)`` frames centered on
hop * i + hop // 2, see :mod:`._framing`), the frames LEAF produces, where the reference
starts its frames at hop * i (``tf.signal.stft(pad_end=True)``), 120 samples later than its
own LEAF frames.
"""

from __future__ import annotations

import torch
from torch import nn

from ..._validation import check_choice
from ._framing import (
    as_waveform_batch,
    check_frontend_config,
    check_positive_int,
    frame_padding,
    hop_samples,
    window_samples,
)
from .mel_scale import mel_filter_matrix
from .pcen import PCEN

__all__ = ["MelFilterbank"]


class MelFilterbank(nn.Module):
    """Mel filterbank energies: ``(batch, samples)`` or ``(batch, 1, samples)`` ->
    ``(batch, n_filters, ceil(samples / hop))``.

    Args:
        n_filters: mel bands.
        sample_rate: Hz; inputs at other rates are refused when the caller states their rate.
        window_len, window_stride: ms (window taps ``int(sr * window_len // 1000 + 1)``).
        n_fft: FFT size (>= the window length).
        min_freq, max_freq: Hz range of the mel bands.
        compression: ``"log"`` (log(x + 1e-5)), ``"pcen"`` (learnable sPCEN with LEAF's
            initialization: the paper's Mel+PCEN baseline) or ``"none"`` (power).
    """

    def __init__(self, n_filters: int = 40, sample_rate: int = 16000, window_len: float = 25.0,
                 window_stride: float = 10.0, n_fft: int = 512, min_freq: float = 60.0,
                 max_freq: float = 7800.0, compression: str = "log") -> None:
        super().__init__()
        check_frontend_config("MelFilterbank", n_filters=n_filters, sample_rate=sample_rate,
                              window_len=window_len, window_stride=window_stride,
                              min_freq=min_freq, max_freq=max_freq)
        check_positive_int("MelFilterbank", "n_fft", n_fft)
        check_choice("MelFilterbank", "compression", compression, ("log", "pcen", "none"))
        self.n_filters = n_filters
        self.sample_rate = sample_rate
        self.window_size = window_samples(sample_rate, window_len)
        self.hop = hop_samples(sample_rate, window_stride)
        if n_fft < self.window_size:
            raise ValueError(
                f"MelFilterbank: n_fft must be >= the window length ({self.window_size} samples "
                f"for {window_len} ms at {sample_rate} Hz), got {n_fft}"
            )
        self.n_fft = n_fft
        self.compression = compression
        # symmetric, so that its center tap is the frame's center (tf.signal's default,
        # the periodic Hann, is off by half a sample)
        self.register_buffer("window", torch.hann_window(self.window_size, periodic=False),
                             persistent=False)
        weights = mel_filter_matrix(n_filters, n_fft, sample_rate, min_freq, max_freq)
        self.register_buffer("mel_weights", torch.from_numpy(weights).float(), persistent=False)
        self.pcen = PCEN(n_filters) if compression == "pcen" else None

    def power_mel(self, x: torch.Tensor) -> torch.Tensor:
        """Mel-weighted power spectra ``(batch, n_filters, frames)`` of a checked
        ``(batch, samples)`` waveform."""
        left, right = frame_padding(x.shape[-1], self.window_size, self.hop)
        # torch.stft centers a shorter window inside the n_fft frame
        offset = (self.n_fft - self.window_size) // 2
        padded = nn.functional.pad(x, (left + offset, right + self.n_fft - self.window_size
                                       - offset))
        spectrum = torch.stft(padded, self.n_fft, self.hop, self.window_size,
                              self.window.to(x.dtype), center=False, return_complex=True)
        power = spectrum.real.square() + spectrum.imag.square()  # (batch, bins, frames)
        return torch.einsum("bkf,km->bmf", power, self.mel_weights.to(x.dtype))

    def forward(self, waveform: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        x = as_waveform_batch("MelFilterbank", waveform, min_samples=self.window_size,
                              sample_rate=sample_rate, expected_sample_rate=self.sample_rate)
        input_dtype = x.dtype
        if input_dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        mel = self.power_mel(x)
        if self.compression == "log":
            mel = torch.log(mel + 1e-5)
        elif self.pcen is not None:
            mel = self.pcen(mel.clamp(min=1e-5))
        return mel.to(input_dtype)

    def extra_repr(self) -> str:
        return (f"n_filters={self.n_filters}, sample_rate={self.sample_rate}, "
                f"window={self.window_size} taps, hop={self.hop}, n_fft={self.n_fft}, "
                f"compression={self.compression!r}")
