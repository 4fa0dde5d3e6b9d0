"""Fixtures for the whole suite."""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Run torch on one thread: the suite runs on 2-core machines next to other work, where two threads
    contend (much slower); no test depends on the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
