r"""The rounding quantizers: ``stochastic_rounding``, ``deterministic_rounding``,
``stochastic_channel_rounding`` and their level grid (``quantization_levels``).

Every function here maps a tensor to a tensor of the same shape and can be used as a
``T_fn`` of the transform pipeline (``lambda p: stochastic_rounding(p, num_levels=16)``).

The level grid of ``stochastic_rounding`` / ``deterministic_rounding``
======================================================================

Let ``L = num_levels``, ``[c, d]`` the resolved ``input_range`` and ``[a, b]`` the resolved
``output_range`` (defaults: ``[-M, M]`` with ``M = max|value|`` when ``maintain_zero``,
``[min(value), max(value)]`` otherwise; the output range defaults to the input range).
Values are first clamped to ``[c, d]``, so outputs never leave ``[a, b]``.

**maintain_zero=False: the affine grid** (as in the reference). The ``L`` levels are
``a + k q_out`` for ``k = 0 .. L-1``, with ``q_out = (b - a)/(L - 1)``; the value ``x`` has
the fractional level index ``lev = (x - c)/q_in``, ``q_in = (d - c)/(L - 1)``.

**maintain_zero=True: the zero-anchored grid.** The ``L`` levels are the integer multiples

.. math::

    \ell_k = k\,q, \qquad k = k_{lo}, \dots, k_{hi}, \qquad k_{hi} - k_{lo} = L - 1,
    \qquad k_{lo} \le 0 \le k_{hi},

so ``0`` is always a level (``k = 0``). Of all such grids that fit in ``[a, b]`` we take the
one with the largest step (the one that spans the output range best): with ``n = k_hi``
levels above zero and ``L - 1 - n`` below,

.. math::

    q(n) = \min\Bigl(\frac{b}{n}, \frac{-a}{L - 1 - n}\Bigr) \quad (\tfrac{\cdot}{0} = \infty),
    \qquad n = \arg\max_{n \in \{0..L-1\}} q(n).

``q(n)`` is the minimum of a decreasing and an increasing function of ``n``, so the optimum
is ``floor`` or ``ceil`` of ``n* = (L - 1) b / (b - a)``; a tie (a symmetric range with an
even ``L``) goes to the smaller ``n``, i.e. the two's-complement layout
``k = -L/2 .. L/2 - 1``. Examples: ``[-7, 8]`` with 16 levels gives the integers
``-7 .. 8``; ``[-128, 127]`` with 256 levels gives ``-128 .. 127``; ``[-1, 1]`` with 3
levels gives ``-1, 0, 1``; ``[-M, M]`` with 4 levels gives ``-M, -M/2, 0, M/2``. Whenever
the reference's affine grid already contains zero, the two grids are the same.

The value is mapped linearly (zero to zero) with the gain ``s = (b - a)/(d - c)``, the
reference's ``q_out/q_in``, and ``lev = s x / q - k_lo``. A level index is rounded to
``k`` (ties to even, or stochastically) and clamped to ``0 .. L-1``; the output is
``(k + k_lo) q``.

**Gradient (straight-through).** ``d out / d x = s`` for ``x`` inside ``[c, d]`` whose level
index lies inside the grid, ``0`` otherwise (clipped STE). With data-derived ranges a further
term flows into the extreme element through ``M``, as in the reference.

**Implementation.** The grid (``q``, ``k_lo``, ``s``, the bounds) is resolved once per call
into scalars: Python floats when the ranges are given (cached) or taken from a CPU tensor,
small tensors on the device otherwise (no synchronisation). One pass over the tensor then
clamps, maps, rounds and rescales (:mod:`snnqat.transform._fused_rounding`: compiled loops on
the CPU when numba is installed, else in-place torch operations on one buffer), with the
values of the composition of torch operations and straight-through Functions that defines
them, bitwise, and its gradient in closed form (to float rounding). Under ``torch.func``
transforms and ``torch.compile`` that composition itself runs.

**Degenerate data** (all values equal, e.g. all zero): the data-derived span is zero and the
gain is taken as ``1`` (the value is read in output units), so nothing is ever NaN. An
all-zero input returns zeros whenever 0 is a level: always with ``maintain_zero=True``, and
with ``maintain_zero=False`` for the default output range; on an explicit affine grid without
0 it goes to the nearest level.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch

from snnqat.transform import _grid
from snnqat.transform._fused_rounding import (
    _FLOAT_TYPES,
    DataRange,
    Grid,
    data_range_fusable,
    grid_of,
    round_data_range,
    round_onto_grid,
)
from snnqat.transform._graphed_rounding import graphed, round_graphed
from snnqat.transform._ste import (
    clipped_round_passthrough,
    floor_passthrough,
)
from snnqat.transform._validation import (
    _NDIM_MSG,
    _RANGE_MSG,
    Range,
    _check_bool,
    _check_generator,
    _check_int,
    _check_nonempty,
    _check_range,
    _check_tensor,
)

# -- the level grid ---------------------------------------------------------------------------


def _safe(x: torch.Tensor) -> torch.Tensor:
    """``x`` where it is non-zero, else 1: a denominator that can never make inf or NaN."""
    return torch.where(x != 0, x, torch.ones_like(x))


def _grid_step(lo: torch.Tensor, hi: torch.Tensor, n: torch.Tensor, top: int) -> torch.Tensor:
    """``q(n) = min(hi / n, -lo / (top - n))`` with ``x / 0 = inf``."""
    inf = torch.full_like(lo, math.inf)
    up = torch.where(n > 0, hi / n.clamp(min=1), inf)
    down = torch.where(n < top, -lo / (top - n).clamp(min=1), inf)
    return torch.minimum(up, down)


def _zero_grid(
    lo: torch.Tensor, hi: torch.Tensor, num_levels: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Step ``q`` and lowest index ``k_lo`` of the zero-anchored grid in ``[lo, hi]``."""
    top = num_levels - 1
    n_star = top * hi / _safe(hi - lo)
    n0 = torch.floor(n_star).clamp(0, top).detach()
    n1 = (n0 + 1).clamp(max=top)
    q0, q1 = _grid_step(lo, hi, n0, top), _grid_step(lo, hi, n1, top)
    n = torch.where(q1 > q0, n1, n0)
    return torch.maximum(q0, q1), n - top


def _bounds(value: torch.Tensor, bounds: tuple[float, float]) -> tuple[torch.Tensor, ...]:
    """The bounds as 0-dim tensors of ``value``'s type and device (filled on the device, not
    copied from the host: a CUDA graph can capture that)."""
    return tuple(torch.full((), b, dtype=value.dtype, device=value.device) for b in bounds)


def _data_bounds(
    value: torch.Tensor, maintain_zero: bool, dims: tuple[int, ...] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[-M, M]`` or ``[min, max]`` over ``dims`` (all dims when ``None``), kept broadcastable."""
    dims = tuple(range(value.ndim)) if dims is None else dims
    if maintain_zero:
        m = value.abs().amax(dim=dims, keepdim=True)
        return -m, m
    return value.amin(dim=dims, keepdim=True), value.amax(dim=dims, keepdim=True)


def quantization_levels(
    output_range: Range, num_levels: int = 2**8, maintain_zero: bool = True
) -> torch.Tensor:
    """The ``num_levels`` output levels of the rounding functions for a fixed ``output_range``.

    See the module docstring for the grid. With ``maintain_zero=True`` the levels are
    ``k q`` for ``k = k_lo .. k_hi`` (zero included); otherwise ``a + k (b - a)/(L - 1)``.

    Args:
        output_range: ``[a, b]``, ``a < b`` (containing 0 when ``maintain_zero``).
        num_levels: ``L >= 2``.
        maintain_zero: Use the zero-anchored grid.

    Returns:
        A 1-D float64 tensor of the levels in increasing order.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``num_levels < 2`` or the range is malformed.

    Examples:
        >>> quantization_levels([-7, 8], num_levels=16)[:4]
        tensor([-7., -6., -5., -4.], dtype=torch.float64)
        >>> quantization_levels([-1, 1], num_levels=4)
        tensor([-1.0000, -0.5000,  0.0000,  0.5000], dtype=torch.float64)
        >>> quantization_levels([-1, 1], num_levels=4, maintain_zero=False)
        tensor([-1.0000, -0.3333,  0.3333,  1.0000], dtype=torch.float64)
    """
    num_levels = _check_int("num_levels", num_levels, 2, 2**8)
    maintain_zero = _check_bool("maintain_zero", maintain_zero)
    lo, hi = _bounds(
        torch.zeros((), dtype=torch.float64),
        _check_range("output_range", output_range, maintain_zero),
    )
    k = torch.arange(num_levels, dtype=torch.float64)
    if maintain_zero:
        step, base = _zero_grid(lo, hi, num_levels)
        return (k + base) * step
    return lo + k * (hi - lo) / (num_levels - 1)


# -- the grid of one call --------------------------------------------------------------------
#
# ``_quantize`` resolves the grid once per call into scalars (``Grid``): with the same float
# operations as the tensor functions above, on numpy scalars of the tensor's float type when
# the range is given (cached) or taken from a CPU tensor, else on small tensors (a range taken
# from the data of a GPU tensor stays on the device: no synchronisation). One pass over the
# tensor then rounds it (``round_onto_grid``).

_is_compiling = getattr(torch.compiler, "is_compiling", lambda: False)
_is_functorch_tensor = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", lambda t: False)


def _scalar_grid(
    in_lo: Any, in_hi: Any, out_lo: Any, out_hi: Any, num_levels: int, maintain_zero: bool
) -> Grid:
    """The grid from numpy scalars of one float type (:func:`~snnqat.transform._grid.fill_grid`
    run as Python; the compiled loops run the same function)."""
    params = _grid.template(type(in_lo), num_levels)
    with np.errstate(all="ignore"):
        _grid.fill_grid(params, in_lo, in_hi, out_lo, out_hi, maintain_zero)
    return grid_of(params, maintain_zero)


@functools.lru_cache(maxsize=256)
def _fixed_grid(
    input_range: tuple[float, float],
    output_range: tuple[float, float],
    num_levels: int,
    maintain_zero: bool,
    ftype: type,
) -> Grid:
    """The grid of given ranges for the float type ``ftype`` (cached)."""
    with np.errstate(all="ignore"):
        bounds = (*map(ftype, input_range), *map(ftype, output_range))
        return _scalar_grid(*bounds, num_levels, maintain_zero)


def _gain(span_in: torch.Tensor, span_out: torch.Tensor) -> torch.Tensor:
    """``span_out / span_in``, or 1 where the input span is 0 or so small that the quotient
    overflows (data of magnitude near the smallest normal float: their levels are then those of
    zero-width data, all 0)."""
    with torch.no_grad():
        usable = (span_in > 0) & ~torch.isinf(span_out / _safe(span_in))
    # (the denominator is 1 where not usable, so that no inf reaches the gradient either)
    gain = span_out / torch.where(usable, span_in, torch.ones_like(span_in))
    return torch.where(usable, gain, torch.ones_like(gain))


def _tensor_grid(
    in_lo: torch.Tensor,
    in_hi: torch.Tensor,
    out_lo: torch.Tensor,
    out_hi: torch.Tensor,
    num_levels: int,
    maintain_zero: bool,
) -> Grid:
    """The grid from (broadcastable) tensors in the value's float type."""
    top = num_levels - 1
    if maintain_zero:
        step, base = _zero_grid(out_lo, out_hi, num_levels)
        span = in_hi - in_lo
        gain = _gain(span, out_hi - out_lo)
        div = _safe(step)
        zero = torch.zeros_like(step)
        fields = dict(sub=zero, gain=gain, div=div, base=base, step=step, origin=zero)
    else:
        q_in, q_out = (in_hi - in_lo) / top, (out_hi - out_lo) / top
        sub = torch.where(q_in > 0, in_lo, out_lo)
        div = torch.where(q_in > 0, q_in, _safe(q_out))
        fields = dict(sub=sub, gain=1.0, div=div, base=0.0, step=q_out, origin=out_lo)
    factor = fields["step"] / fields["div"] * fields["gain"]
    return Grid(
        maintain_zero,
        in_lo,
        in_hi,
        top=float(top),
        out_lo=out_lo,
        out_hi=out_hi,
        factor=factor,
        **fields,
    )


def _resolve_grid(
    value: torch.Tensor,
    input_range: tuple[float, float] | None,
    output_range: tuple[float, float] | None,
    num_levels: int,
    maintain_zero: bool,
    dims: tuple[int, ...] | None,
) -> tuple[Grid, DataRange | None]:
    """The grid of one call and, for a range taken from the data, that range."""
    ftype = _FLOAT_TYPES.get(value.dtype)
    given = output_range is not None
    if input_range is not None:
        if ftype is not None:
            out_range = output_range if given else input_range
            return _fixed_grid(input_range, out_range, num_levels, maintain_zero, ftype), None
        in_lo, in_hi = _bounds(value, input_range)
        out_lo, out_hi = _bounds(value, output_range) if given else (in_lo, in_hi)
        return _tensor_grid(in_lo, in_hi, out_lo, out_hi, num_levels, maintain_zero), None
    x = value.detach()
    if dims is None and ftype is not None and x.is_cpu:
        if maintain_zero:
            lo, hi = (v.item() for v in torch.aminmax(x))
            m = math.nan if math.isnan(lo) or math.isnan(hi) else max(abs(lo), abs(hi))
            lo, hi = -m, m
        else:
            lo, hi = x.amin().item(), x.amax().item()
        with np.errstate(all="ignore"):
            in_lo, in_hi = ftype(lo), ftype(hi)
            out_lo, out_hi = map(ftype, output_range) if given else (in_lo, in_hi)
            grid = _scalar_grid(in_lo, in_hi, out_lo, out_hi, num_levels, maintain_zero)
            spread = float((in_hi - in_lo) / ftype(num_levels - 1))
        return grid, DataRange(lo, hi, given, spread)
    with torch.no_grad():
        in_lo, in_hi = _data_bounds(x, maintain_zero, dims)
        out_lo, out_hi = _bounds(x, output_range) if given else (in_lo, in_hi)
        grid = _tensor_grid(in_lo, in_hi, out_lo, out_hi, num_levels, maintain_zero)
        spread = (in_hi - in_lo) / (num_levels - 1)
    return grid, DataRange(in_lo, in_hi, given, spread, dims)


# -- rounding onto the grid -------------------------------------------------------------------


def _quantize(
    value: torch.Tensor,
    input_range: tuple[float, float] | None,
    output_range: tuple[float, float] | None,
    num_levels: int,
    maintain_zero: bool,
    generator: torch.Generator | None,
    *,
    stochastic: bool,
    dims: tuple[int, ...] | None = None,
) -> torch.Tensor:
    """Clamp to the input range, map onto the level grid, round, clamp the value.

    One pass over the tensor (:func:`round_onto_grid`); under ``torch.func`` transforms and
    ``torch.compile``, the reference composition :func:`_quantize_composite` (same values and
    gradients), which they can trace.
    """
    if _is_compiling() or _is_functorch_tensor(value):
        return _quantize_composite(
            value,
            input_range,
            output_range,
            num_levels,
            maintain_zero,
            generator,
            stochastic=stochastic,
            dims=dims,
        )
    u = None
    if stochastic:
        u = torch.rand(value.shape, dtype=value.dtype, device=value.device, generator=generator)
    if input_range is None and maintain_zero and dims is None and data_range_fusable(value):
        # the common case (a weight's own range): range, grid and rounding in one call
        return round_data_range(value, u, num_levels, output_range)
    if graphed(value):  # on a GPU: the call's kernels replayed as CUDA graphs

        def resolve(x: torch.Tensor) -> tuple:
            return _resolve_grid(x, input_range, output_range, num_levels, maintain_zero, dims)

        key = (input_range, output_range, num_levels, maintain_zero, dims)
        return round_graphed(value, u, key, resolve)
    grid, data = _resolve_grid(value, input_range, output_range, num_levels, maintain_zero, dims)
    return round_onto_grid(value, u, grid, data)


# -- the reference composition ----------------------------------------------------------------
#
# Differentiable torch operations and straight-through Functions: the definition of the values
# and gradients of ``_quantize``, and what runs under ``torch.func`` and ``torch.compile``.

_Index = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
"""``(lev, step, base, origin)``: level ``k`` (``0 .. L-1``) is ``origin + (k + base) * step``."""


def _zero_index(x: torch.Tensor, *bounds: torch.Tensor, num_levels: int) -> _Index:
    """Index on the zero-anchored grid: ``lev = s x / q - k_lo``."""
    in_lo, in_hi, out_lo, out_hi = bounds
    step, base = _zero_grid(out_lo, out_hi, num_levels)
    span_in = in_hi - in_lo
    gain = _gain(span_in, out_hi - out_lo)
    return x * gain / _safe(step) - base, step, base, torch.zeros_like(step)


def _affine_index(x: torch.Tensor, *bounds: torch.Tensor, num_levels: int) -> _Index:
    """Index on the reference's affine grid: ``lev = (x - c) / q_in``."""
    in_lo, in_hi, out_lo, out_hi = bounds
    q_in = (in_hi - in_lo) / (num_levels - 1)
    q_out = (out_hi - out_lo) / (num_levels - 1)
    lev = torch.where(q_in > 0, (x - in_lo) / _safe(q_in), (x - out_lo) / _safe(q_out))
    return lev, q_out, torch.zeros_like(q_out), out_lo


def _round_index(
    lev: torch.Tensor, num_levels: int, generator: torch.Generator | None, stochastic: bool
) -> torch.Tensor:
    """Round a level index to an integer in ``0 .. L-1`` (straight-through, clipped)."""
    if not stochastic:
        return clipped_round_passthrough(lev, 0, num_levels - 1)
    lev = torch.clamp(lev, 0, num_levels - 1)
    low = floor_passthrough(lev)
    u = torch.rand(lev.shape, dtype=lev.dtype, device=lev.device, generator=generator)
    return low + ((lev.detach() - low.detach()) > u).to(lev.dtype)


def _clamp_value(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Clamp the value of ``x`` (floating-point slack at the grid ends) but not its gradient."""
    return x + (torch.clamp(x, lo, hi) - x).detach()


def _quantize_composite(
    value: torch.Tensor,
    input_range: tuple[float, float] | None,
    output_range: tuple[float, float] | None,
    num_levels: int,
    maintain_zero: bool,
    generator: torch.Generator | None,
    *,
    stochastic: bool,
    dims: tuple[int, ...] | None = None,
) -> torch.Tensor:
    """The reference composition of :func:`_quantize` (autograd through every operation)."""
    if input_range is None:
        in_lo, in_hi = _data_bounds(value, maintain_zero, dims)
    else:
        in_lo, in_hi = _bounds(value, input_range)
    out_lo, out_hi = (in_lo, in_hi) if output_range is None else _bounds(value, output_range)
    x = torch.clamp(value, in_lo, in_hi)
    index = _zero_index if maintain_zero else _affine_index
    lev, step, base, origin = index(x, in_lo, in_hi, out_lo, out_hi, num_levels=num_levels)
    k = _round_index(lev, num_levels, generator, stochastic)
    return _clamp_value(origin + (k + base) * step, out_lo, out_hi)


def _rounding_args(
    value: Any,
    input_range: Any,
    output_range: Any,
    num_levels: Any,
    maintain_zero: Any,
    generator: Any,
) -> tuple:
    _check_tensor("value", value)
    _check_nonempty("value", value)
    maintain_zero = _check_bool("maintain_zero", maintain_zero)
    return (
        value,
        _check_range("input_range", input_range, maintain_zero),
        _check_range("output_range", output_range, maintain_zero),
        _check_int("num_levels", num_levels, 2, 2**8),
        maintain_zero,
        _check_generator(generator, value),
    )


def stochastic_rounding(
    value: torch.Tensor,
    input_range: Range | None = None,
    output_range: Range | None = None,
    num_levels: int = 2**8,
    maintain_zero: bool = True,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Round ``value`` stochastically onto ``num_levels`` levels spanning ``output_range``.

    The level grid, the map from ``input_range`` to it and the straight-through gradient
    are described in this module's docstring. With the fractional level index ``lev``,

    .. math::

        k = \lfloor lev \rfloor + \mathbb{1}[lev - \lfloor lev \rfloor > U],
        \qquad U \sim \mathcal{U}[0, 1),

    so ``P(round up)`` is the fractional part and ``E[k] = lev``: the rounding is unbiased
    inside the range. ``U`` is drawn on ``value``'s device.

    Args:
        value: Floating-point tensor to quantize (not modified).
        input_range: ``[c, d]``; values outside are clamped. Default: ``[-M, M]``
            (``M = max|value|``) if ``maintain_zero`` else ``[min, max]`` of ``value``.
        output_range: ``[a, b]`` that the levels span. Default: the input range.
        num_levels: Number of levels ``L >= 2``.
        maintain_zero: Use the zero-anchored grid, so ``0`` maps exactly to ``0``.
        generator: Optional ``torch.Generator`` (on ``value``'s device) for reproducibility.

    Returns:
        The quantized tensor, same shape and dtype as ``value``.

    Raises:
        TypeError: If ``value`` is not a floating-point tensor or an argument has the wrong type.
        ValueError: If ``num_levels < 2`` or a range is malformed, reversed, or (with
            ``maintain_zero``) excludes 0.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> w = torch.tensor([-0.8, -0.1, 0.0, 0.3, 0.8])
        >>> stochastic_rounding(w, output_range=[-7, 8], num_levels=16, generator=g)
        tensor([-7., -1.,  0.,  3.,  8.])
        >>> stochastic_rounding(torch.zeros(3))
        tensor([0., 0., 0.])
    """
    args = _rounding_args(value, input_range, output_range, num_levels, maintain_zero, generator)
    return _quantize(*args, stochastic=True)


def deterministic_rounding(
    value: torch.Tensor,
    input_range: Range | None = None,
    output_range: Range | None = None,
    num_levels: int = 2**8,
    maintain_zero: bool = True,
) -> torch.Tensor:
    """Round ``value`` to the nearest of ``num_levels`` levels spanning ``output_range``.

    Same grid, map and gradient as :func:`stochastic_rounding` (see the module docstring),
    with ``k = round(lev)``; ties go to the even level index counted from the lowest
    level, as in the reference.

    Args:
        value: Floating-point tensor to quantize (not modified).
        input_range: ``[c, d]``; values outside are clamped. Default: ``[-M, M]``
            (``M = max|value|``) if ``maintain_zero`` else ``[min, max]`` of ``value``.
        output_range: ``[a, b]`` that the levels span. Default: the input range.
        num_levels: Number of levels ``L >= 2``.
        maintain_zero: Use the zero-anchored grid, so ``0`` maps exactly to ``0``.

    Returns:
        The quantized tensor, same shape and dtype as ``value``.

    Raises:
        TypeError: If ``value`` is not a floating-point tensor or an argument has the wrong type.
        ValueError: If ``num_levels < 2`` or a range is malformed, reversed, or (with
            ``maintain_zero``) excludes 0.

    Examples:
        >>> deterministic_rounding(torch.tensor([-1, -0.5, 0, 0.5, 1]), num_levels=3)
        tensor([-1., -1.,  0.,  1.,  1.])
        >>> deterministic_rounding(torch.tensor([-2.0, 0.0, 0.3, 2.0]), input_range=[-1, 1],
        ...                        output_range=[-128, 127], num_levels=2**8)
        tensor([-128.,    0.,   38.,  127.])
    """
    args = _rounding_args(value, input_range, output_range, num_levels, maintain_zero, None)
    return _quantize(*args, stochastic=False)


def stochastic_channel_rounding(
    value: torch.Tensor,
    output_range: Range,
    num_levels: int = 2**8,
    maintain_zero: bool = True,
    *,
    input_range: Range | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Stochastic rounding with a separate input range per column (dim 1) of ``value``.

    Column ``i`` uses the input range ``[-M_i, M_i]`` with ``M_i = max|value[:, i]|`` (or
    ``[min, max]`` of the column when ``maintain_zero=False``) unless ``input_range`` is
    given, then quantizes exactly as :func:`stochastic_rounding`. ``value`` is not
    modified, and trainable leaf parameters are accepted (the result is a new tensor in
    the autograd graph).

    Args:
        value: Floating-point tensor with at least 2 dimensions.
        output_range: ``[a, b]`` that the levels span (required).
        num_levels: Number of levels ``L >= 2``.
        maintain_zero: Use the zero-anchored grid, so ``0`` maps exactly to ``0``.
        input_range: One ``[c, d]`` for all columns instead of the per-column ranges.
        generator: Optional ``torch.Generator`` (on ``value``'s device).

    Returns:
        The quantized tensor, same shape and dtype as ``value``.

    Raises:
        TypeError: If ``value`` is not a floating-point tensor or an argument has the wrong type.
        ValueError: If ``value`` has fewer than 2 dimensions, ``num_levels < 2``, or a range
            is malformed.

    Examples:
        >>> w = torch.nn.Parameter(torch.tensor([[1.0, 0.02], [-0.5, -0.04]]))
        >>> g = torch.Generator().manual_seed(0)
        >>> stochastic_channel_rounding(w, output_range=[-4, 4], num_levels=9, generator=g)
        tensor([[ 4.,  2.],
                [-2., -4.]], grad_fn=<...>)
    """
    args = _rounding_args(value, input_range, output_range, num_levels, maintain_zero, generator)
    if value.ndim < 2:
        raise ValueError(_NDIM_MSG.format(got=tuple(value.shape)))
    if args[2] is None:
        raise TypeError(_RANGE_MSG.format(name="output_range", got=None))
    dims = tuple(d for d in range(value.ndim) if d != 1)
    return _quantize(*args, stochastic=True, dims=dims)
