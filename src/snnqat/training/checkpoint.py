"""Atomic checkpoints and the random-number state of a run.

A checkpoint is a ``torch.save`` dict of tensors and plain Python values only, so it loads
with ``torch.load(weights_only=True)``. Files are written to a temporary name in the same
folder and moved into place with ``os.replace``: a process killed while writing leaves the
previous checkpoint intact.

Example:
    >>> import os, tempfile, torch
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = os.path.join(d, "ckpt.pt")
    ...     save_atomic({"epoch": 3, "w": torch.ones(2)}, path)
    ...     load_checkpoint(path)["epoch"], sorted(os.listdir(d))
    (3, ['ckpt.pt'])
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from typing import Any

import numpy as np
import torch

__all__ = [
    "save_atomic",
    "write_json_atomic",
    "load_checkpoint",
    "rng_state",
    "set_rng_state",
    "seed_everything",
    "CHECKPOINT_FORMAT",
]

CHECKPOINT_FORMAT = "snnqat.training.checkpoint/1"


def _atomic(path: str | os.PathLike[str], write: Any, mode: str) -> None:
    folder = os.path.dirname(os.fspath(path)) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
    try:
        with os.fdopen(fd, mode) as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_atomic(obj: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """``torch.save`` to a temporary file next to ``path``, then ``os.replace`` it."""
    _atomic(path, lambda f: torch.save(obj, f), "wb")


def write_json_atomic(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    _atomic(path, lambda f: f.write(json.dumps(obj, indent=2, sort_keys=False) + "\n"), "w")


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_atomic` (tensors and plain values only).

    Raises:
        FileNotFoundError: No such file.
    """
    return torch.load(path, map_location="cpu", weights_only=True)


def rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's global generators (CUDA too if present)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, py_gauss = random.getstate()
    state = {
        "python": [version, list(internal), py_gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():  # pragma: no cover - no GPU in CI
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators saved by :func:`rng_state`."""
    version, internal, py_gauss = state["python"]
    random.setstate((version, tuple(internal), py_gauss))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():  # pragma: no cover - no GPU in CI
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
