"""Constants and helpers shared by the NIR export, import and XyloSpec conversions."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

FORMAT = "snnqat.nir"
"""Value of the ``snnqat_format`` metadata entry of graphs written by :mod:`snnqat.nir`."""

FORMAT_VERSION = 1
"""Version of snnqat's NIR convention (``snnqat_format_version`` metadata entry)."""

SYNAPSE_PASS_DECAY = 2.0**-30
"""Synaptic decay used to import a NIR ``LIF`` (no synaptic filter) as a ``LIFTorch``.

The input is scaled by ``2**30`` (an exact power of two), so the synapse passes each step's
input on within that step and keeps a residue of ``2**-30`` (about 1e-9) of it one step later.
"""

_DISCRETIZATIONS = ("zoh", "euler")
_MODULE_KEY = "snnqat_module"
_SCALE_RTOL = 1e-9
_TAU_RTOL = 1e-9


# ---------------------------------------------------------------------------------- helpers
def _nir() -> Any:
    """Import the ``nir`` package lazily, with an install hint when it is missing."""
    try:
        import nir
    except ImportError as error:
        raise ImportError(
            "snnqat.nir needs the `nir` package (Neuromorphic Intermediate Representation). "
            "Install it with `pip install snnqat[nir]` (or `pip install nir`)."
        ) from error
    return nir


def _np(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _f64(value: Any, shape: tuple | None = None) -> np.ndarray:
    out = np.asarray(_np(value), dtype=np.float64)
    return np.array(np.broadcast_to(out, shape)) if shape is not None else out


def _tensor(value: Any) -> torch.Tensor:
    return torch.tensor(np.array(value, dtype=np.float64), dtype=torch.get_default_dtype())


def _meta_array(value: Any) -> Any:
    """A metadata value ``nir.write`` can store: 0-d arrays become Python scalars."""
    array = _np(value)
    return array.item() if array.ndim == 0 else array.copy()


def _meta(node: Any) -> dict:
    meta = getattr(node, "metadata", None)
    return dict(meta) if isinstance(meta, dict) else {}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decay_from_tau(tau: Any, dt: float, method: str, what: str) -> np.ndarray:
    """Per-step decay of a time constant: ``exp(-dt/tau)`` (zoh) or ``1 - dt/tau`` (euler)."""
    tau = _f64(tau)
    if not np.all(np.isfinite(tau)) or np.any(tau < 0):
        raise ValueError(f"{what}: expected finite time constants >= 0, got {tau.tolist()}.")
    with np.errstate(divide="ignore"):
        decay = np.exp(-dt / tau) if method == "zoh" else 1.0 - dt / tau
    if np.any(decay < 0):
        raise ValueError(
            f"{what}: forward-Euler decay 1 - dt/tau is negative for tau < dt "
            f"(dt = {dt}, tau = {tau.tolist()}). Use discretization='zoh' or a smaller dt."
        )
    return decay


def _tau_from_decay(decay: np.ndarray, dt: float, what: str) -> np.ndarray:
    """The time constant with ``exp(-dt/tau) == decay``; a decay of 0 gives ``tau = 0``."""
    if not np.all(np.isfinite(decay)) or np.any((decay < 0) | (decay >= 1)):
        raise ValueError(
            f"{what}: expected per-step decay factors in [0, 1) (a decay of 1, i.e. no leak, "
            f"has no finite NIR time constant), got {decay.tolist()}."
        )
    safe = np.where(decay > 0, decay, 0.5)
    return np.where(decay > 0, -dt / np.log(safe), 0.0)


def _native_decay(mode: str, value: np.ndarray, dt: float) -> np.ndarray:
    """Float64 decay factor of a native leak parameter of ``leak_mode``."""
    value = _f64(value)
    if mode == "taus":
        return np.exp(-dt / value)
    if mode == "decays":
        return value
    return 1.0 - np.power(2.0, -value)


def _native_tau(mode: str, value: np.ndarray, dt: float, what: str) -> np.ndarray:
    if mode == "taus":
        return _f64(value)
    return _tau_from_decay(_native_decay(mode, value, dt), dt, what)


def _unique_name(name: str, taken: set) -> str:
    name = name.replace(".", "_").replace("/", "_") or "node"
    candidate, i = name, 0
    while candidate in taken:
        i += 1
        candidate = f"{name}_{i}"
    taken.add(candidate)
    return candidate


def _synapse_sum(n: int, k: int, dtype: Any = np.float32) -> np.ndarray:
    """``(N, N*k)`` ones: neuron ``i`` sums its synapses ``i*k .. i*k + k - 1``."""
    return np.kron(np.eye(n, dtype=dtype), np.ones((1, k), dtype=dtype))
