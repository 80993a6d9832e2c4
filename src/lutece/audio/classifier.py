"""Audio classification with a pluggable frontend: frontend -> 2-D CNN backbone -> one linear
head per task, the setup of the LEAF paper's experiments (Zeghidour et al., ICLR 2021,
Sec. 4: the same EfficientNet-B0 backbone and budget behind every frontend; multi-task
models share the frontend and backbone, each task has its own head).

Backbones:
- ``"efficientnet_b0-lite"``: EfficientNet-B0's architecture (Tan & Le, ICML 2019: stem,
  inverted-residual MBConv blocks with squeeze-and-excitation, SiLU) at reduced width and
  depth for CPU budgets (``width`` and ``depth`` multipliers, both 0.25 by default:
  0.11 M parameters instead of 4 M; one block per stage).
- ``"cnn"``: LEAF's reference ``ConvNet`` shape, blocks of (3x1 conv, 1x3 conv, batch norm,
  ReLU) with max pooling, narrowed (widths 24-96 by default, 0.11 M parameters; 5-7x
  faster than the EfficientNet on CPU, where depthwise convolutions are slow).

Both start with a batch normalization of the frontend's output (one scalar mean and
variance), so frontends with different output scales meet the same backbone on equal terms,
and end with global max pooling over frequency and time (as LEAF's ``AudioClassifier``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn
from torch.utils.data import Dataset

__all__ = ["AudioClassifier", "MultiTaskDataset", "multitask_loss", "BACKBONES"]

# EfficientNet-B0 stages: (expansion, channels, repeats, stride, kernel)
_B0_STAGES = [(1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3),
              (6, 112, 3, 1, 5), (6, 192, 4, 2, 5), (6, 320, 1, 1, 3)]


def _scaled(channels: int, width: float) -> int:
    return max(8, int(math.ceil(channels * width / 8) * 8))


class _SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(nn.functional.silu(self.reduce(scale))))


class _MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk -> squeeze-excite -> 1x1 project."""

    def __init__(self, inputs: int, outputs: int, expansion: int, stride: int,
                 kernel: int) -> None:
        super().__init__()
        hidden = inputs * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [nn.Conv2d(inputs, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
                       nn.SiLU()]
        layers += [nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden,
                             bias=False), nn.BatchNorm2d(hidden), nn.SiLU(),
                   _SqueezeExcite(hidden, max(1, inputs // 4)),
                   nn.Conv2d(hidden, outputs, 1, bias=False), nn.BatchNorm2d(outputs)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and inputs == outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


def efficientnet_b0_lite(width: float = 0.25, depth: float = 0.25) -> tuple[nn.Module, int]:
    """EfficientNet-B0 scaled by ``width`` (channels) and ``depth`` (repeats per stage);
    returns (feature extractor, output channels)."""
    stem = _scaled(32, width)
    layers: list[nn.Module] = [nn.Conv2d(1, stem, 3, 2, 1, bias=False), nn.BatchNorm2d(stem),
                               nn.SiLU()]
    channels = stem
    for expansion, out, repeats, stride, kernel in _B0_STAGES:
        out = _scaled(out, width)
        for i in range(max(1, int(math.ceil(repeats * depth)))):
            layers.append(_MBConv(channels, out, expansion, stride if i == 0 else 1, kernel))
            channels = out
    head = _scaled(1280, width / 2)
    layers += [nn.Conv2d(channels, head, 1, bias=False), nn.BatchNorm2d(head), nn.SiLU()]
    return nn.Sequential(*layers), head


def leaf_convnet(widths: tuple[int, ...] = (24, 48, 96, 96)) -> tuple[nn.Module, int]:
    """LEAF's reference ConvNet shape: per block a 3x1 then a 1x3 convolution, batch norm,
    ReLU; 2x2 max pooling after the first block and every second one."""
    layers: list[nn.Module] = []
    channels = 1
    for i, width in enumerate(widths):
        layers += [nn.Conv2d(channels, width, (3, 1), padding=(1, 0)),
                   nn.Conv2d(width, width, (1, 3), padding=(0, 1), bias=False),
                   nn.BatchNorm2d(width), nn.ReLU()]
        if i == 0 or i % 2 == 1:
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        channels = width
    return nn.Sequential(*layers), channels


BACKBONES = {"efficientnet_b0-lite": efficientnet_b0_lite, "cnn": leaf_convnet}


class AudioClassifier(nn.Module):
    """frontend -> backbone -> one linear head per task.

    Args:
        frontend: a module mapping ``(batch, samples)`` to ``(batch, channels, frames)``
            (any of :mod:`lutece.audio.frontends`).
        num_classes: an int (one task) or ``{task: num_classes}`` (one head per task).
        backbone: ``"efficientnet_b0-lite"`` or ``"cnn"``.
        dropout: before the heads.

    Forward: waveform ``(batch, samples)`` or ``(batch, 1, samples)`` -> logits
    ``(batch, num_classes)`` for one task, or ``{task: logits}``; ``task=`` computes one head.
    """

    def __init__(self, frontend: nn.Module, num_classes: int | Mapping[str, int],
                 backbone: str = "efficientnet_b0-lite", dropout: float = 0.1) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(
                f"AudioClassifier: backbone must be one of {sorted(BACKBONES)}, got {backbone!r}"
            )
        if isinstance(num_classes, Mapping):
            tasks = dict(num_classes)
            self.single_task = False
        else:
            tasks = {"default": num_classes}
            self.single_task = True
        if not tasks:
            raise ValueError("AudioClassifier: num_classes must name at least one task")
        for task, count in tasks.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 2:
                raise ValueError(
                    f"AudioClassifier: task {task!r} needs an int number of classes >= 2, "
                    f"got {count!r}"
                )
        self.frontend = frontend
        self.input_norm = nn.BatchNorm2d(1)
        self.backbone_name = backbone
        self.backbone, features = BACKBONES[backbone]()
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({task: nn.Linear(features, count)
                                    for task, count in tasks.items()})

    @property
    def tasks(self) -> list[str]:
        return list(self.heads)

    def embed(self, waveform: torch.Tensor) -> torch.Tensor:
        """``(batch, features)`` after global max pooling."""
        features = self.frontend(waveform).unsqueeze(1)
        return self.backbone(self.input_norm(features)).amax(dim=(2, 3))

    def forward(self, waveform: torch.Tensor, task: str | None = None
                ) -> torch.Tensor | dict[str, torch.Tensor]:
        embedding = self.dropout(self.embed(waveform))
        if task is not None:
            if task not in self.heads:
                raise KeyError(f"AudioClassifier: unknown task {task!r}; tasks: {self.tasks}")
            return self.heads[task](embedding)
        if self.single_task:
            return self.heads["default"](embedding)
        return {name: head(embedding) for name, head in self.heads.items()}


class MultiTaskDataset(Dataset):
    """Concatenation of one dataset per task; items are ``(wave, label, task_index)`` with
    ``task_index`` into ``tasks`` (the order of the mapping)."""

    def __init__(self, datasets: Mapping[str, Dataset]) -> None:
        if not datasets:
            raise ValueError("MultiTaskDataset: datasets must name at least one task")
        self.tasks = list(datasets)
        self.datasets = [datasets[t] for t in self.tasks]
        self.offsets = [0]
        for ds in self.datasets:
            self.offsets.append(self.offsets[-1] + len(ds))

    def __len__(self) -> int:
        return self.offsets[-1]

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"MultiTaskDataset: index {index} out of range [0, {len(self)})")
        task = next(t for t in range(len(self.datasets)) if index < self.offsets[t + 1])
        wave, label = self.datasets[task][index - self.offsets[task]]
        return wave, label, torch.tensor(task)


def multitask_loss(model: AudioClassifier, batch: tuple, tasks: list[str]
                   ) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean cross-entropy of each example on its own task's head (the shared frontend and
    backbone run once per batch); returns (loss, {task accuracy})."""
    wave, label, task_index = batch
    logits = model(wave)
    if isinstance(logits, torch.Tensor):
        logits = {tasks[0]: logits}
    total = wave.new_zeros(())
    metrics: dict[str, float] = {}
    for t, name in enumerate(tasks):
        mask = task_index == t
        if bool(mask.any()):
            scores = logits[name][mask]
            total = total + nn.functional.cross_entropy(scores, label[mask], reduction="sum")
            metrics[f"acc_{name}"] = float((scores.argmax(-1) == label[mask]).float().mean())
    return total / len(label), metrics
