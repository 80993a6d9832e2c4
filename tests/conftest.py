import os

import pytest
import torch

# Tests are sized for the 2-core CI machine; keep torch from oversubscribing it.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.fixture(autouse=True)
def _seed_global_rng():
    """Tests that draw from the global generator see the same numbers in any order."""
    torch.manual_seed(0)
