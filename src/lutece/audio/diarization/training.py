"""Training DIVE (and the PIT baseline) on recordings with reference RTTMs.

Windows of ``chunk_seconds`` are cut from each recording at seeded offsets; their labels
are the reference rasterised at the model's 50 Hz frame rate, speakers ordered by first
speech inside the window (the order DIVE's selector is teacher-forced in). Training runs
through :func:`lutece.train.train` (checkpoints, resumption, progress bar, torchrun/DDP).
A checkpoint (:func:`save_diarizer` / :func:`load_diarizer`) stores the model config (with
its frontend), the weights and how it was trained.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ...train import TrainConfig, atomic_save, load_tagged, seed_everything, train
from .annotation import Annotation, annotation_to_frames
from .dive import DIVE, DiveConfig, PITDiarizer, build_model, dive_loss, pit_loss

__all__ = ["DiarizationChunks", "DiarizationTrainConfig", "train_diarizer", "save_diarizer",
           "load_diarizer", "recordings_from_data_dir", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "lutece-diarization/1"

Recording = tuple[np.ndarray, Annotation]


class DiarizationChunks(Dataset):
    """Fixed-length training windows cut from ``recordings`` ((samples,) wave at the model's
    rate, reference annotation) pairs.

    Item ``i``: ``{"wave": (samples,) float32, "labels": (max_speakers, frames) float32,
    "valid": (frames,) bool}`` with ``samples = chunk_seconds * sample_rate`` (shorter
    recordings are zero-padded and the padding marked invalid). ``num_chunks`` windows
    are drawn (recording uniformly, offset uniformly, on the 20 ms frame grid) from
    ``numpy.random.default_rng([seed, i])``.
    """

    def __init__(self, recordings: Sequence[Recording], config: DiveConfig, *,
                 chunk_seconds: float = 8.0, num_chunks: int = 1000, seed: int = 0) -> None:
        if not recordings:
            raise ValueError("DiarizationChunks: recordings is empty")
        if not chunk_seconds > 0:
            raise ValueError(f"DiarizationChunks: chunk_seconds must be > 0, "
                             f"got {chunk_seconds!r}")
        self.config = config
        self.hop = config.samples_per_frame
        self.frames = int(math.ceil(chunk_seconds * config.frame_rate))
        self.samples = self.frames * self.hop
        self.num_chunks = num_chunks
        self.seed = seed
        self.waves = [np.asarray(wave, dtype=np.float32) for wave, _ in recordings]
        self.labels = []
        for wave, annotation in recordings:
            frames = int(math.ceil(len(wave) / self.hop))
            activity, _ = annotation_to_frames(annotation, frames, config.frame_rate)
            self.labels.append(activity.T.copy())  # (speakers, frames)

    def __len__(self) -> int:
        return self.num_chunks

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        which = int(rng.integers(len(self.waves)))
        wave, labels = self.waves[which], self.labels[which]
        total_frames = labels.shape[1]
        start = int(rng.integers(0, max(total_frames - self.frames, 0) + 1))
        piece = wave[start * self.hop:start * self.hop + self.samples]
        window = labels[:, start:start + self.frames]
        out_wave = np.zeros(self.samples, np.float32)
        out_wave[:len(piece)] = piece
        valid = np.zeros(self.frames, bool)
        valid[:window.shape[1]] = True
        active = np.flatnonzero(window.any(axis=1))
        first = [int(np.argmax(window[k])) for k in active]
        order = active[np.argsort(first, kind="stable")][:self.config.max_speakers]
        out_labels = np.zeros((self.config.max_speakers, self.frames), np.float32)
        out_labels[:len(order), :window.shape[1]] = window[order]
        return {"wave": torch.from_numpy(out_wave), "labels": torch.from_numpy(out_labels),
                "valid": torch.from_numpy(valid)}


@dataclass
class DiarizationTrainConfig:
    """How a diarizer is trained.

    Attributes:
        steps, batch_size, learning_rate, seed: the optimisation (AdamW, cosine decay
            after a 5 % warm-up).
        chunk_seconds: window length.
        collar: seconds excluded around reference turn boundaries in the loss (md-eval
            convention, +-collar); 0 disables the mask (the ablation).
        num_chunks: windows per pass over the data.
        device: ``"cpu"``, ``"auto"`` (CUDA when available; the local rank's under
            torchrun) or a torch device string.
    """

    steps: int = 1500
    batch_size: int = 16
    learning_rate: float = 2e-3
    chunk_seconds: float = 8.0
    collar: float = 0.25
    num_chunks: int = 20000
    seed: int = 0
    progress: bool = True
    checkpoint_dir: str | None = None
    device: str = "cpu"


def _collar_frames(collar: float, frame_rate: float) -> int:
    return int(round(collar * frame_rate))


def train_diarizer(recordings: Sequence[Recording], model_config: DiveConfig,
                   train_config: DiarizationTrainConfig, *, log=None) -> torch.nn.Module:
    """Train a DIVE (``model_config.kind == "dive"``) or PIT model on ``recordings``.

    Returns the trained model in eval mode, with ``model.training_config`` set to
    ``train_config``'s fields (saved by :func:`save_diarizer`)."""
    seed_everything(train_config.seed)
    model = build_model(model_config)
    dataset = DiarizationChunks(recordings, model_config, chunk_seconds=train_config.chunk_seconds,
                                num_chunks=max(train_config.num_chunks,
                                               train_config.batch_size),
                                seed=train_config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_config.learning_rate,
                                  weight_decay=1e-4)
    warmup = max(train_config.steps // 20, 1)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(train_config.steps - warmup, 1)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    collar_frames = _collar_frames(train_config.collar, model_config.frame_rate)

    def loss_fn(net, batch):
        if isinstance(getattr(net, "module", net), DIVE):  # DDP wraps the model
            output = net(batch["wave"], batch["labels"], batch["valid"])
            return dive_loss(output, batch["labels"], batch["valid"],
                             collar_frames=collar_frames)
        logits = net(batch["wave"])
        return pit_loss(logits, batch["labels"][:, :model_config.max_speakers],
                        batch["valid"], collar_frames=collar_frames)

    result = train(model, optimizer, dataset, loss_fn,
                   TrainConfig(max_steps=train_config.steps, batch_size=train_config.batch_size,
                               seed=train_config.seed, device=train_config.device,
                               checkpoint_dir=train_config.checkpoint_dir,
                               checkpoint_every=max(train_config.steps // 4, 1),
                               log_every=max(train_config.steps // 50, 1), grad_clip=5.0,
                               progress=train_config.progress),
                   scheduler=scheduler,
                   callbacks=[log] if log is not None else ())
    trained = result.model.cpu().eval()
    trained.training_config = train_config
    trained.history = result.history
    return trained


def save_diarizer(model: torch.nn.Module, path: str | os.PathLike, **extra) -> Path:
    """Write ``model`` (config with its frontend, weights, training config, ``extra``)
    atomically to ``path``."""
    if not isinstance(model, (DIVE, PITDiarizer)):
        raise TypeError(f"save_diarizer: model must be a DIVE or PITDiarizer, "
                        f"got {type(model).__name__}")
    training = getattr(model, "training_config", None)
    payload = {"format": CHECKPOINT_FORMAT, "config": model.config.to_dict(),
               "state_dict": model.state_dict(),
               "training": asdict(training) if training is not None else None, **extra}
    atomic_save(payload, path)
    return Path(path)


def load_diarizer(path: str | os.PathLike) -> torch.nn.Module:
    """The model saved by :func:`save_diarizer`, in eval mode on CPU."""
    payload = load_tagged("load_diarizer", path, CHECKPOINT_FORMAT, "diarization checkpoint",
                          hint="; train one with `lutece diarization train`")
    model = build_model(DiveConfig.from_dict(payload["config"]))
    model.load_state_dict(payload["state_dict"])
    return model.eval()


def recordings_from_data_dir(directory: str | os.PathLike, sample_rate: int = 16000
                             ) -> list[Recording]:
    """(wave, reference) pairs of a Kaldi-style data dir (``wav.scp`` + ``rttm``),
    resampled to ``sample_rate``; recordings without a reference are skipped."""
    from ..io import load
    from .formats import read_kaldi_data_dir

    data = read_kaldi_data_dir(directory)
    recordings = []
    for uri, wav_path in sorted(data.wavs.items()):
        if uri not in data.rttm:
            continue
        wave, _ = load(wav_path, sample_rate)
        recordings.append((wave[0].numpy(), data.rttm[uri]))
    if not recordings:
        raise ValueError(f"recordings_from_data_dir: no recording of '{directory}/wav.scp' has "
                         f"a reference in '{directory}/rttm'")
    return recordings
