"""Downsampling in the Fourier domain, with a fixed or a learnable stride.

Riad, Teboul, Grangier & Zeghidour, "Learning Strides in Convolutional Neural Networks"
(ICLR 2022). Downsampling by S keeps the frequencies below the new Nyquist frequency:

* ``SpectralPooling1d`` / ``SpectralPooling2d`` (Rippel et al. 2015): crop the spectrum to
  the lowest N // S frequencies and invert: an ideal low-pass filter, so a signal whose
  spectrum lies below the new Nyquist frequency comes out exactly (no aliasing).
* ``DiffStride1d`` / ``DiffStride2d``: multiply the spectrum by a mask with a linear ramp of
  width R (``smoothness``) beyond the threshold t = N / (2 S) (the adaptive-span mask of
  Sukhbaatar et al. 2019, DiffStride's eq. 4)

      m(p) = clip((R + t - p) / R, 0, 1)        p = |frequency index|

  then crop to the frequencies where m > 0 (indices chosen without gradient) and invert. The
  stride S reaches the loss only through the mask values, so it is learned by gradient
  descent; the output keeps the ramp and is larger than N / S: a 64x64 input with strides
  (2, 4) and R = 4 gives 40x24 (the reference implementation's shapes).

Conventions, as the reference (google-research/diffstride ``pooling.py``): the last axis
uses the half spectrum of ``rfft`` (positions 0..N//2, threshold N / (2 S) + 1); in 2-D
the other spatial axis uses the full spectrum, where the negative frequency -k sits at
position k - 1, so the kept frequencies 0..c-1 and -c..-1 form the spectrum of an
even-length signal. Before each forward the stride is clamped in place (without
gradient) to [max(1, N / (N - R)), N / 2]: below N / (N - R) the ramp would lie beyond the
spectrum and the stride would get no gradient; above N / 2 fewer than 2 samples would be
left.

Where we depart from the reference: the FFTs are normalized so that amplitudes are
preserved (the reference scales its output by N_in / N_out, which a following batch norm
absorbs); positions on odd-length axes follow the same rule as even ones (the reference's
``fftshift`` misplaces them by one); half-precision inputs are transformed in float32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .._validation import check_floating, check_tensor

__all__ = ["SpectralPooling1d", "SpectralPooling2d", "DiffStride1d", "DiffStride2d",
           "spectral_pooling", "diffstride"]


def _stride_tuple(fn: str, name: str, value: object, dims: int) -> tuple[float, ...]:
    """A float or one per spatial dimension, each a finite number >= 1."""
    values = value if isinstance(value, (tuple, list)) else (value,) * dims
    if len(values) != dims or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{fn}: {name} must be a number or {dims} numbers, got {value!r}")
    values = tuple(float(v) for v in values)
    if not all(math.isfinite(v) and v >= 1.0 for v in values):
        raise ValueError(f"{fn}: {name} must be >= 1 (a stride below 1 would upsample), "
                         f"got {value!r}")
    return values


def _check_input(fn: str, x: object, dims: int) -> torch.Tensor:
    x = check_tensor(fn, "x", x)
    if x.ndim != dims + 2:
        layout = "(batch, channels, time)" if dims == 1 else "(batch, channels, height, width)"
        raise ValueError(f"{fn}: x must be {layout}, a {dims + 2}-d tensor; got shape "
                         f"{tuple(x.shape)}")
    return check_floating(fn, "x", x)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def _spectrum(x: torch.Tensor, dims: int) -> torch.Tensor:
    """Amplitude-normalized real FFT over the last ``dims`` axes (last axis halved)."""
    axes = tuple(range(-dims, 0))
    return torch.fft.rfftn(x.to(_compute_dtype(x)), dim=axes, norm="forward")


def _inverse(spectrum: torch.Tensor, sizes: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    axes = tuple(range(-len(sizes), 0))
    return torch.fft.irfftn(spectrum, s=tuple(sizes), dim=axes, norm="forward").to(dtype)


def _full_axis_positions(size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """|frequency| of each FFT bin of a full-spectrum axis, the negative frequency -k at
    k - 1 (so a crop at p < c keeps 0..c-1 and -c..-1)."""
    index = torch.arange(size, device=device, dtype=dtype)
    non_negative = (size + 1) // 2
    return torch.where(index < non_negative, index, size - 1 - index)


def _full_axis_keep(size: int, count: int) -> torch.Tensor:
    """Indices of the frequencies 0..count-1 and -count..-1 of a full axis (all if they
    overlap)."""
    positive = min(count, (size + 1) // 2)
    negative = min(count, size // 2)
    return torch.cat([torch.arange(positive), torch.arange(size - negative, size)])


def spectral_pooling(x: torch.Tensor, stride: float | Sequence[float]) -> torch.Tensor:
    """Fixed spectral pooling over the last one or two axes of ``x`` (see the module
    docstring); ``stride`` has one entry per pooled axis. Output size per axis: the
    full axis floor(N / S) rounded down to even, the last axis floor(N / S), both >= 2
    (the reference's FixedSpectralPooling), or N where S == 1."""
    strides = tuple(stride) if isinstance(stride, (tuple, list)) else (stride,)
    dims = len(strides)
    sizes = list(x.shape[-dims:])
    if all(s == 1.0 for s in strides):
        return x
    spectrum = _spectrum(x, dims)
    out_sizes = []
    if dims == 2:
        height, s_h = sizes[0], strides[0]
        out_h = height if s_h == 1.0 else max(2, int(height // s_h) - int(height // s_h) % 2)
        if out_h < height:
            spectrum = spectrum.index_select(-2, _full_axis_keep(height, out_h // 2).to(
                spectrum.device))
        out_sizes.append(out_h)
    width, s_w = sizes[-1], strides[-1]
    out_w = width if s_w == 1.0 else max(2, int(width // s_w))
    spectrum = spectrum[..., : out_w // 2 + 1]
    out_sizes.append(out_w)
    return _inverse(spectrum, out_sizes, x.dtype)


def _ramp(positions: torch.Tensor, threshold: torch.Tensor, smoothness: float) -> torch.Tensor:
    """DiffStride's eq. 4: clip((R + t - p) / R, 0, 1)."""
    return ((smoothness + threshold - positions) / smoothness).clamp(0.0, 1.0)


def diffstride(x: torch.Tensor, strides: torch.Tensor, smoothness: float, *,
               return_spectrum: bool = False):
    """Learnable-stride downsampling of the last ``len(strides)`` axes (1 or 2) of ``x``.

    x: (..., [H,] W) real; strides: (dims,) tensor of strides, already within their valid
    range (the modules clamp them). Returns the downsampled signal, or with
    ``return_spectrum`` (signal, the kept masked spectrum) for inspection. Gradients reach
    ``strides`` through the mask; the crop's size is chosen without gradient.
    """
    dims = strides.shape[0]
    sizes = list(x.shape[-dims:])
    spectrum = _spectrum(x, dims)
    real = spectrum.real.dtype
    device = spectrum.device
    out_sizes = []
    if dims == 2:
        height = sizes[0]
        threshold = torch.clamp(height / strides[0].to(real), min=2.0) / 2.0
        positions = _full_axis_positions(height, device, real)
        mask = _ramp(positions, threshold, smoothness)
        count = math.ceil(float(threshold.detach()) + smoothness)
        keep = _full_axis_keep(height, count).to(device)
        spectrum = spectrum.index_select(-2, keep) * mask.index_select(0, keep)[:, None]
        out_sizes.append(len(keep))
    width = sizes[-1]
    threshold = torch.clamp(width / strides[-1].to(real), min=2.0) / 2.0 + 1.0
    half = width // 2 + 1
    positions = torch.arange(half, device=device, dtype=real)
    kept = min(math.ceil(float(threshold.detach()) + smoothness), half)
    mask = _ramp(positions[:kept], threshold, smoothness)
    spectrum = spectrum[..., :kept] * mask
    out_sizes.append(width if kept == half else 2 * (kept - 1))
    out = _inverse(spectrum, out_sizes, x.dtype)
    return (out, spectrum) if return_spectrum else out


class SpectralPooling1d(nn.Module):
    """Fixed spectral pooling of ``(batch, channels, time)`` by ``stride`` (a float >= 1):
    keeps the lowest floor(T / stride) frequencies. No parameters."""

    dims = 1

    def __init__(self, stride: float = 2.0) -> None:
        super().__init__()
        self.stride = _stride_tuple(type(self).__name__, "stride", stride, self.dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_input(type(self).__name__, x, self.dims)
        return spectral_pooling(x, self.stride)

    def extra_repr(self) -> str:
        return f"stride={self.stride if self.dims > 1 else self.stride[0]}"


class SpectralPooling2d(SpectralPooling1d):
    """Fixed spectral pooling of ``(batch, channels, height, width)``; ``stride`` is a
    float or (height, width) floats. 64x64 by (2, 4) -> 32x16."""

    dims = 2


class DiffStride1d(nn.Module):
    """Downsampling with a learnable stride (DiffStride) over the time axis of
    ``(batch, channels, time)``.

    Args:
        init_stride: initial stride (>= 1).
        smoothness: the mask's ramp width R in frequency bins (> 0; the paper uses 4).
        trainable: learn the stride (True) or keep it fixed.
        lower_limit, upper_limit: optional bounds on the stride (on top of its valid range).

    Output: ``(batch, channels, T')`` with T' = 2 (ceil(T / (2 S) + 1 + R) - 1) (or T when
    the crop would keep every frequency).
    """

    dims = 1

    def __init__(self, init_stride: float | Sequence[float] = 2.0, smoothness: float = 4.0,
                 trainable: bool = True, lower_limit: float | None = None,
                 upper_limit: float | None = None) -> None:
        super().__init__()
        fn = type(self).__name__
        strides = _stride_tuple(fn, "init_stride", init_stride, self.dims)
        if (isinstance(smoothness, bool) or not isinstance(smoothness, (int, float))
                or not math.isfinite(smoothness) or smoothness <= 0):
            raise ValueError(f"{fn}: smoothness must be a finite number > 0 (the mask's ramp "
                             f"width R), got {smoothness!r}")
        for name, limit in (("lower_limit", lower_limit), ("upper_limit", upper_limit)):
            if limit is not None and not (isinstance(limit, (int, float)) and limit >= 1):
                raise ValueError(f"{fn}: {name} must be None or a number >= 1, got {limit!r}")
        if lower_limit is not None and upper_limit is not None and lower_limit > upper_limit:
            raise ValueError(f"{fn}: lower_limit {lower_limit} exceeds upper_limit "
                             f"{upper_limit}")
        self.init_stride = strides
        self.smoothness = float(smoothness)
        self.lower_limit = lower_limit
        self.upper_limit = upper_limit
        self.stride = nn.Parameter(torch.tensor(strides), requires_grad=trainable)

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.stride.copy_(torch.tensor(self.init_stride))

    @property
    def strides(self) -> tuple[float, ...]:
        """The current strides, as floats."""
        return tuple(float(s) for s in self.stride.detach())

    def _clamp_strides(self, sizes: Sequence[int]) -> None:
        """In place, without gradient: S in [max(1, N / (N - R)), N / 2] per axis (and the
        user's limits), so the ramp stays inside the spectrum and >= 2 samples remain."""
        with torch.no_grad():
            for axis, size in enumerate(sizes):
                low = size / (size - self.smoothness) if size > self.smoothness else 1.0
                high = max(1.0, size / 2.0)
                if self.lower_limit is not None:
                    low = max(low, self.lower_limit)
                if self.upper_limit is not None:
                    high = min(high, self.upper_limit)
                self.stride[axis].clamp_(min=max(1.0, min(low, high)), max=high)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_input(type(self).__name__, x, self.dims)
        sizes = x.shape[-self.dims:]
        self._clamp_strides(sizes)
        return diffstride(x, self.stride, self.smoothness)

    def extra_repr(self) -> str:
        strides = ", ".join(f"{s:.3f}" for s in self.strides)
        return (f"stride=({strides}), smoothness={self.smoothness}, "
                f"trainable={self.stride.requires_grad}")


class DiffStride2d(DiffStride1d):
    """DiffStride over the two spatial axes of ``(batch, channels, height, width)``, one
    learnable stride per axis (``init_stride`` a float or (height, width)). 64x64 with
    strides (2, 4) and R = 4 -> 40x24."""

    dims = 2
