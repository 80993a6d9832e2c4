import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """These tests run many tiny tensor operations (unrolled solvers, Sinkhorn on small
    rows): one thread is faster than two and, unlike two, not slowed by a busy machine
    (each parallel region would wait for a core)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
