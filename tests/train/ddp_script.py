"""Run by test_train.py under `torchrun --nproc_per_node=2`: trains the reference problem
and writes this rank's final parameters."""

import sys

import torch

from lutece.train import TrainConfig, train
from tests.train.problem import make_dataset, make_model, mse_loss

out_dir, batch_size = sys.argv[1], int(sys.argv[2])
model = make_model(dropout=0.0)
config = TrainConfig(max_steps=12, batch_size=batch_size, seed=3, progress=False,
                     checkpoint_dir=f"{out_dir}/ckpt", checkpoint_every=4, log_every=1)
result = train(model, torch.optim.SGD(model.parameters(), lr=0.1), make_dataset(), mse_loss,
               config)
rank = int(__import__("os").environ["RANK"])
torch.save({k: v.detach().clone() for k, v in result.model.state_dict().items()},
           f"{out_dir}/params_rank{rank}.pt")
