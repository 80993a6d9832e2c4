"""Complex Gabor filterbank convolution, LEAF's learnable time-frequency decomposition.

Zeghidour, Teboul, de Chaumont Quitry & Tagliasacchi, "LEAF: A Learnable Frontend for Audio
Classification" (ICLR 2021), Eq. 3:

    phi_n(t) = 1 / (sqrt(2 pi) sigma_n) exp(-t^2 / (2 sigma_n^2)) exp(i eta_n t),
    t = -(K // 2) .. (K - 1) // 2,

with center frequency eta_n (rad/sample) and time width sigma_n (samples; the paper calls it
the inverse bandwidth) as the only two parameters per filter. As in the reference code, the
forward pass constrains eta to [0, pi] and sigma to [4 sqrt(2 ln 2) / pi, K sqrt(2 ln 2) / pi]
samples (1.50 to 150.29 for K = 401: an amplitude response between 2 pi / K and pi / 2
rad/sample wide at half maximum); the stored parameters are not clipped. Initialization: the
mel filters of :mod:`.mel_scale`.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from ..._validation import check_floating, check_tensor
from ._framing import check_positive_int
from .mel_scale import gabor_parameters_from_mel

__all__ = ["GaborConv1d", "SquaredModulus", "squared_modulus", "gabor_impulse_responses",
           "sigma_limits"]

_FWHM = math.sqrt(2.0 * math.log(2.0))


def sigma_limits(kernel_size: int) -> tuple[float, float]:
    """The reference's constraint on sigma (samples) for a ``kernel_size``-tap filter."""
    return 4.0 * _FWHM / math.pi, kernel_size * _FWHM / math.pi


def gabor_impulse_responses(eta: torch.Tensor, sigma: torch.Tensor, kernel_size: int,
                            half_width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary parts of the Gabor filters, each ``(n_filters, taps)``.

    ``eta`` (rad/sample) and ``sigma`` (samples) are ``(n_filters,)``. Taps are
    t = -(K // 2) .. (K - 1) // 2 for ``kernel_size`` K, or t = -half_width .. half_width
    when ``half_width`` is given (a truncated filter, same normalization).
    """
    if half_width is None:
        t = torch.arange(-(kernel_size // 2), (kernel_size + 1) // 2, dtype=eta.dtype,
                         device=eta.device)
    else:
        t = torch.arange(-half_width, half_width + 1, dtype=eta.dtype, device=eta.device)
    sigma = sigma[:, None]
    envelope = torch.exp(-0.5 * (t / sigma) ** 2) / (math.sqrt(2.0 * math.pi) * sigma)
    phase = eta[:, None] * t
    return envelope * torch.cos(phase), envelope * torch.sin(phase)


def squared_modulus(real: torch.Tensor, imag: torch.Tensor | None = None) -> torch.Tensor:
    """|z|^2 = re^2 + im^2, for a complex tensor or a (real, imag) pair of real tensors."""
    if imag is None:
        if not real.is_complex():
            raise TypeError("squared_modulus: pass a complex tensor or both real and imag parts")
        return real.real.square() + real.imag.square()
    return real.square() + imag.square()


class SquaredModulus(nn.Module):
    """Module form of :func:`squared_modulus`: complex ``(batch, n, time)`` -> real, same shape."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return squared_modulus(z)


class GaborConv1d(nn.Module):
    """Convolution of a waveform with ``n_filters`` learnable complex Gabor filters.

    Args:
        n_filters: number of complex filters (40 in LEAF).
        kernel_size: taps K (401 = 25 ms at 16 kHz in LEAF).
        sample_rate: Hz, used for the mel initialization and the Hz accessors.
        min_freq, max_freq: Hz range of the mel initialization (LEAF: 60 and 7800).
        n_fft: FFT size of the mel filters the initialization reads (512 in LEAF).

    Forward: ``(batch, samples)`` or ``(batch, 1, samples)`` -> complex
    ``(batch, n_filters, samples)``, stride 1, the filter's tap t = 0 aligned with the output
    sample (zero padding: ``K // 2`` samples on the left, ``(K - 1) // 2`` on the right).
    A warning is raised when the mel initialization asks for a sigma outside the constraint
    (e.g. 64 filters at 16 kHz with K = 401: the lowest filters are clipped).
    """

    def __init__(self, n_filters: int = 40, kernel_size: int = 401, sample_rate: int = 16000,
                 min_freq: float = 60.0, max_freq: float = 7800.0, n_fft: int = 512) -> None:
        super().__init__()
        check_positive_int("GaborConv1d", "n_filters", n_filters)
        check_positive_int("GaborConv1d", "kernel_size", kernel_size)
        check_positive_int("GaborConv1d", "sample_rate", sample_rate)
        if not 0 <= min_freq < max_freq <= sample_rate / 2:
            raise ValueError(
                f"GaborConv1d: need 0 <= min_freq < max_freq <= sample_rate / 2, got "
                f"min_freq={min_freq}, max_freq={max_freq}, sample_rate={sample_rate}"
            )
        self.n_filters = n_filters
        self.kernel_size = kernel_size
        self.sample_rate = sample_rate
        self.min_freq = float(min_freq)
        self.max_freq = float(max_freq)
        self.n_fft = n_fft
        self.eta = nn.Parameter(torch.empty(n_filters))
        self.sigma = nn.Parameter(torch.empty(n_filters))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        eta, sigma = gabor_parameters_from_mel(self.n_filters, self.sample_rate, self.min_freq,
                                               self.max_freq, self.n_fft)
        low, high = sigma_limits(self.kernel_size)
        clipped = int(((sigma < low) | (sigma > high)).sum())
        if clipped:
            warnings.warn(
                f"GaborConv1d: the mel initialization of {clipped} of {self.n_filters} filters "
                f"needs a time width outside [{low:.2f}, {high:.2f}] samples for "
                f"kernel_size={self.kernel_size}; they are clipped (use fewer filters or a "
                f"longer window)", stacklevel=3)
        with torch.no_grad():
            self.eta.copy_(torch.from_numpy(eta))
            self.sigma.copy_(torch.from_numpy(sigma))

    def constrained_parameters(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(eta, sigma) as the forward pass uses them: eta in [0, pi], sigma in
        :func:`sigma_limits`."""
        low, high = sigma_limits(self.kernel_size)
        return self.eta.clamp(0.0, math.pi), self.sigma.clamp(low, high)

    @property
    def center_frequencies_hz(self) -> torch.Tensor:
        """``(n_filters,)`` center frequencies in Hz (detached)."""
        eta, _ = self.constrained_parameters()
        return eta.detach() * self.sample_rate / (2.0 * math.pi)

    @property
    def bandwidths_hz(self) -> torch.Tensor:
        """``(n_filters,)`` full widths at half maximum of the amplitude response, in Hz
        (2 sqrt(2 ln 2) / sigma rad/sample, the width the mel initialization matches;
        detached)."""
        _, sigma = self.constrained_parameters()
        return 2.0 * _FWHM / sigma.detach() * self.sample_rate / (2.0 * math.pi)

    def impulse_responses(self) -> torch.Tensor:
        """Complex ``(n_filters, kernel_size)`` filters phi_n(t)."""
        real, imag = gabor_impulse_responses(*self.constrained_parameters(), self.kernel_size)
        return torch.complex(real, imag)

    def stacked_filters(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Real conv1d weight ``(2 n_filters, 1, K)``: the real parts, then the imaginary."""
        eta, sigma = self.constrained_parameters()
        if dtype is not None:
            eta, sigma = eta.to(dtype), sigma.to(dtype)
        real, imag = gabor_impulse_responses(eta, sigma, self.kernel_size)
        return torch.cat([real, imag], dim=0).unsqueeze(1)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        x = check_tensor("GaborConv1d", "waveform", waveform, min_ndim=2)
        check_floating("GaborConv1d", "waveform", x)
        if x.ndim == 3 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 2:
            raise ValueError(
                f"GaborConv1d: waveform must be (batch, samples) or (batch, 1, samples), got "
                f"shape {tuple(waveform.shape)}"
            )
        k = self.kernel_size
        padded = nn.functional.pad(x.unsqueeze(1), (k // 2, (k - 1) // 2))
        out = nn.functional.conv1d(padded, self.stacked_filters(x.dtype))
        return torch.complex(out[:, : self.n_filters], out[:, self.n_filters:])

    def extra_repr(self) -> str:
        return (f"{self.n_filters}, kernel_size={self.kernel_size}, "
                f"sample_rate={self.sample_rate}, init=mel({self.min_freq:g}-{self.max_freq:g} Hz)")
