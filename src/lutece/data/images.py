"""Offline image classification data at 32x32 for the DiffStride experiment.

* :func:`digits_32`: scikit-learn's bundled handwritten digits (1797 grey 8x8 images, 10
  classes; the UCI optical digits test set), upsampled to 32x32 bilinearly and
  standardized: a real data set that needs no download.
* :func:`shape_textures`: seeded 32x32 images of a shape (disk, square, triangle, ring)
  filled with a grating that runs horizontally or vertically at 6-11 cycles per image, on
  noise: 8 classes (shape x grating orientation). The orientation lives at high spatial
  frequencies, so a network that downsamples too early loses it (aliasing), which is what
  DiffStride's learnable strides are meant to avoid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["ImageSet", "digits_32", "shape_textures", "SHAPES"]

SHAPES = ("disk", "square", "triangle", "ring")


@dataclass(frozen=True)
class ImageSet:
    """images: (n, 1, 32, 32) float32, standardized; labels: (n,) int64."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def split(self, train_fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
        """A seeded random split into (train, test)."""
        order = torch.randperm(len(self.labels), generator=torch.Generator().manual_seed(seed))
        cut = int(round(train_fraction * len(order)))
        parts = order[:cut], order[cut:]
        return tuple(ImageSet(self.images[p], self.labels[p], self.class_names)
                     for p in parts)


def _standardize(images: torch.Tensor) -> torch.Tensor:
    return (images - images.mean()) / images.std()


def digits_32() -> ImageSet:
    """scikit-learn's digits, (1797, 1, 32, 32), bilinear upsampling of the 8x8 images."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    images = torch.nn.functional.interpolate(small, size=(32, 32), mode="bilinear",
                                             align_corners=False)
    return ImageSet(_standardize(images), torch.tensor(digits.target, dtype=torch.int64),
                    [str(d) for d in range(10)])


def shape_textures(num_images: int, seed: int, size: int = 32) -> ImageSet:
    """``num_images`` seeded images of the 8 shape x grating classes (see the module
    docstring), labels balanced in blocks of 8."""
    if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
        raise ValueError(f"shape_textures: num_images must be an int >= 1, got {num_images!r}")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    images = np.empty((num_images, size, size), dtype=np.float32)
    labels = np.concatenate([rng.permutation(8) for _ in range(-(-num_images // 8))])
    labels = labels[:num_images]
    for i, label in enumerate(labels):
        shape, vertical = SHAPES[label // 2], bool(label % 2)
        cy, cx = rng.uniform(0.35, 0.65, size=2) * size
        radius = rng.uniform(0.22, 0.32) * size
        dy, dx = yy - cy, xx - cx
        if shape == "disk":
            inside = dy ** 2 + dx ** 2 <= radius ** 2
        elif shape == "square":
            inside = np.maximum(np.abs(dy), np.abs(dx)) <= radius * 0.85
        elif shape == "triangle":
            inside = (dy <= radius * 0.7) & (np.abs(dx) <= (dy + radius) * 0.6)
        else:
            distance = np.sqrt(dy ** 2 + dx ** 2)
            inside = (distance <= radius) & (distance >= radius * 0.55)
        cycles = rng.uniform(6.0, 11.0)
        phase = rng.uniform(0, 2 * np.pi)
        coordinate = (xx if vertical else yy) / size
        grating = 0.5 + 0.5 * np.cos(2 * np.pi * cycles * coordinate + phase)
        image = inside * (0.4 + 0.6 * grating) + rng.normal(0.0, 0.25, size=(size, size))
        images[i] = image
    tensor = _standardize(torch.from_numpy(images)[:, None])
    names = [f"{shape}, {'vertical' if v else 'horizontal'} grating" for shape in SHAPES
             for v in (False, True)]
    return ImageSet(tensor, torch.from_numpy(labels.astype(np.int64)), names)
