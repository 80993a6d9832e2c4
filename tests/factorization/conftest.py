import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """These tests run many tiny tensor operations (unrolled solvers, Sinkhorn on small
    rows): one thread is faster than two and, unlike two, not slowed by a busy machine
    (each parallel region would wait for a core)."""
