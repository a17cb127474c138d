"""Threads for the compiled CPU loops (a private leaf module).

The numba kernels release the GIL (``nogil``); a call splits its work into contiguous pieces
and runs them on several threads at once (:func:`run_pieces`). The LIF loops
(:mod:`snnqat.kernels._numba_lif`) and the fused rounding
(:mod:`snnqat.transform._fused_rounding`) share it. Like :mod:`snnqat.typehints`, it imports
nothing from snnqat, so every room may use it.

**Whose threads.** Where torch runs its intra-op parallelism on the OpenMP runtime it ships
(``libgomp`` in ``torch/lib``: the Linux wheels), the pieces run on that runtime's own team:
``GOMP_parallel`` with a callback that each thread of the team enters (taking the GIL only to
call the GIL-free kernel). A GEMM or a small ``exp`` leaves libgomp's workers spinning for a
while after it; a pool of our own would then put three busy threads on two cores, and a piece
ran up to twice as slow (the feed-forward LIF loop at the benchmark's size M: 1.6 ms after
nothing, 2.3-4.0 ms right after a 256-element ``exp`` and 3.1 ms after a matrix product, on our
own pool; 1.6-2.4 ms on libgomp's team). Elsewhere (other builds, other platforms, and in a
forked child, where the parent's OpenMP threads do not exist), a small pool of Python threads
runs the pieces after the first, which the calling thread runs itself.

:class:`DenormalsFlushed` runs a piece with subnormal floats flushed to zero (the CPU's
FTZ/DAZ modes) and restores the thread's floating-point environment afterwards: the LIF loops
use it, because the states of slow bit-shift leaks decay into the subnormal range, where every
operation on them is tens of times slower (a training step with bit-shift leaks took 1.6-3x
the plain step before).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
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
    """Forget the pool and stop using OpenMP's team (in a forked child their threads do not
    exist)."""
    global _POOL, _POOL_SIZE, _OMP, _OMP_TRIED
    _POOL, _POOL_SIZE = None, 0
    _OMP, _OMP_TRIED = None, True


# --------------------------------------------------------------------------- OpenMP's team
_BODY_TYPE = ctypes.CFUNCTYPE(None, ctypes.py_object)


class _Job:
    """The pieces of one :func:`run_pieces` call, run by the threads of an OpenMP team."""

    __slots__ = ("error", "fn", "pieces", "results")

    def __init__(self, fn: Callable[[int, int, int], object], pieces: list[tuple[int, int]]):
        self.fn, self.pieces = fn, pieces
        self.results: list = [None] * len(pieces)
        self.error: BaseException | None = None

    def run(self, thread: int, team: int) -> None:
        """Thread ``thread`` of ``team`` runs pieces ``thread``, ``thread + team``, ... (all
        of them also when the runtime gives fewer threads than asked for)."""
        for c in range(thread, len(self.pieces), team):
            try:
                self.results[c] = self.fn(c, *self.pieces[c])
            except BaseException as exc:  # noqa: BLE001 - re-raised by run_pieces
                if self.error is None:
                    self.error = exc


class _OpenMP:
    """``GOMP_parallel`` of torch's own libgomp, with the callback every team thread enters."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.parallel = lib.GOMP_parallel
        self.parallel.restype = None
        self.parallel.argtypes = (_BODY_TYPE, ctypes.py_object, ctypes.c_uint, ctypes.c_uint)
        thread_num, num_threads = lib.omp_get_thread_num, lib.omp_get_num_threads
        thread_num.restype = num_threads.restype = ctypes.c_int
        thread_num.argtypes = num_threads.argtypes = ()

        def body(job: _Job) -> None:  # on each thread of the team, with the GIL
            job.run(thread_num(), max(1, num_threads()))

        self.body = _BODY_TYPE(body)  # kept alive as long as the runtime may call it

    def run(self, fn: Callable[[int, int, int], object], pieces: list[tuple[int, int]]) -> list:
        job = _Job(fn, pieces)
        self.parallel(self.body, job, len(pieces), 0)  # ctypes releases the GIL meanwhile
        if job.error is not None:
            raise job.error
        return job.results


_OMP: _OpenMP | None = None
_OMP_TRIED = False


def _openmp() -> _OpenMP | None:
    """Torch's OpenMP runtime, where torch uses the ``libgomp`` it ships; else ``None``."""
    global _OMP, _OMP_TRIED
    if _OMP_TRIED:
        return _OMP
    _OMP_TRIED = True
    if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return None
    lib_dir = os.path.join(os.path.dirname(torch.__file__), "lib")
    for path in sorted(glob.glob(os.path.join(lib_dir, "libgomp*.so*"))):
        try:  # the library torch has loaded already: dlopen returns the same instance
            _OMP = _OpenMP(ctypes.CDLL(path))
        except (OSError, AttributeError):
            continue
        return _OMP
    return None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_pool)


def split(units: int, work: int, min_work: int) -> list[tuple[int, int]]:
    """Split ``[0, units)`` into contiguous ranges, one per thread.

    As many ranges as ``torch.get_num_threads()``, but at most one per unit and at most
    ``work // min_work`` (each thread gets at least ``min_work`` of the call's ``work``;
    handing a piece to another thread costs more than a small piece itself).

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
    """``fn(index, start, stop)`` for every piece, on several threads at once (see the module
    docstring: torch's OpenMP team where there is one, else this thread and a small pool).

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
    omp = _openmp()
    if omp is not None:
        return omp.run(fn, pieces)
    if _POOL is None or _POOL_SIZE < len(pieces) - 1:
        if _POOL is not None:
            _POOL.shutdown(wait=False)
        _POOL_SIZE = len(pieces) - 1
        _POOL = ThreadPoolExecutor(_POOL_SIZE, thread_name_prefix="snnqat")
    futures = [_POOL.submit(fn, c, *piece) for c, piece in enumerate(pieces) if c > 0]
    first = fn(0, *pieces[0])
    return [first, *(f.result() for f in futures)]
