"""One small pool of worker threads for the compiled CPU loops (a private leaf module).

The numba kernels release the GIL (``nogil``); a call splits its work into contiguous pieces,
runs the first on the calling thread and the others on this pool, and waits for them. The LIF
loops (:mod:`snnqat.kernels._numba_lif`) and the fused rounding
(:mod:`snnqat.transform._fused_rounding`) share it. Like :mod:`snnqat.typehints`, it imports
nothing from snnqat, so every room may use it.

:class:`DenormalsFlushed` runs a piece with subnormal floats flushed to zero (the CPU's
FTZ/DAZ modes) and restores the thread's floating-point environment afterwards: the LIF loops
use it, because the states of slow bit-shift leaks decay into the subnormal range, where every
operation on them is tens of times slower (a training step with bit-shift leaks took 1.6-3x
the plain step before).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

__all__ = ["DenormalsFlushed", "run_pieces", "split"]


def _fenv() -> Any:
    """The C library's ``fegetenv``/``fesetenv`` (in libm), or ``None`` where missing."""
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        lib.fegetenv.argtypes = lib.fesetenv.argtypes = (ctypes.c_void_p,)
    except (OSError, AttributeError):
        return None
    return lib


_FENV = _fenv()
_FENV_BYTES = 256
"""Room for the C library's ``fenv_t`` (32 bytes on x86-64, 8 on aarch64)."""


class DenormalsFlushed:
    """Context: subnormal floats are flushed to zero on this thread, then the environment
    (the rounding mode, the flush modes and the exception flags) is restored.

    A no-op where the CPU or the C library cannot do it (``torch.set_flush_denormal``
    returns ``False``, or there is no ``fegetenv``). Values whose magnitude is below the
    smallest normal float (``1.2e-38`` in float32) become zero, as on accelerators.

    Example:
        >>> tiny = torch.tensor([1e-40])  # a float32 subnormal
        >>> with DenormalsFlushed() as flushed:
        ...     inside = (tiny * 1.0).item()
        >>> (inside == 0.0) == flushed.active, (tiny * 1.0).item() > 0.0  # restored after
        (True, True)
    """

    __slots__ = ("_env", "active")

    def __init__(self) -> None:
        self._env: Any = None
        self.active = False

    def __enter__(self) -> DenormalsFlushed:
        if _FENV is not None:
            env = ctypes.create_string_buffer(_FENV_BYTES)
            if _FENV.fegetenv(env) == 0:
                self._env = env
                self.active = torch.set_flush_denormal(True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._env is not None:
            _FENV.fesetenv(self._env)
            self._env = None


_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0


def _reset_pool() -> None:
    """Forget the pool (in a forked child its threads do not exist)."""
    global _POOL, _POOL_SIZE
    _POOL, _POOL_SIZE = None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_pool)


def split(units: int, work: int, min_work: int) -> list[tuple[int, int]]:
    """Split ``[0, units)`` into contiguous ranges, one per thread.

    As many ranges as ``torch.get_num_threads()``, but at most one per unit and at most
    ``work // min_work`` (each thread gets at least ``min_work`` of the call's ``work``;
    handing a piece to a pool thread costs more than a small piece itself).

    Example:
        >>> split(16, 10**5, 2**18)  # too little work for a second thread
        [(0, 16)]
        >>> len(split(16, 10**9, 1)) == min(torch.get_num_threads(), 16)
        True
    """
    count = max(1, min(torch.get_num_threads(), units, work // min_work))
    return [(units * c // count, units * (c + 1) // count) for c in range(count)]


def _flushed(fn: Callable[[int, int, int], object]) -> Callable[[int, int, int], object]:
    def piece(c: int, a: int, b: int) -> object:
        with DenormalsFlushed():
            return fn(c, a, b)

    return piece


def run_pieces(
    fn: Callable[[int, int, int], object],
    pieces: list[tuple[int, int]],
    flush_denormals: bool = False,
) -> list:
    """``fn(index, start, stop)`` for every piece: the first here, the others on the pool.

    Args:
        fn: Called once per piece with its index and its ``(start, stop)`` bounds.
        pieces: Non-empty list of bounds.
        flush_denormals: Run every piece inside :class:`DenormalsFlushed`.

    Returns:
        The results of ``fn``, in the order of ``pieces``.

    Example:
        >>> run_pieces(lambda i, a, b: (i, sum(range(a, b))), [(0, 3), (3, 6)])
        [(0, 3), (1, 12)]
    """
    global _POOL, _POOL_SIZE
    if flush_denormals:
        fn = _flushed(fn)
    if len(pieces) == 1:
        return [fn(0, *pieces[0])]
    if _POOL is None or _POOL_SIZE < len(pieces) - 1:
        if _POOL is not None:
            _POOL.shutdown(wait=False)
        _POOL_SIZE = len(pieces) - 1
        _POOL = ThreadPoolExecutor(_POOL_SIZE, thread_name_prefix="snnqat")
    futures = [_POOL.submit(fn, c, *piece) for c, piece in enumerate(pieces) if c > 0]
    first = fn(0, *pieces[0])
    return [first, *(f.result() for f in futures)]
