import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """The codec, tokenizers and stages tested here are tiny: one thread runs them fastest."""
