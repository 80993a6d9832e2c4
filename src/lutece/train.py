"""The one training loop of lutece: seeding, device choice, progress, atomic checkpoints
with exact resume, JSONL metric logs, and DistributedDataParallel under ``torchrun``.

Exact resume: the data order of epoch e is a permutation drawn from a generator seeded with
(seed, e), the model's own randomness (dropout) comes from the global torch RNG seeded from
``seed`` and saved in every checkpoint, and a checkpoint is written only between optimizer
steps. A run interrupted and resumed therefore ends with bit-identical parameters to an
uninterrupted run with the same seed (tested).

Distributed: launched by ``torchrun --nproc_per_node=N``, every rank takes a disjoint
slice of each epoch's permutation (rank r takes positions r, r + N, ...), gradients are
averaged by DistributedDataParallel (gloo on CPU, nccl on GPU), and only rank 0 writes
checkpoints, logs and the progress bar.

Example:
    >>> config = TrainConfig(max_steps=1000, batch_size=64, checkpoint_dir="runs/x")
    >>> result = train(model, torch.optim.Adam(model.parameters()), dataset,
    ...                lambda model, batch: F.mse_loss(model(batch[0]), batch[1]), config)
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, default_collate
from tqdm.auto import tqdm

__all__ = [
    "TrainConfig",
    "TrainResult",
    "train",
    "seed_everything",
    "resolve_device",
    "atomic_save",
    "load_tagged",
    "distributed_context",
]

CHECKPOINT_NAME = "last.pt"
METRICS_NAME = "metrics.jsonl"

# loss_fn(model, batch) -> loss, or (loss, {name: float}) to log more than the loss.
LossFn = Callable[[torch.nn.Module, Any], "torch.Tensor | tuple[torch.Tensor, dict[str, float]]"]
StepCallback = Callable[[int, dict[str, float]], None]


@dataclass
class TrainConfig:
    """Everything that defines a run; stored in each checkpoint.

    Attributes:
        max_steps: optimizer steps to reach (a resumed run continues up to it).
        batch_size: examples per step and per process.
        seed: seeds the data order, the global torch/numpy/python RNGs and the model init
            if the model is built after :func:`seed_everything`.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:1"``.
        checkpoint_dir: where ``last.pt`` and ``metrics.jsonl`` go; None keeps nothing.
        checkpoint_every: steps between checkpoints (one is always written at the end).
        log_every: steps between JSONL log lines.
        grad_clip: max global gradient norm, or None.
        progress: show a tqdm bar (rank 0 only).
        drop_last: drop each epoch's incomplete last batch (keeps step sizes equal).
    """

    max_steps: int
    batch_size: int = 32
    seed: int = 0
    device: str = "auto"
    checkpoint_dir: str | None = None
    checkpoint_every: int = 100
    log_every: int = 10
    grad_clip: float | None = None
    progress: bool = True
    drop_last: bool = True

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "checkpoint_every", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig: {name} must be a positive int, got {value!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"TrainConfig: grad_clip must be > 0 or None, got {self.grad_clip}")


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained (unwrapped) model and its history."""

    model: torch.nn.Module
    steps: int
    resumed_from: int | None
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators (explicitly, once per run)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the global state is what we manage
    torch.manual_seed(seed)


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> the local CUDA device when there is one (``LOCAL_RANK`` under torchrun),
    else CPU; anything else is passed to ``torch.device``."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train: device {device!r} was asked for but CUDA is not available")
    return resolved


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save to a temporary file in the same folder, then rename: a reader (or a crash)
    never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, temporary)
    os.replace(temporary, path)


def load_tagged(fn: str, path: str | os.PathLike, expected_format: str, kind: str, *,
                hint: str = "") -> dict[str, Any]:
    """Read a dict saved with ``{"format": expected_format, ...}`` (the tag every lutece
    model or data file carries), on CPU.

    Raises:
        FileNotFoundError: ``"{fn}: no {kind} at '{path}'"``.
        ValueError: the file cannot be read by ``torch.load``, or it is not a dict with that
            tag (``"is not a lutece {kind}"``, then ``hint``, e.g. how to make one).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{fn}: no {kind} at '{path}'")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # noqa: BLE001 - one clear message for any unreadable file
        raise ValueError(f"{fn}: '{path}' is not a readable {kind} ({error})") from error
    if not isinstance(payload, dict) or payload.get("format") != expected_format:
        raise ValueError(f"{fn}: '{path}' is not a lutece {kind} (expected format "
                         f"{expected_format!r}){hint}")
    return payload


@dataclass(frozen=True)
class _Distributed:
    rank: int
    world_size: int
    initialized_here: bool


def distributed_context(device: torch.device,
                        timeout: datetime.timedelta | None = None) -> _Distributed:
    """Join the process group that torchrun describes in the environment, if any (gloo on
    CPU, nccl on CUDA; ``timeout`` for its collectives, torch's default when None)."""
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if world_size <= 1:
        return _Distributed(0, 1, False)
    initialized_here = False
    if not dist.is_initialized():
        options = {} if timeout is None else {"timeout": timeout}
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                **options)
        initialized_here = True
    return _Distributed(dist.get_rank(), dist.get_world_size(), initialized_here)


def _epoch_batches(
    num_examples: int, epoch: int, config: TrainConfig, rank: int, world_size: int
) -> list[torch.Tensor]:
    """Index batches of one epoch for one rank: a seeded permutation, sliced by rank."""
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
    order = torch.randperm(num_examples, generator=generator)
    usable = (num_examples // world_size) * world_size
    mine = order[:usable][rank::world_size]
    batches = list(torch.split(mine, config.batch_size))
    if config.drop_last and batches and len(batches[-1]) < config.batch_size:
        batches.pop()
    if not batches:
        raise ValueError(
            f"train: the dataset has {num_examples} examples, too few for one batch of "
            f"{config.batch_size} on each of {world_size} process(es)"
        )
    return batches


def _batches_from(
    dataset: Dataset, start_step: int, config: TrainConfig, dist_info: _Distributed,
    collate_fn: Callable[[list], Any],
) -> Iterator[tuple[int, Any]]:
    """(step, batch) pairs from ``start_step`` on, identical to an uninterrupted run."""
    num_examples = len(dataset)  # type: ignore[arg-type]
    steps_per_epoch = len(
        _epoch_batches(num_examples, 0, config, dist_info.rank, dist_info.world_size)
    )
    step = start_step
    epoch, offset = divmod(start_step, steps_per_epoch)
    while True:
        batches = _epoch_batches(num_examples, epoch, config, dist_info.rank,
                                 dist_info.world_size)
        for indices in batches[offset:]:
            yield step, collate_fn([dataset[int(i)] for i in indices])
            step += 1
        epoch += 1
        offset = 0


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(item, device) for item in batch)
    if isinstance(batch, dict):
        return {key: _to_device(value, device) for key, value in batch.items()}
    return batch


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(),  # noqa: NPY002
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _truncate_log(path: Path, last_step: int) -> None:
    """Drop log lines written after the checkpoint a run resumes from."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line)["step"] <= last_step]
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    temporary.write_text("".join(line + "\n" for line in kept))
    os.replace(temporary, path)


def train(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    dataset: Dataset,
    loss_fn: LossFn,
    config: TrainConfig,
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    collate_fn: Callable[[list], Any] = default_collate,
    callbacks: Sequence[StepCallback] = (),
) -> TrainResult:
    """Train ``model`` for ``config.max_steps`` optimizer steps, resuming if a checkpoint
    exists in ``config.checkpoint_dir``.

    Args:
        model: the module; moved to the run's device (and wrapped in DDP under torchrun).
            Build it after ``seed_everything(config.seed)`` for a reproducible init.
        optimizer: built on ``model.parameters()``.
        dataset: a map-style dataset (``__len__`` and ``__getitem__``).
        loss_fn: ``loss_fn(model, batch)`` -> scalar loss, or (loss, extra metrics).
        config: see :class:`TrainConfig`.
        scheduler: stepped after every optimizer step; its state is checkpointed.
        collate_fn: turns a list of examples into a batch.
        callbacks: ``callback(step, metrics)`` after every step (all ranks).

    Returns:
        :class:`TrainResult` with the unwrapped model.

    On KeyboardInterrupt a checkpoint of the last finished step is written before the
    exception propagates, so no finished work is lost.
    """
    if not hasattr(dataset, "__len__"):
        raise TypeError("train: dataset must be map-style (define __len__ and __getitem__)")
    device = resolve_device(config.device)
    dist_info = distributed_context(device)
    is_main = dist_info.rank == 0
    checkpoint_dir = Path(config.checkpoint_dir) if config.checkpoint_dir else None
    checkpoint_path = checkpoint_dir / CHECKPOINT_NAME if checkpoint_dir else None
    log_path = checkpoint_dir / METRICS_NAME if checkpoint_dir else None

    model.to(device)
    seed_everything(config.seed + dist_info.rank)
    start_step = 0
    resumed_from = None
    if checkpoint_path is not None and checkpoint_path.exists():
        checkpoint = torch.load(checkpoint_path, map_location=device, weights_only=False)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if scheduler is not None and checkpoint.get("scheduler") is not None:
            scheduler.load_state_dict(checkpoint["scheduler"])
        start_step = resumed_from = checkpoint["step"]
        _set_rng_state(checkpoint["rng"][min(dist_info.rank, len(checkpoint["rng"]) - 1)])
        if is_main and log_path is not None:
            _truncate_log(log_path, start_step)

    wrapped: torch.nn.Module = model
    if dist_info.world_size > 1:
        wrapped = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    saved_step = resumed_from  # step of the newest checkpoint on disk

    def save(step: int, rng: dict[str, Any]) -> None:
        nonlocal saved_step
        if checkpoint_path is None or step == saved_step:
            return
        saved_step = step
        states = [rng]
        if dist_info.world_size > 1:
            gathered: list[Any] = [None] * dist_info.world_size
            dist.all_gather_object(gathered, states[0])
            states = gathered
        if is_main:
            atomic_save({
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "step": step,
                "rng": states,
                "config": dataclasses.asdict(config),
                "world_size": dist_info.world_size,
            }, checkpoint_path)

    history: list[dict[str, float]] = []
    boundary_step, boundary_rng = start_step, _rng_state()
    started = time.perf_counter()
    finished_step = start_step
    bar = tqdm(total=config.max_steps, initial=start_step, desc="train", dynamic_ncols=True,
               disable=not (config.progress and is_main))
    log_file = None
    if log_path is not None and is_main:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = open(log_path, "a")  # noqa: SIM115 - closed in the finally below
    wrapped.train()
    try:
        if start_step < config.max_steps:
            for step, batch in _batches_from(dataset, start_step, config, dist_info, collate_fn):
                # The RNG state at the step boundary: what an interrupted step must restore.
                boundary_step, boundary_rng = step, _rng_state()
                batch = _to_device(batch, device)
                optimizer.zero_grad(set_to_none=True)
                output = loss_fn(wrapped, batch)
                loss, extra = output if isinstance(output, tuple) else (output, {})
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"train: the loss is {loss.item()} at step {step + 1}; the last "
                        f"checkpoint (step {finished_step}) is kept"
                    )
                loss.backward()
                if config.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                finished_step = step + 1
                loss_value = loss.detach()
                if dist_info.world_size > 1:
                    dist.all_reduce(loss_value)
                    loss_value /= dist_info.world_size
                metrics = {"step": finished_step, "loss": float(loss_value),
                           "lr": float(optimizer.param_groups[0]["lr"]),
                           **{k: float(v) for k, v in extra.items()}}
                history.append(metrics)
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.4g}")
                if log_file is not None and (finished_step % config.log_every == 0
                                             or finished_step == config.max_steps):
                    metrics_line = {**metrics, "seconds": time.perf_counter() - started}
                    log_file.write(json.dumps(metrics_line) + "\n")
                    log_file.flush()
                if finished_step % config.checkpoint_every == 0:
                    save(finished_step, _rng_state())
                for callback in callbacks:
                    callback(finished_step, metrics)
                if finished_step >= config.max_steps:
                    break
        save(finished_step, _rng_state())  # a no-op when this step is already saved
        if dist_info.world_size > 1:
            dist.barrier()  # no rank tears the group down while another still uses it
    except KeyboardInterrupt:
        if dist_info.world_size == 1:
            # collectives cannot be trusted mid-interrupt, so only single-process runs save
            save(finished_step,
                 boundary_rng if finished_step == boundary_step else _rng_state())
        raise
    finally:
        bar.close()
        if log_file is not None:
            log_file.close()
        if dist_info.initialized_here:
            # Free the DDP wrapper (its reducer holds the process group) before the group
            # itself: freeing it afterwards, as train's frame unwinds, sometimes hung gloo.
            del wrapped
            dist.destroy_process_group()
    return TrainResult(model=model, steps=finished_step, resumed_from=resumed_from,
                       history=history, seconds=time.perf_counter() - started)
