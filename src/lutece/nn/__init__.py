"""Reusable layers: DiffStride (learnable strides, Riad et al. ICLR 2022), fixed spectral
pooling, a pre-activation ResNet-18 with pluggable downsampling, and DiffStride's
complexity regularizer."""

from .complexity import complexity_regularizer, count_conv_macs, learned_strides
from .diffstride import (
    DiffStride1d,
    DiffStride2d,
    SpectralPooling1d,
    SpectralPooling2d,
    diffstride,
    spectral_pooling,
)
from .resnet import DOWNSAMPLING, ResNet18

__all__ = ["SpectralPooling1d", "SpectralPooling2d", "DiffStride1d", "DiffStride2d",
           "spectral_pooling", "diffstride", "ResNet18", "DOWNSAMPLING",
           "complexity_regularizer", "learned_strides", "count_conv_macs"]
