"""Pre-activation ResNet-18 with pluggable downsampling (strided convolutions, spectral
pooling or DiffStride), for images (2-D) and audio features or waveforms (1-D).

The CIFAR variant of He, Zhang, Ren & Sun, "Identity Mappings in Deep Residual Networks"
(ECCV 2016): a 3x3 stem, four stages of two pre-activation blocks (BN -> ReLU -> conv ->
BN -> ReLU -> conv, plus the shortcut) with ``width`` x (1, 2, 4, 8) channels, a final
BN -> ReLU, global average pooling and a linear classifier. ``strides`` gives the stem's and
each stage's downsampling (default (1, 1, 2, 2, 2), as the DiffStride paper's CIFAR runs).

As in DiffStride's reference ResNet (Riad et al., ICLR 2022), the pooling variants keep
every convolution at stride 1 and downsample after the stem's convolution and after the
first convolution of stages 2-4, whose 1x1 shortcut goes through the *same* pooling layer
(one stride per stage); stage 1 never downsamples. ``"strided_conv"`` puts the stride in
those convolutions instead.

Every model records its convolutions' costs for
:func:`~lutece.nn.complexity.complexity_regularizer`: for convolution l, C_l = its
multiply-accumulates per output position (k^d C_in C_out), and the downsampling layers
that precede its output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .diffstride import DiffStride1d, DiffStride2d, SpectralPooling1d, SpectralPooling2d

__all__ = ["ResNet18", "DOWNSAMPLING"]

DOWNSAMPLING = ("strided_conv", "spectral", "diffstride")


class _FixedStride(nn.Module):
    """The stride of a strided convolution, for the complexity bookkeeping only."""

    def __init__(self, stride: tuple[float, ...]) -> None:
        super().__init__()
        self.fixed = stride

    @property
    def strides(self) -> tuple[float, ...]:
        return self.fixed


def _layers(spatial_dims: int):
    if spatial_dims == 2:
        return nn.Conv2d, nn.BatchNorm2d, DiffStride2d, SpectralPooling2d, nn.AdaptiveAvgPool2d
    return nn.Conv1d, nn.BatchNorm1d, DiffStride1d, SpectralPooling1d, nn.AdaptiveAvgPool1d


class _Downsample(nn.Module):
    """One stage's downsampling for the pooling variants (spectral pooling at stride 1 passes
    its input through; DiffStride stays learnable from any initial stride)."""

    def __init__(self, kind: str, stride: tuple[float, ...], spatial_dims: int,
                 smoothness: float) -> None:
        super().__init__()
        _, _, diff, spectral, _ = _layers(spatial_dims)
        self.kind = kind
        if kind == "diffstride":
            self.pool = diff(stride if spatial_dims == 2 else stride[0], smoothness)
        else:
            self.pool = spectral(stride if spatial_dims == 2 else stride[0])

    @property
    def strides(self) -> tuple[float, ...]:
        return self.pool.strides if self.kind == "diffstride" else self.pool.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


class _PreActBlock(nn.Module):
    def __init__(self, inputs: int, outputs: int, stride: tuple[float, ...], kind: str,
                 spatial_dims: int, smoothness: float, downsamples: bool) -> None:
        super().__init__()
        conv, norm, *_ = _layers(spatial_dims)
        self.norm1, self.norm2 = norm(inputs), norm(outputs)
        conv_stride = 1
        self.downsample: nn.Module | None = None
        if downsamples and kind == "strided_conv":
            conv_stride = tuple(int(s) for s in stride) if spatial_dims == 2 else int(stride[0])
            self.downsample = _FixedStride(tuple(float(s) for s in stride))
        elif downsamples:
            self.downsample = _Downsample(kind, stride, spatial_dims, smoothness)
        self.conv1 = conv(inputs, outputs, 3, conv_stride, 1, bias=False)
        self.conv2 = conv(outputs, outputs, 3, 1, 1, bias=False)
        self.shortcut = (conv(inputs, outputs, 1, conv_stride, bias=False)
                         if downsamples or inputs != outputs else None)
        self.pools = isinstance(self.downsample, _Downsample)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.norm1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        if self.pools:
            out = self.downsample(out)
            shortcut = self.downsample(shortcut)
        # The pooling layer maps the equal-sized conv1 and shortcut outputs to equal sizes;
        # a strided 3x3 (padding 1) and 1x1 convolution also agree on every input size.
        return self.conv2(torch.relu(self.norm2(out))) + shortcut


class ResNet18(nn.Module):
    """Pre-activation ResNet-18 with ``downsampling`` in {"strided_conv", "spectral",
    "diffstride"}.

    Args:
        num_classes: outputs of the linear classifier.
        in_channels: input channels (3 for RGB, 1 for a spectrogram or a waveform).
        downsampling: how the stem and stages 2-4 downsample.
        strides: 5 strides (stem, stage 1..4); each a number or, in 2-D, a (height, width)
            pair. Strided convolutions need integers; stage 1 must be 1.
        width: channels of the stem and stage 1 (64 in the standard network).
        spatial_dims: 2 for images ``(batch, C, H, W)``, 1 for ``(batch, C, T)``.
        smoothness: DiffStride's R.

    Forward: ``(batch, in_channels, *spatial)`` -> logits ``(batch, num_classes)``.
    """

    def __init__(self, num_classes: int, in_channels: int = 3,
                 downsampling: str = "strided_conv",
                 strides: Sequence[float | Sequence[float]] = (1, 1, 2, 2, 2),
                 width: int = 64, spatial_dims: int = 2, smoothness: float = 4.0) -> None:
        super().__init__()
        fn = "ResNet18"
        if downsampling not in DOWNSAMPLING:
            raise ValueError(f"{fn}: downsampling must be one of {list(DOWNSAMPLING)}, got "
                             f"{downsampling!r}")
        if spatial_dims not in (1, 2):
            raise ValueError(f"{fn}: spatial_dims must be 1 or 2, got {spatial_dims!r}")
        for name, value in (("num_classes", num_classes), ("in_channels", in_channels),
                            ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{fn}: {name} must be a positive int, got {value!r}")
        strides = list(strides)
        if len(strides) != 5:
            raise ValueError(f"{fn}: strides must give 5 strides (stem, stage 1..4), got "
                             f"{len(strides)}")
        parsed = []
        for value in strides:
            pair = tuple(value) if isinstance(value, (tuple, list)) else (value,) * spatial_dims
            if len(pair) != spatial_dims or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 1
                    for v in pair):
                raise ValueError(f"{fn}: each stride must be a number >= 1"
                                 f"{' or a (height, width) pair' if spatial_dims == 2 else ''}"
                                 f", got {value!r}")
            if downsampling == "strided_conv" and any(float(v) != int(v) for v in pair):
                raise ValueError(f"{fn}: strided convolutions need integer strides, got "
                                 f"{value!r}; 'spectral' and 'diffstride' take fractions")
            parsed.append(tuple(float(v) for v in pair))
        if any(v != 1.0 for v in parsed[1]):
            raise ValueError(f"{fn}: stage 1 keeps the stem's resolution (identity "
                             f"shortcuts); its stride must be 1, got {strides[1]!r}")
        self.downsampling = downsampling
        self.spatial_dims = spatial_dims
        self.strides_init = tuple(parsed)
        conv, norm, _, _, average = _layers(spatial_dims)
        stem_stride = parsed[0]
        if downsampling == "strided_conv":
            conv_stride = tuple(int(s) for s in stem_stride)
            self.stem = conv(in_channels, width, 3,
                             conv_stride if spatial_dims == 2 else conv_stride[0], 1,
                             bias=False)
            self.stem_downsample: nn.Module = _FixedStride(stem_stride)
            self._stem_pools = False
        else:
            self.stem = conv(in_channels, width, 3, 1, 1, bias=False)
            self.stem_downsample = _Downsample(downsampling, stem_stride, spatial_dims,
                                               smoothness)
            self._stem_pools = True
        channels = [width, width, 2 * width, 4 * width, 8 * width]
        blocks = []
        for stage in range(1, 5):
            first = _PreActBlock(channels[stage - 1], channels[stage], parsed[stage],
                                 downsampling, spatial_dims, smoothness,
                                 downsamples=stage > 1)
            second = _PreActBlock(channels[stage], channels[stage], (1.0,) * spatial_dims,
                                  downsampling, spatial_dims, smoothness, downsamples=False)
            blocks += [first, second]
        self.blocks = nn.Sequential(*blocks)
        self.norm = norm(channels[-1])
        self.pool = average(1)
        self.classifier = nn.Linear(channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != self.spatial_dims + 2:
            layout = "H, W" if self.spatial_dims == 2 else "T"
            raise ValueError(f"ResNet18: x must be (batch, channels, {layout}), got shape "
                             f"{tuple(x.shape)}")
        out = self.stem(x)
        if self._stem_pools:
            out = self.stem_downsample(out)
        out = self.blocks(out)
        out = torch.relu(self.norm(out))
        return self.classifier(self.pool(out).flatten(1))

    def complexity_terms(self) -> list[tuple[float, list[nn.Module]]]:
        """(C_l, the downsampling layers before conv l's output) for every convolution, in
        order; each layer exposes ``strides`` (and DiffStride a ``stride`` parameter)."""
        before: list[nn.Module] = [self.stem_downsample]
        # the stem convolution runs before its pooling layer, or is strided itself
        terms = [(self._macs(self.stem), [] if self._stem_pools else list(before))]
        for block in self.blocks:
            entering = list(before)
            if block.downsample is not None:
                before = before + [block.downsample]
            # conv1 and the shortcut: at the block's input resolution when a pooling layer
            # follows them, at the output resolution when they are strided themselves
            conv1_before = entering if block.pools else before
            terms.append((self._macs(block.conv1), list(conv1_before)))
            if block.shortcut is not None:
                terms.append((self._macs(block.shortcut), list(conv1_before)))
            terms.append((self._macs(block.conv2), list(before)))
        return terms

    @staticmethod
    def _macs(conv: nn.Module) -> float:
        kernel = 1
        for k in conv.kernel_size:
            kernel *= k
        return float(kernel * conv.in_channels * conv.out_channels // conv.groups)
