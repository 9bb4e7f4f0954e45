"""Shared fixtures: the repository root, single-threaded torch, and a tiny prepared data cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    # Tests run beside other work on small machines; one thread keeps timings and numerics stable.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def fashion_cache(tmp_path_factory) -> Path:
    """The real Fashion-MNIST, decoded once for the whole test session."""
    from study.components.data import read_dataset, write_cache

    path = tmp_path_factory.mktemp("data") / "fashion_mnist.pt"
    write_cache(read_dataset("fashion_mnist", ROOT / "resources/fashion-mnist"), path)
    return path
