r"""The level grid of one call, from its four bounds, as the parameter array of the loops.

:func:`fill_grid` is written so that it runs both as Python on numpy scalars of one float type
(:mod:`snnqat.transform._rounding` resolves given ranges with it) and compiled by numba inside
the loops that take the range from the data (:mod:`snnqat.transform._fused_kernels`): one
source, the same float operations in the same order, so both give the same bits. Its
constants are read from the array it fills (:func:`template`), which keeps every operation in
the array's float type in both worlds. See :mod:`snnqat.transform._rounding` for the grid.

The entries of the array, in order (:data:`LAYOUT`): the 14 parameters of the element-wise
loops (:data:`snnqat.transform._fused_kernels.PARAMS`), then ``factor`` (the
straight-through gain ``step / div * gain``), ``spread`` (``(in_hi - in_lo) / top``) and the
constants ``inf`` and ``nan``.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["LAYOUT", "fill_grid", "template"]

LAYOUT = (
    "in_lo",
    "in_hi",
    "sub",
    "gain",
    "div",
    "base",
    "top",
    "step",
    "origin",
    "out_lo",
    "out_hi",
    "magic",
    "zero",
    "one",
    "factor",
    "spread",
    "inf",
    "nan",
)
"""The entries of the parameter array, in order."""

_MAGIC = {np.float32: 2.0**23, np.float64: 2.0**52}
"""``2**mantissa bits``: ``(l + magic) - magic`` rounds ``0 <= l < magic`` to an integer."""


@functools.lru_cache(maxsize=64)
def _template(ftype: type, num_levels: int) -> np.ndarray:
    p = np.zeros(len(LAYOUT), dtype=ftype)
    p[6], p[11], p[13], p[16], p[17] = num_levels - 1, _MAGIC[ftype], 1, np.inf, np.nan
    p.setflags(write=False)
    return p


def template(ftype: type, num_levels: int, out_lo: float = 0.0, out_hi: float = 0.0) -> np.ndarray:
    """A fresh parameter array of ``ftype``: its constants set (``top = num_levels - 1``,
    ``magic``, ``zero``, ``one``, ``inf``, ``nan``), and ``out_lo``/``out_hi`` (a given output
    range).

    Example:
        >>> p = template(np.float32, 16)
        >>> dict(zip(LAYOUT, p.tolist()))["top"], p.dtype
        (15.0, dtype('float32'))
    """
    p = _template(ftype, num_levels).copy()
    p[9], p[10] = out_lo, out_hi
    return p


def fill_grid(p, in_lo, in_hi, out_lo, out_hi, maintain_zero):  # noqa: ANN001, ANN201
    """Write the grid of the bounds (scalars of ``p``'s float type) into ``p``.

    ``p`` comes from :func:`template`. Zero-anchored grid (``maintain_zero``): of the grids
    ``k q``, ``k = k_lo .. k_lo + top``, ``k_lo <= 0``, inside ``[out_lo, out_hi]``, the one with
    the largest step ``q(n) = min(out_hi / n, -out_lo / (top - n))`` (``x / 0 = inf``), ``n``
    the number of levels above zero: ``floor`` or ``ceil`` of ``top out_hi / span``, ties to
    the smaller. Affine grid: ``out_lo + k (out_hi - out_lo) / top``. NaN bounds make ``div``
    NaN (every output NaN, as ``torch.clamp`` with NaN bounds).

    Example:
        >>> p = template(np.float32, 16)
        >>> b = np.float32
        >>> fill_grid(p, b(-1), b(1), b(-7), b(8), True)
        >>> g = dict(zip(LAYOUT, p.tolist()))
        >>> g["step"], g["base"], g["gain"]
        (1.0, -7.0, 7.5)
    """
    top, zero, one, inf = p[6], p[12], p[13], p[16]
    if maintain_zero:
        span = out_hi - out_lo
        n0 = np.floor(top * out_hi / (span if span != zero else one))
        n0 = zero if n0 < zero else (top if n0 > top else n0)  # clamp (NaN passes)
        n1 = n0 + one
        n1 = top if n1 > top else n1
        up = out_hi / n0 if n0 > zero else inf
        down = -out_lo / (top - n0) if n0 < top else inf
        q0 = up if up != up or up < down else down  # torch.minimum: NaN wins
        up = out_hi / n1 if n1 > zero else inf
        down = -out_lo / (top - n1) if n1 < top else inf
        q1 = up if up != up or up < down else down
        n = n1 if q1 > q0 else n0
        step = q0 if q0 != q0 or q0 > q1 else q1  # torch.maximum: NaN wins
        base = n - top
        span = in_hi - in_lo
        gain = (out_hi - out_lo) / span if span > zero else one
        gain = one if gain == inf else gain  # a span too small to divide by
        sub, div, origin = zero, (step if step != zero else one), zero
    else:
        q_in, step = (in_hi - in_lo) / top, (out_hi - out_lo) / top
        gain, base, origin = one, zero, out_lo
        if q_in > zero:
            sub, div = in_lo, q_in
        else:
            sub, div = out_lo, (step if step != zero else one)
    if in_lo != in_lo or in_hi != in_hi:  # NaN data
        div = p[17]
    p[0], p[1], p[2], p[3], p[4], p[5] = in_lo, in_hi, sub, gain, div, base
    p[7], p[8], p[9], p[10] = step, origin, out_lo, out_hi
    p[14], p[15] = step / div * gain, (in_hi - in_lo) / top
