"""Shared test fixtures and paths."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
SEEDS = ["lenet", "alexnet", "vgg11", "nin", "googlenet", "resnet18", "densenet"]

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="module")
def two_threads() -> Iterator[None]:
    """Run at most two intra-op threads, as on the 2-core CI box; restore afterwards.

    Modules that run models use it with ``pytestmark = pytest.mark.usefixtures("two_threads")``;
    torch is imported here only when such a module asks, so static-pipeline tests stay torch-free.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(min(2, before))
    yield
    torch.set_num_threads(before)
