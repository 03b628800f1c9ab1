"""Trainer tests run on one thread: the machine is small and shared, and CPU results are
only bit-for-bit reproducible for a fixed thread count."""

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
