"""DiffStride and spectral pooling against the reference implementation's shapes, closed
forms (band-limited signals come out exactly), the spectrum itself, and finite
differences for the stride's gradient."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lutece.nn import (
    DiffStride1d,
    DiffStride2d,
    SpectralPooling1d,
    SpectralPooling2d,
    diffstride,
    spectral_pooling,
)


def test_reference_shapes():
    x = torch.randn(2, 3, 64, 64)
    assert DiffStride2d((2.0, 4.0), smoothness=4.0)(x).shape == (2, 3, 40, 24)
    assert SpectralPooling2d((2, 4))(x).shape == (2, 3, 32, 16)


def _expected_diffstride_size(size: int, stride: float, smoothness: float, full: bool) -> int:
    """The reference's kept sizes: full axis 2 min(ceil(N / 2S + R), N / 2); half axis
    2 (min(ceil(N / 2S + 1 + R), N / 2 + 1) - 1) (N when everything is kept)."""
    if full:
        count = math.ceil(max(size / stride, 2) / 2 + smoothness)
        return min(count, (size + 1) // 2) + min(count, size // 2)
    half = size // 2 + 1
    kept = min(math.ceil(max(size / stride, 2) / 2 + 1 + smoothness), half)
    return size if kept == half else 2 * (kept - 1)


@pytest.mark.parametrize("height,width,strides", [
    (64, 64, (2.0, 4.0)), (32, 48, (1.5, 3.0)), (31, 17, (2.5, 2.0)), (100, 60, (4.0, 6.0)),
    (12, 12, (3.0, 3.0))])
def test_output_shapes_follow_the_stride(height, width, strides):
    x = torch.randn(1, 2, height, width)
    layer = DiffStride2d(strides, smoothness=4.0)
    out = layer(x)
    s_h, s_w = layer.strides  # after the clamp
    assert out.shape[-2:] == (_expected_diffstride_size(height, s_h, 4.0, True),
                              _expected_diffstride_size(width, s_w, 4.0, False))
    fixed = SpectralPooling2d(strides)(x)
    expected_h = max(2, int(height // strides[0]) - int(height // strides[0]) % 2)
    assert fixed.shape[-2:] == (expected_h, max(2, int(width // strides[1])))
    assert out.shape[:2] == x.shape[:2]


def _trig_signal(positions: list[np.ndarray], frequencies, size: list[int]) -> np.ndarray:
    """sum of cos/sin of the given integer frequencies (cycles per signal length), sampled
    at ``positions`` (fractions of the signal length along each axis)."""
    grids = np.meshgrid(*positions, indexing="ij")
    value = np.zeros(grids[0].shape)
    for amplitude, phase, freq in frequencies:
        angle = sum(2 * np.pi * f * g for f, g in zip(freq, grids))
        value += amplitude * np.cos(angle + phase)
    return value


@pytest.mark.parametrize("layer", ["spectral", "diffstride"])
def test_band_limited_signals_are_preserved_exactly(layer):
    """No aliasing: a sum of sinusoids below the new Nyquist frequency comes out as the
    same continuous signal sampled on the coarser grid."""
    size = [48, 40]
    frequencies = [(1.0, 0.3, (0, 0)), (0.7, 1.1, (3, 2)), (0.4, -0.5, (-5, 4)),
                   (0.9, 0.0, (2, -3))]
    x = torch.tensor(_trig_signal([np.arange(n) / n for n in size], frequencies, size))
    if layer == "spectral":
        out = spectral_pooling(x[None, None], (3.0, 4.0))[0, 0]
    else:
        out = diffstride(x[None, None], torch.tensor([3.0, 4.0], dtype=torch.float64), 2.0)[0, 0]
    expected = _trig_signal([np.arange(n) / n for n in out.shape], frequencies, size)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-10)
    # 1-D: the same along time
    t = torch.tensor(_trig_signal([np.arange(60) / 60], [(1.0, 0.2, (4,)), (0.5, 1.0, (7,))],
                                  [60]))
    pooled = SpectralPooling1d(3.0)(t[None, None])[0, 0] if layer == "spectral" else \
        DiffStride1d(3.0, smoothness=2.0).double()(t[None, None])[0, 0]
    expected = _trig_signal([np.arange(pooled.shape[-1]) / pooled.shape[-1]],
                            [(1.0, 0.2, (4,)), (0.5, 1.0, (7,))], [60])
    np.testing.assert_allclose(pooled.detach().numpy(), expected, atol=1e-10)


def test_kept_spectrum_is_spectral_poolings_plus_the_smooth_border():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    strides = torch.tensor([2.0, 4.0], dtype=torch.float64)
    _, kept = diffstride(x, strides, 4.0, return_spectrum=True)
    spectrum = torch.fft.rfft2(x, norm="forward")
    # DiffStride keeps rows 0..19 and -20..-1, columns 0..12 (reference: 40 x 24 output)
    rows = torch.cat([torch.arange(20), torch.arange(44, 64)])
    assert kept.shape[-2:] == (40, 13)
    inner_rows = torch.cat([torch.arange(16), torch.arange(24, 40)])  # |f| < 16 in `kept`
    # spectral pooling's crop (rows 0..15, -16..-1; columns 0..8) comes through untouched
    pooled_crop = torch.cat([spectrum[..., :16, :9], spectrum[..., -16:, :9]], dim=-2)
    torch.testing.assert_close(kept[..., inner_rows, :9], pooled_crop)
    # ... and the border is the input spectrum times the ramp clip((R + t - p) / R, 0, 1)
    positions = torch.where(rows < 32, rows, 63 - rows).double()
    row_mask = ((4 + 16 - positions) / 4).clamp(0, 1)
    col_mask = ((4 + 9 - torch.arange(13).double()) / 4).clamp(0, 1)
    expected = spectrum[..., rows, :13] * row_mask[:, None] * col_mask
    torch.testing.assert_close(kept, expected)
    border = row_mask[(row_mask > 0) & (row_mask < 1)]
    assert len(border) == 6 and (border > 0).all()  # 3 ramp rows on each side


def test_stride_gradient_matches_finite_differences():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    weight = torch.randn(2, 3, 64, 64, dtype=torch.float64)

    def loss(strides: torch.Tensor) -> torch.Tensor:
        out = diffstride(x, strides, 4.0)
        return (out * weight[..., : out.shape[-2], : out.shape[-1]]).sum()

    strides = torch.tensor([2.3, 3.7], dtype=torch.float64, requires_grad=True)
    (gradient,) = torch.autograd.grad(loss(strides), strides)
    assert torch.isfinite(gradient).all() and (gradient.abs() > 1e-6).all()
    assert torch.autograd.gradcheck(loss, (strides,), eps=1e-6, atol=1e-6)


def test_layer_gradient_reaches_the_stride_and_clamps_keep_it_valid():
    layer = DiffStride2d((1.0, 40.0))
    out = layer(torch.randn(2, 3, 32, 32))
    out.square().mean().backward()
    assert torch.isfinite(layer.stride.grad).all() and layer.stride.grad.abs().sum() > 0
    s_h, s_w = layer.strides
    assert s_h == pytest.approx(32 / 28) and s_w == pytest.approx(16.0)  # N/(N-R) and N/2
    assert "stride=(1.143, 16.000)" in repr(layer)
    bounded = DiffStride1d(1.0, lower_limit=2.5, upper_limit=3.0)
    bounded(torch.randn(1, 1, 100))
    assert bounded.strides == (2.5,)
    frozen = DiffStride1d(2.0, trainable=False)
    assert not frozen.stride.requires_grad
    frozen.stride.data.fill_(5.0)
    frozen.reset_parameters()
    assert frozen.strides == (2.0,)


def test_inputs_smaller_than_the_crop_pass_through_whole():
    x = torch.randn(2, 3, 6, 5)
    out = DiffStride2d(2.0, smoothness=4.0)(x)
    assert out.shape == x.shape  # every frequency is kept
    torch.testing.assert_close(out[..., :, :], out)  # finite
    assert torch.isfinite(out).all()
    tiny = DiffStride1d(2.0)(torch.randn(1, 1, 3))
    assert tiny.shape == (1, 1, 3) and torch.isfinite(tiny).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32,
                                   torch.float64])
def test_dtypes_follow_the_input(dtype):
    x = torch.randn(2, 4, 32, 32).to(dtype)
    assert DiffStride2d(2.0)(x).dtype == dtype
    assert SpectralPooling2d(2.0)(x).dtype == dtype


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    x = torch.randn(2, 3, 40, 40)
    cpu = DiffStride2d((2.0, 3.0))(x)
    gpu = DiffStride2d((2.0, 3.0)).cuda()(x.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("make, message", [
    (lambda: DiffStride2d(0.5), "init_stride must be >= 1"),
    (lambda: DiffStride2d((2.0, 2.0, 2.0)), "init_stride must be a number or 2 numbers"),
    (lambda: DiffStride1d(2.0, smoothness=0.0), "smoothness must be a finite number > 0"),
    (lambda: DiffStride1d(2.0, smoothness=-1.0), "smoothness must be"),
    (lambda: DiffStride1d(2.0, lower_limit=0.5), "lower_limit must be None or a number >= 1"),
    (lambda: DiffStride1d(2.0, lower_limit=4.0, upper_limit=3.0), "exceeds upper_limit"),
    (lambda: SpectralPooling2d(0.9), "stride must be >= 1"),
    (lambda: SpectralPooling1d("2"), "stride must be a number"),
])
def test_construction_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_input_errors():
    with pytest.raises(ValueError, match=r"DiffStride2d: x must be \(batch, channels, height, "
                                         r"width\), a 4-d tensor; got shape \(3, 32, 32\)"):
        DiffStride2d()(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match=r"x must be \(batch, channels, time\)"):
        DiffStride1d()(torch.randn(2, 3, 4, 5))
    with pytest.raises(ValueError, match="SpectralPooling1d: x must be"):
        SpectralPooling1d()(torch.randn(10))
    with pytest.raises(TypeError, match="floating-point"):
        SpectralPooling2d()(torch.ones(1, 1, 8, 8, dtype=torch.int64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        DiffStride1d()(np.zeros((1, 1, 10)))
