"""lutece.train: exact resume (bit-identical parameters), atomic checkpoints, JSONL logs,
error paths, and DistributedDataParallel under torchrun with gloo (2 processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lutece.train import TrainConfig, atomic_save, resolve_device, train

from .problem import make_dataset, make_model, mse_loss

REPO = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path | None, max_steps: int = 20, callbacks=(), lr_schedule=True):
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 7, 0.5) if lr_schedule else None
    config = TrainConfig(max_steps=max_steps, batch_size=8, seed=5, progress=False,
                         checkpoint_dir=str(tmp_path) if tmp_path else None,
                         checkpoint_every=5, log_every=1)
    return train(model, optimizer, make_dataset(), mse_loss, config, scheduler=scheduler,
                 callbacks=callbacks)


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_uninterrupted_runs_are_reproducible():
    assert torch.equal(_params(_run(None).model), _params(_run(None).model))


def test_loss_decreases_and_history_is_complete():
    result = _run(None, max_steps=120, lr_schedule=False)
    assert result.steps == 120 and len(result.history) == 120
    losses = [entry["loss"] for entry in result.history]
    assert sum(losses[-12:]) < 0.5 * sum(losses[:12])


class Interrupt(Exception):
    pass


def _interrupt_at(step_to_stop: int, exception: type[BaseException]):
    def callback(step, metrics):
        if step == step_to_stop:
            raise exception()
    return callback


@pytest.mark.parametrize("exception, resumes_from", [(KeyboardInterrupt, 13), (Interrupt, 10)])
def test_interrupted_and_resumed_run_matches_uninterrupted(tmp_path, exception, resumes_from):
    # Spans epoch boundaries (12 steps per epoch), a dropout layer and an LR schedule.
    reference = _params(_run(None).model)
    with pytest.raises(exception):
        _run(tmp_path, callbacks=[_interrupt_at(13, exception)])
    # KeyboardInterrupt saves the finished step; a crash falls back to the last periodic one.
    assert torch.load(tmp_path / "last.pt", weights_only=False)["step"] == resumes_from
    resumed = _run(tmp_path)
    assert resumed.resumed_from == resumes_from
    assert torch.equal(_params(resumed.model), reference)
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").open()]
    assert steps == list(range(1, 21))  # lines after the checkpoint were not duplicated


def test_finished_run_is_not_retrained(tmp_path):
    first = _run(tmp_path, max_steps=6)
    again = _run(tmp_path, max_steps=6)
    assert again.resumed_from == 6 and again.history == []
    assert torch.equal(_params(first.model), _params(again.model))


def test_atomic_save_leaves_no_temporary_file(tmp_path):
    atomic_save({"a": torch.ones(3)}, tmp_path / "sub" / "x.pt")
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["x.pt"]
    assert torch.equal(torch.load(tmp_path / "sub" / "x.pt")["a"], torch.ones(3))


def test_non_finite_loss_stops_with_a_clear_message(tmp_path):
    model = make_model()
    config = TrainConfig(max_steps=5, batch_size=8, progress=False,
                         checkpoint_dir=str(tmp_path))
    with pytest.raises(FloatingPointError, match="loss is nan at step 1"):
        train(model, torch.optim.SGD(model.parameters(), lr=0.1), make_dataset(),
              lambda m, b: mse_loss(m, b) * float("nan"), config)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"max_steps": 0}, "max_steps must be a positive int"),
     ({"max_steps": 5, "batch_size": 2.5}, "batch_size must be a positive int"),
     ({"max_steps": 5, "grad_clip": -1.0}, "grad_clip must be > 0")],
)
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_dataset_too_small_and_device_errors():
    model = make_model()
    config = TrainConfig(max_steps=2, batch_size=500, progress=False)
    with pytest.raises(ValueError, match="too few for one batch"):
        train(model, torch.optim.SGD(model.parameters(), lr=0.1), make_dataset(), mse_loss,
              config)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    assert resolve_device("auto").type in ("cpu", "cuda")


def test_torchrun_two_processes_match_one_process_with_twice_the_batch(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", str(REPO / "tests" / "train" / "ddp_script.py"),
               str(tmp_path), "4"]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stderr[-3000:]
    rank0 = torch.load(tmp_path / "params_rank0.pt")
    rank1 = torch.load(tmp_path / "params_rank1.pt")
    # One process, batch 8: the union of the two ranks' batches of 4 at every step.
    model = make_model(dropout=0.0)
    config = TrainConfig(max_steps=12, batch_size=8, seed=3, progress=False)
    single = train(model, torch.optim.SGD(model.parameters(), lr=0.1), make_dataset(),
                   mse_loss, config).model.state_dict()
    for name, value in single.items():
        torch.testing.assert_close(rank0[name], rank1[name], rtol=0, atol=0)
        torch.testing.assert_close(rank0[name], value, rtol=1e-5, atol=1e-6)
    checkpoint = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=False)
    assert checkpoint["step"] == 12 and checkpoint["world_size"] == 2
    assert len(checkpoint["rng"]) == 2
