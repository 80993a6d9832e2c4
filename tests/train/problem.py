"""A tiny regression problem shared by the training-loop tests."""

import torch
from torch.utils.data import TensorDataset


def make_dataset(num_examples: int = 96) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(num_examples, 5, generator=g)
    y = x @ torch.randn(5, 1, generator=g) + 0.1 * torch.randn(num_examples, 1, generator=g)
    return TensorDataset(x, y)


def make_model(dropout: float = 0.2) -> torch.nn.Module:
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(),
                               torch.nn.Dropout(dropout), torch.nn.Linear(16, 1))


def mse_loss(model, batch):
    x, y = batch
    return torch.nn.functional.mse_loss(model(x), y)
