r"""Compiled CPU loops (numba) for the element-wise pass of the rounding quantizers.

One pass over the tensor does what :mod:`snnqat.transform._fused_rounding` otherwise does with
a chain of in-place torch operations, with the same float operations in the same order (so the
values are bitwise those of the torch chain): with the grid parameters ``p`` (see
:data:`PARAMS`), per element ``v``,

.. code-block:: text

    x   = clamp(v, in_lo, in_hi)
    lev = ((x - sub) * gain) / div - base          (the fractional level index)
    k   = round(clamp(lev, 0, top))                (ties to even; or stochastically, below)
    y   = clamp(origin + (k + base) * step, out_lo, out_hi)

``round`` of a value in ``[0, top]`` (``top < 2**8``) is ``(l + 2**m) - 2**m`` with ``m`` the
mantissa width (the addition rounds to the nearest integer, ties to even), which vectorises;
rounding after the clamp equals clamping after the rounding because ``0`` and ``top`` are
integers. The stochastic rounding is ``k = floor(l) + 1[l - floor(l) > u]``.

The backward loops form the clipped straight-through gradient ``g * factor * mask`` (``mask``:
``v`` inside the input range and ``lev`` inside ``[0, top]``) and, for a range taken from the
data, the sums that the gradient through the range needs (:func:`backward_data`) and the
positions of the extreme elements (:func:`add_ties`). The sums of each block are formed in the
tensor's float type by a loop that may reassociate (it vectorises) and added up in float64; the
element-wise operations never reassociate.

Every kernel is serial and releases the GIL; :mod:`snnqat.transform._fused_rounding` runs them
on contiguous chunks, one per thread. Compiled code is cached on disk (``cache=True``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from snnqat.transform import _grid

__all__ = [
    "BLOCK",
    "PARAMS",
    "abs_max",
    "add_ties",
    "backward_data",
    "backward_mask",
    "backward_data_range",
    "forward",
    "forward_data",
]

PARAMS = _grid.LAYOUT[:14]
"""The entries of the parameter array ``p`` (in the tensor's float type), in order (the first
entries of :data:`snnqat.transform._grid.LAYOUT`)."""

BLOCK = 1024
"""Elements per block of :func:`backward_data` (the unit of the sums and of the tie counts)."""

# ``error_model="numpy"``: IEEE division, no ZeroDivisionError checks (they would block
# vectorisation). No fast-math in the element-wise loops: their float operations are those of the
# torch chain. Only :func:`_block_sums` reassociates (a float64 reduction).
_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_JIT_SUM = dict(_JIT, fastmath={"reassoc"})
_INLINE = dict(_JIT, inline="always")


@njit(**_INLINE)
def _level(v, in_lo, in_hi, sub, gain, div, base, top, zero):  # noqa: ANN001, ANN202, PLR0913
    """Level index of one element: ``(lev, inside, d)``.

    ``v`` is clamped to ``[in_lo, in_hi]``, ``d = v - sub`` and ``lev = (d gain) / div - base``
    (not yet clamped to the grid); ``inside``: the straight-through gradient passes (``v`` in
    the input range and ``lev`` in ``[0, top]``).
    """
    inside = (v >= in_lo) & (v <= in_hi)
    v = in_lo if v < in_lo else v
    v = in_hi if v > in_hi else v
    d = v - sub
    lev = (d * gain) / div - base
    return lev, inside & (lev >= zero) & (lev <= top), d


@njit(**_INLINE)
def _round_level(lev, top, magic, zero, one, stochastic, ui):  # noqa: ANN001, ANN202, PLR0913
    """The level ``k``: ``lev`` clamped to ``[0, top]``, rounded to nearest (ties to even,
    ``(lev + 2^m) - 2^m``) or, with ``stochastic``, ``floor(lev) + [frac > ui]``."""
    lev = zero if lev < zero else lev
    lev = top if lev > top else lev
    k = (lev + magic) - magic
    if stochastic:
        low = k - one if k > lev else k
        k = low + (one if lev - low > ui else zero)
    return k


@njit(**_JIT)
def forward(x, u, out, mask, p):  # noqa: ANN001, ANN201
    """Round ``x`` onto the grid ``p`` into ``out``; ``mask`` gets the gradient mask.

    Args:
        x: 1-D contiguous input.
        u: Uniform draws of ``x``'s shape for the stochastic rounding, or ``None`` (nearest).
        out: Output buffer, ``x``'s shape and type.
        mask: Boolean buffer for the straight-through mask, or ``None`` (not needed).
        p: The grid parameters (:data:`PARAMS`), in ``x``'s type.
    """
    in_lo, in_hi, sub, gain, div, base, top = p[0], p[1], p[2], p[3], p[4], p[5], p[6]
    step, origin, out_lo, out_hi, magic, zero, one = p[7], p[8], p[9], p[10], p[11], p[12], p[13]
    for i in range(x.size):
        lev, inside, _ = _level(x[i], in_lo, in_hi, sub, gain, div, base, top, zero)
        if u is not None:
            k = _round_level(lev, top, magic, zero, one, True, u[i])
        else:
            k = _round_level(lev, top, magic, zero, one, False, zero)
        y = origin + (k + base) * step
        y = out_lo if y < out_lo else y
        y = out_hi if y > out_hi else y
        out[i] = y
        if mask is not None:
            mask[i] = inside


_fill_grid = njit(**_INLINE)(_grid.fill_grid)


@njit(**_JIT)
def abs_max(x, bits, magnitude):  # noqa: ANN001, ANN201
    """``(max |x|, whether x holds a NaN)`` in one pass over the bits of ``x``.

    ``bits`` is ``x`` viewed as unsigned integers of its width and ``magnitude`` the mask of
    all bits but the sign (``0x7fffffff`` for float32). Without the sign bit, IEEE floats
    order as their bit patterns (``+0 < subnormals < normals < inf``) and every NaN lies
    above ``inf``, so the integer maximum (which vectorises, a float maximum with a NaN check
    does not) is ``max |x|``, or a NaN when there is one. Exact: nothing rounds. ``x`` must
    not be empty.
    """
    m = bits[0] & magnitude
    for i in range(bits.size):
        b = bits[i] & magnitude
        m = b if b > m else m
    cell = np.empty(1, bits.dtype)
    cell[0] = m
    value = cell.view(x.dtype)[0]
    return value, value != value


@njit(**_JIT)
def forward_data(x, u, out, mask, p, output_given, bits, magnitude):  # noqa: ANN001, ANN201, PLR0913
    """:func:`forward` on the zero-anchored grid of the data's own range ``[-M, M]``.

    ``M = max|x|`` (NaN if ``x`` holds a NaN), from :func:`abs_max` of ``bits`` (``x`` viewed as
    unsigned integers) and ``magnitude``; the grid of ``[-M, M]`` onto the output range
    (``[-M, M]`` too, unless ``output_given``: then ``p[9]``, ``p[10]``) is written into ``p``
    (a :func:`snnqat.transform._grid.template` array) by the compiled
    :func:`snnqat.transform._grid.fill_grid`, then ``x`` is rounded. One call instead of a
    reduction, the grid in Python and the pass. ``x`` must not be empty.
    """
    m, nan = abs_max(x, bits, magnitude)
    m = p[17] if nan else m
    out_lo, out_hi = (p[9], p[10]) if output_given else (-m, m)
    _fill_grid(p, -m, m, out_lo, out_hi, True)
    forward(x, u, out, mask, p)


@njit(**_JIT)
def backward_mask(g, mask, factor, out):  # noqa: ANN001, ANN201
    """``out = g * factor * mask`` (the gradient for a given input range)."""
    for i in range(g.size):
        out[i] = g[i] * factor * mask[i]


@njit(**_JIT_SUM)
def _sum(a, n):  # noqa: ANN001, ANN201
    """``sum(a[:n])`` (reassociated: vectorises)."""
    s = a[0] - a[0]
    for j in range(n):
        s += a[j]
    return s


@njit(**_JIT)
def backward_data(g, x, u, out, p, factor, t_hi, t_lo, sums, ties, counts, gm, gk):  # noqa: ANN001, ANN201, PLR0913
    """Straight-through gradient and the sums of the gradient through a data-derived range.

    Recomputes the pass of :func:`forward` from ``x`` (and ``u``) and writes
    ``out = g * factor * mask``. Adds to ``sums`` (float64) ``[sum(g), sum(g mask),
    sum(g mask (x - sub)), sum(g (k + base))]``; the second is formed only with a scratch
    buffer ``gm``, the last only with a scratch buffer ``gk`` (length :data:`BLOCK`, or
    ``None``), the first only with both. Adds to ``ties`` the numbers of elements equal to
    ``t_hi`` and to ``t_lo``, and writes to ``counts[b]`` their number in block ``b`` (of
    :data:`BLOCK` elements) where there are any (``counts`` must start at zero).
    """
    in_lo, in_hi, sub, gain, div, base, top = p[0], p[1], p[2], p[3], p[4], p[5], p[6]
    magic, zero, one = p[11], p[12], p[13]
    n = x.size
    gx = np.empty(BLOCK, x.dtype)
    for b in range((n + BLOCK - 1) // BLOCK):
        start = b * BLOCK
        stop = min(start + BLOCK, n)
        m = stop - start
        xs, gs, outs = x[start:stop], g[start:stop], out[start:stop]
        if u is not None:
            us = u[start:stop]
        tie = False
        for j in range(m):
            v = xs[j]
            tie = tie | (v == t_hi) | (v == t_lo)
            lev, inside, d = _level(v, in_lo, in_hi, sub, gain, div, base, top, zero)
            gj = gs[j]
            g_in = gj * inside
            outs[j] = g_in * factor
            gx[j] = g_in * d
            if gm is not None:
                gm[j] = g_in
            if gk is not None:
                if u is not None:
                    k = _round_level(lev, top, magic, zero, one, True, us[j])
                else:
                    k = _round_level(lev, top, magic, zero, one, False, zero)
                gk[j] = gj * (k + base)
        sums[2] += _sum(gx, m)
        if gm is not None:
            sums[1] += _sum(gm, m)
        if gk is not None:
            sums[3] += _sum(gk, m)
        if gm is not None and gk is not None:
            sums[0] += _sum(gs, m)
        if tie:  # rare: count the extreme elements of this block
            n_hi = 0
            n_lo = 0
            for j in range(m):
                n_hi += xs[j] == t_hi
                n_lo += xs[j] == t_lo
            ties[0] += n_hi
            ties[1] += n_lo
            counts[b] = n_hi + n_lo


@njit(**_JIT)
def add_ties(x, out, counts, t_hi, c_hi, t_lo, c_lo):  # noqa: ANN001, ANN201
    """``out += c_hi`` where ``x == t_hi`` and ``out += c_lo`` where ``x == t_lo``.

    Only the blocks whose ``counts`` (from :func:`backward_data`) are non-zero are visited.
    """
    n = x.size
    for b in range(counts.size):
        if counts[b] == 0:
            continue
        for i in range(b * BLOCK, min((b + 1) * BLOCK, n)):
            v = x[i]
            if v == t_hi:
                out[i] += c_hi
            if v == t_lo:
                out[i] += c_lo


@njit(**_JIT)
def backward_data_range(g, x, u, out, p, output_given):  # noqa: ANN001, ANN201
    """The whole gradient of :func:`forward_data` (its grid in ``p``) in one call.

    :func:`backward_data` on one piece, the gradient through ``M`` (the closed form of
    :func:`snnqat.transform._fused_rounding._range_terms` for the zero-anchored grid, in
    float64 with the same operations) and :func:`add_ties`.
    """
    n = x.size
    sums = np.zeros(4)
    ties = np.zeros(2, np.int64)
    counts = np.zeros((n + BLOCK - 1) // BLOCK, np.int32)
    factor, t_hi, t_lo = p[14], p[1], p[0]
    if output_given:
        backward_data(g, x, u, out, p, factor, t_hi, t_lo, sums, ties, counts, None, None)
    else:
        gk = np.empty(BLOCK, x.dtype)
        backward_data(g, x, u, out, p, factor, t_hi, t_lo, sums, ties, counts, None, gk)
    m, gain, step = np.float64(t_hi), np.float64(p[3]), np.float64(p[7])
    d_m = -gain * sums[2] if output_given else sums[3] * step - gain * sums[2]
    varies = m > 0  # the gain depends on M
    if output_given:
        two = m + m
        span = np.float64(p[10]) - np.float64(p[9])
        varies = varies and not np.isinf(span / (two if two != 0 else 1.0))
    d_m = d_m / (m if m != 0 else 1.0) if varies else 0.0
    n_ties = ties[0] + ties[1]
    c = d_m / (n_ties if n_ties != 0 else 1)  # to the elements with |v| = M
    if c != 0:
        cs = np.empty(2, x.dtype)
        cs[0] = c
        cs[1] = -c
        add_ties(x, out, counts, t_hi, cs[0], t_lo, cs[1])
