import os

import pytest
import torch

# Tests are sized for the 2-core CI machine; keep torch from oversubscribing it.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def one_thread():
    """One intra-op thread for the test, restored afterwards. For tests of many tiny tensor
    operations (small models, unrolled solvers): one thread is faster than two and, unlike
    two, not slowed by a busy machine (each parallel region would wait for a core)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.fixture(autouse=True)
def _seed_global_rng():
    """Tests that draw from the global generator see the same numbers in any order."""
    torch.manual_seed(0)
