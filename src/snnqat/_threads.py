"""One small pool of worker threads for the compiled CPU loops (a private leaf module).

The numba kernels release the GIL (``nogil``); a call splits its work into contiguous pieces,
runs the first on the calling thread and the others on this pool, and waits for them. The LIF
loops (:mod:`snnqat.kernels._numba_lif`) and the fused rounding
(:mod:`snnqat.transform._fused_rounding`) share it. Like :mod:`snnqat.typehints`, it imports
nothing from snnqat, so every room may use it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

__all__ = ["run_pieces", "split"]

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


def run_pieces(fn: Callable[[int, int, int], object], pieces: list[tuple[int, int]]) -> list:
    """``fn(index, start, stop)`` for every piece: the first here, the others on the pool.

    Args:
        fn: Called once per piece with its index and its ``(start, stop)`` bounds.
        pieces: Non-empty list of bounds.

    Returns:
        The results of ``fn``, in the order of ``pieces``.

    Example:
        >>> run_pieces(lambda i, a, b: (i, sum(range(a, b))), [(0, 3), (3, 6)])
        [(0, 3), (1, 12)]
    """
    global _POOL, _POOL_SIZE
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
