"""Matrix products callable from compiled (numba) code: torch's own BLAS, without the GIL.

The recurrent LIF layers form one small matrix product per time step (``s_{t-1} W_rec`` forward,
``λr W_recᵀ`` backward). Called from Python between the compiled steps, each product and each
step costs interpreter work under the GIL, which the two threads of a call then take in turns:
at the benchmark's size M the recurrent layer's forward pass took as long on two threads as on
one. :func:`gemm_rows` calls the BLAS ``?gemm`` routine that torch itself links (MKL in the x86
wheels: the Fortran symbols ``sgemm_``/``dgemm_`` of ``libtorch_cpu``) from inside a compiled
loop, so that a whole thread's time loop is one compiled call that releases the GIL (the same
routine as ``torch.mm``: the values are bitwise those of ``torch.mm``, checked by the tests).

Where torch has no such symbols (other BLAS builds, other platforms) or the one-time self-check
fails, :func:`gemm_address` returns ``None`` and the callers keep the products in Python. The
self-check runs at the first call of :func:`gemm_address`, not at import (loading the compiled
:func:`gemm_rows` takes about half a second, which layers without a per-step product never
need). The routine's addresses are passed to the compiled code as integers (never baked into
it), so its disk cache stays valid across processes.
"""

from __future__ import annotations

import ctypes
import functools
import os

import numpy as np
import torch
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["gemm_address", "gemm_rows"]

_N, _T = 78, 84  # ord("N"), ord("T"): the BLAS transpose flags


def _library() -> ctypes.CDLL | None:
    """torch's CPU library (already loaded by ``import torch``), or ``None``."""
    lib_dir = os.path.join(os.path.dirname(torch.__file__), "lib")
    for name in ("libtorch_cpu.so", "libtorch_cpu.dylib", "torch_cpu.dll"):
        path = os.path.join(lib_dir, name)
        if os.path.exists(path):
            try:
                return ctypes.CDLL(path)
            except OSError:
                return None
    return None


def _addresses() -> dict[type, int]:
    """``{np.float32: address of sgemm_, np.float64: address of dgemm_}`` where exported."""
    lib = _library()
    if lib is None:
        return {}
    found = {}
    for dtype, symbol in ((np.float32, "sgemm_"), (np.float64, "dgemm_")):
        try:
            found[dtype] = ctypes.cast(getattr(lib, symbol), ctypes.c_void_p).value
        except AttributeError:
            pass
    return found


@intrinsic
def _call13(typingctx, fn, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13):  # noqa: ANN001, ANN202, ARG001, PLR0913
    """Call the C function at address ``fn`` with 13 pointer-sized integer arguments."""
    i64 = ir.IntType(64)

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202, ARG001
        fnty = ir.FunctionType(ir.VoidType(), [i64] * 13)
        builder.call(builder.inttoptr(args[0], fnty.as_pointer()), list(args[1:]))
        return context.get_dummy_value()

    return types.void(*([types.int64] * 14)), codegen


@njit(cache=True, nogil=True)
def gemm_rows(gemm, m, n, k, a, a_start, lda, w, w_transposed, c, c_start, scratch):  # noqa: ANN001, ANN201, PLR0913
    """``C = A @ W`` (or ``A @ Wᵀ``) for row-major matrices inside flat-indexed arrays.

    ``A`` is ``m × k``: row ``i`` starts at ``a.flat[a_start + i * lda]``; ``W`` is the
    C-contiguous ``k × n`` array ``w`` (``n × k`` when ``w_transposed``, and the product uses its
    transpose); ``C`` is ``m × n`` with rows of stride ``n`` from ``c.flat[c_start]``. ``a``, ``w``
    and ``c`` are C-contiguous arrays of one float type and ``gemm`` is the address of the
    matching routine (:func:`gemm_address`). ``scratch``: an ``int64`` array of 9 entries (the
    routine takes every argument by address; the integers are 64-bit so that both 32- and 64-bit
    integer BLAS interfaces read them right on little-endian machines).

    In column-major terms (BLAS's): ``Cᵀ = op(W)ᵀ Aᵀ``, with ``Cᵀ`` ``n × m``.
    """
    size = a.itemsize
    scratch[0] = _T if w_transposed else _N
    scratch[1] = _N
    scratch[2] = n
    scratch[3] = m
    scratch[4] = k
    scratch[5] = k if w_transposed else n  # the leading dimension of W
    scratch[6] = lda
    scratch[7] = n
    scratch[8] = 0
    ints = scratch.ctypes.data
    one = a.dtype.type(1.0)
    scalars = np.empty(2, dtype=a.dtype)
    scalars[0] = one
    scalars[1] = one - one
    alpha = scalars.ctypes.data
    _call13(
        gemm, ints, ints + 8, ints + 16, ints + 24, ints + 32, alpha, w.ctypes.data, ints + 40,
        a.ctypes.data + a_start * size, ints + 48, alpha + size, c.ctypes.data + c_start * size,
        ints + 56,
    )  # fmt: skip


def _self_check(found: dict[type, int]) -> dict[type, int]:
    """Keep the routines whose products (both transposes, a row stride) equal numpy's."""
    ok = {}
    for dtype, address in found.items():
        rng = np.random.default_rng(0)
        a = rng.standard_normal((3, 7)).astype(dtype)  # rows 1-2, columns 0-4: A is 2 x 5
        w = rng.standard_normal((5, 4)).astype(dtype)
        c = np.zeros((2, 4), dtype)
        c_t = np.zeros((2, 5), dtype)
        scratch = np.zeros(9, np.int64)
        gemm_rows(address, 2, 4, 5, a, 7, 7, w, False, c, 0, scratch)
        gemm_rows(address, 2, 5, 4, c, 0, 4, w, True, c_t, 0, scratch)
        tol = 1e-4 if dtype == np.float32 else 1e-12
        if np.allclose(c, a[1:, :5] @ w, atol=tol) and np.allclose(c_t, c @ w.T, atol=tol):
            ok[dtype] = address
    return ok


@functools.cache
def _routines() -> dict[type, int]:
    """``{numpy float type: address of its ?gemm routine}``, self-checked (once)."""
    return _self_check(_addresses())


def gemm_address(dtype: type) -> int | None:
    """The address of torch's ``?gemm`` routine for the numpy float type ``dtype``
    (``np.float32`` or ``np.float64``), or ``None`` where torch exports none that passes the
    self-check (checked at the first call)."""
    return _routines().get(dtype)
