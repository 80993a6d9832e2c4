"""ResNet-18 with each downsampling, its parameter count by hand, and the complexity
regularizer against multiply-accumulates counted on the actual forward pass."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lutece.nn import (
    DOWNSAMPLING,
    ResNet18,
    complexity_regularizer,
    count_conv_macs,
    learned_strides,
)


def _preact_resnet18_parameters(num_classes: int, in_channels: int, width: int = 64) -> int:
    """By hand: 3x3 stem; per stage two blocks (two BN(cin|cout) + two 3x3 convs), a 1x1
    shortcut where the channels change; final BN; linear."""
    c = [width, width, 2 * width, 4 * width, 8 * width]
    total = 9 * in_channels * c[0]
    for stage in range(1, 5):
        cin, cout = c[stage - 1], c[stage]
        total += 2 * cin + 9 * cin * cout + 2 * cout + 9 * cout * cout  # block 1
        total += cin * cout if stage > 1 else 0                          # its shortcut
        total += 2 * cout + 9 * cout * cout + 2 * cout + 9 * cout * cout  # block 2
    total += 2 * c[4] + c[4] * num_classes + num_classes
    return total


def test_strided_conv_has_the_preact_cifar_resnet18_parameter_count():
    model = ResNet18(10, 3, "strided_conv")
    count = sum(p.numel() for p in model.parameters())
    assert count == _preact_resnet18_parameters(10, 3)
    assert count == 11_171_146 + 1024  # the common PreActResNet18 count plus the final BN
    # pooling variants add only DiffStride's strides (4 layers x 2)
    assert sum(p.numel() for p in ResNet18(10, 3, "spectral").parameters()) == count
    assert sum(p.numel() for p in ResNet18(10, 3, "diffstride").parameters()) == count + 8


@pytest.mark.parametrize("downsampling", DOWNSAMPLING)
@pytest.mark.parametrize("spatial_dims", [1, 2])
def test_every_downsampling_runs_forward_and_backward(downsampling, spatial_dims):
    strides = (1, 1, 2, 2, 2) if downsampling == "strided_conv" else (1.5, 1, 2.5, 2, 3)
    model = ResNet18(5, 2, downsampling, strides=strides, width=8, spatial_dims=spatial_dims)
    x = torch.randn(3, 2, *((32, 32) if spatial_dims == 2 else (400,)))
    out = model(x)
    assert out.shape == (3, 5)
    out.sum().backward()
    strides_now = learned_strides(model)
    assert (len(strides_now) == 4) == (downsampling == "diffstride")
    if downsampling == "diffstride":
        assert all(layer.stride.grad is not None and torch.isfinite(layer.stride.grad).all()
                   for layer in model.modules() if hasattr(layer, "dims")
                   and isinstance(getattr(layer, "stride", None), torch.Tensor))


@pytest.mark.parametrize("downsampling,strides", [
    ("strided_conv", (1, 1, 2, 2, 2)), ("strided_conv", (2, 1, 2, 1, 2)),
    ("spectral", (1, 1, 2, 2, 2)), ("spectral", (2, 1, (2, 4), 2, 1)),
    ("strided_conv", (1, 1, (1, 2), (2, 1), 2))])
def test_regularizer_equals_counted_macs_at_integer_strides(downsampling, strides):
    model = ResNet18(10, 3, downsampling, strides=strides, width=8).eval()
    x = torch.randn(1, 3, 64, 64)
    per_position = float(complexity_regularizer(model))
    assert per_position == pytest.approx(count_conv_macs(model, x) / (64 * 64), rel=1e-6)


def test_regularizer_by_hand_and_its_gradient():
    """Width 8, 32x32, strides (1, 1, 2, 2, 2), strided convolutions, per input position:
    stem 9*3*8; stage 1: 4 convs 9*8*8; stage s > 1 at 1/4^(s-1): conv1 9*ci*co, shortcut
    ci*co, conv2 and block 2 3 * 9*co*co."""
    expected = 9 * 3 * 8 + 4 * 9 * 8 * 8
    for stage, (ci, co) in enumerate([(8, 16), (16, 32), (32, 64)], start=1):
        expected += (9 * ci * co + ci * co + 3 * 9 * co * co) / 4 ** stage
    strided = ResNet18(10, 3, width=8)
    assert float(complexity_regularizer(strided)) == pytest.approx(expected)
    assert count_conv_macs(strided, torch.randn(2, 3, 32, 32)) == pytest.approx(expected * 1024)
    diff = ResNet18(10, 3, "diffstride", width=8)
    cost = complexity_regularizer(diff)  # before any forward: the initial integer strides
    assert float(cost.detach()) == pytest.approx(
        float(complexity_regularizer(ResNet18(10, 3, "spectral", width=8))))
    cost.backward()
    for name, layer in diff.named_modules():
        if name.endswith("pool") and hasattr(layer, "stride"):
            assert (layer.stride.grad < 0).all()  # larger strides, cheaper network


def test_learned_strides_names_every_diffstride_layer():
    model = ResNet18(10, 3, "diffstride", strides=(1, 1, (2, 3), 2, 2), width=8)
    names = learned_strides(model)
    assert list(names) == ["stem_downsample.pool", "blocks.2.downsample.pool",
                           "blocks.4.downsample.pool", "blocks.6.downsample.pool"]
    assert names["blocks.2.downsample.pool"] == pytest.approx((2.0, 3.0))


def test_errors():
    with pytest.raises(ValueError, match="downsampling must be one of"):
        ResNet18(10, downsampling="maxpool")
    with pytest.raises(ValueError, match="strided convolutions need integer strides"):
        ResNet18(10, strides=(1, 1, 1.5, 2, 2))
    with pytest.raises(ValueError, match="stage 1 .* stride must be 1"):
        ResNet18(10, strides=(1, 2, 2, 2, 2))
    with pytest.raises(ValueError, match="strides must give 5 strides"):
        ResNet18(10, strides=(1, 2, 2))
    with pytest.raises(ValueError, match="each stride must be a number >= 1"):
        ResNet18(10, downsampling="spectral", strides=(1, 1, 0.5, 2, 2))
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        ResNet18(0)
    with pytest.raises(ValueError, match="spatial_dims must be 1 or 2"):
        ResNet18(10, spatial_dims=3)
    with pytest.raises(ValueError, match=r"x must be \(batch, channels, H, W\)"):
        ResNet18(10, width=8)(torch.randn(3, 32, 32))
    with pytest.raises(TypeError, match="has no complexity_terms"):
        complexity_regularizer(nn.Linear(3, 4))
