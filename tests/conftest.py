"""Shared test fixtures: a seeded generator, reference implementations on sys.path."""

import pathlib
import sys

import pytest
import torch

_HERE = pathlib.Path(__file__).parent
for sub in ("kernels", "devices", "transform"):
    path = str(_HERE / sub)
    if path not in sys.path:
        sys.path.insert(0, path)


@pytest.fixture
def generator() -> torch.Generator:
    """A seeded torch generator for reproducible randomness."""
    return torch.Generator().manual_seed(1234)


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)
    yield
