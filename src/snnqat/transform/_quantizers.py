r"""Element-wise transforms: quantizers, pruning, mismatch, bit-shift decays, composition.

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
import numbers
import types
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from snnqat.transform._fused_rounding import DataRange, Grid, round_onto_grid
from snnqat.transform._ste import (
    clipped_round_passthrough,
    floor_passthrough,
    make_backward_passthrough,
    round_passthrough,
    scale_gradient,
)

__all__ = [
    "LSQQuantizer",
    "chain",
    "class_calc_q_decay",
    "deterministic_rounding",
    "dropout",
    "gaussian_mismatch",
    "int_quant",
    "lsq_quantizer",
    "magnitude_prune",
    "quantization_levels",
    "round_bitshift",
    "stochastic_channel_rounding",
    "stochastic_rounding",
    "t_decay",
]

Range = Sequence[float]
"""A ``[lo, hi]`` pair of real numbers."""

MAX_DASH = 15
"""The largest hardware bit-shift (4-bit ``dash``)."""

_MIN_LSQ_SCALE = 1e-8

# -- error messages ---------------------------------------------------------------------------

_TENSOR_MSG = (
    "{name} must be a floating-point torch.Tensor; got {got}. "
    "Convert it first, e.g. torch.as_tensor({name}, dtype=torch.float32)."
)
_EMPTY_MSG = (
    "{name} must have at least one element; got shape {got}. "
    "Ranges are taken from the data, so pass a non-empty tensor."
)
_NDIM_MSG = (
    "value must have at least 2 dimensions (channels along dim 1); got shape {got}. "
    "Use stochastic_rounding for 0-D and 1-D tensors."
)
_INT_MSG = "{name} must be an int >= {low}; got {got!r}. Pass e.g. {name}={example}."
_RANGE_MSG = (
    "{name} must be a pair [lo, hi] of finite numbers with lo < hi; got {got!r}. "
    "Pass e.g. {name}=[-1.0, 1.0]."
)
_ZERO_RANGE_MSG = (
    "maintain_zero=True keeps 0 as a level, so {name} must contain 0; got {got!r}. "
    "Widen {name} to include 0 or pass maintain_zero=False."
)
_PROB_MSG = "{name} must be a number in [0, 1]; got {got!r}. Pass e.g. {name}=0.5."
_NONNEG_MSG = "{name} must be a finite number >= 0; got {got!r}. Pass e.g. {name}={example}."
_POSITIVE_MSG = "{name} must be a finite number > 0; got {got!r}. Pass e.g. {name}={example}."
_BOOL_MSG = "{name} must be a bool; got {got!r}. Pass {name}=True or {name}=False."
_GENERATOR_MSG = (
    "generator must be a torch.Generator on the device of the tensor ({expected}); got {got}. "
    "Create one with torch.Generator(device=tensor.device).manual_seed(seed)."
)
_CALLABLE_MSG = (
    "chain: every transform must be callable (Tensor -> Tensor); argument {index} is a {got}. "
    "Pass functions, e.g. chain(f, functools.partial(g, num_levels=16))."
)

# -- validation -------------------------------------------------------------------------------


def _check_tensor(name: str, value: Any) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        got = f"a {value.dtype} tensor" if isinstance(value, torch.Tensor) else type(value).__name__
        raise TypeError(_TENSOR_MSG.format(name=name, got=got))
    return value


def _check_nonempty(name: str, value: torch.Tensor) -> None:
    if value.numel() == 0:
        raise ValueError(_EMPTY_MSG.format(name=name, got=tuple(value.shape)))


def _check_int(name: str, value: Any, low: int, example: int) -> int:
    msg = _INT_MSG.format(name=name, low=low, got=value, example=example)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(msg)
    if value < low:
        raise ValueError(msg)
    return int(value)


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(_BOOL_MSG.format(name=name, got=value))
    return value


def _check_real(name: str, value: Any, msg: str, example: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(msg.format(name=name, got=value, example=example))
    if not math.isfinite(value):
        raise ValueError(msg.format(name=name, got=value, example=example))
    return float(value)


def _check_probability(name: str, value: Any) -> float:
    p = _check_real(name, value, _PROB_MSG, 0.5)
    if not 0.0 <= p <= 1.0:
        raise ValueError(_PROB_MSG.format(name=name, got=value))
    return p


def _check_positive(name: str, value: Any, example: float) -> float:
    x = _check_real(name, value, _POSITIVE_MSG, example)
    if x <= 0:
        raise ValueError(_POSITIVE_MSG.format(name=name, got=value, example=example))
    return x


def _check_range(name: str, value: Any, maintain_zero: bool) -> tuple[float, float] | None:
    if value is None:
        return None
    msg = _RANGE_MSG.format(name=name, got=value)
    try:
        bounds = [float(v) for v in value]
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(msg) from None
    if len(bounds) != 2 or not all(map(math.isfinite, bounds)) or bounds[0] >= bounds[1]:
        raise ValueError(msg)
    if maintain_zero and not bounds[0] <= 0.0 <= bounds[1]:
        raise ValueError(_ZERO_RANGE_MSG.format(name=name, got=value))
    return bounds[0], bounds[1]


def _check_generator(generator: Any, tensor: torch.Tensor) -> torch.Generator | None:
    if generator is None:
        return None
    if not isinstance(generator, torch.Generator) or generator.device.type != tensor.device.type:
        got = f"one on {generator.device}" if isinstance(generator, torch.Generator) else generator
        raise TypeError(_GENERATOR_MSG.format(expected=tensor.device, got=got))
    return generator


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
    return tuple(value.new_tensor(b) for b in bounds)


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

_FLOAT_TYPES = {torch.float32: np.float32, torch.float64: np.float64}
_MAGIC = {np.float32: 2.0**23, np.float64: 2.0**52}
"""``2**mantissa bits``: ``(l + magic) - magic`` rounds ``0 <= l < magic`` to an integer."""

_is_compiling = getattr(torch.compiler, "is_compiling", lambda: False)
_is_functorch_tensor = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", lambda t: False)


def _clamp_scalar(x: Any, lo: Any, hi: Any) -> Any:
    """``torch.clamp`` of one number (NaN passes through)."""
    return lo if x < lo else hi if x > hi else x


def _maximum_scalar(a: Any, b: Any) -> Any:
    """``torch.maximum`` of two numbers (NaN if either is NaN)."""
    return a if a != a or a > b else b  # a != a: NaN


def _minimum_scalar(a: Any, b: Any) -> Any:
    """``torch.minimum`` of two numbers (NaN if either is NaN)."""
    return a if a != a or a < b else b  # a != a: NaN


def _grid_step_scalar(lo: Any, hi: Any, n: Any, top: Any) -> Any:
    """:func:`_grid_step` on numpy scalars."""
    inf = type(lo)(math.inf)
    up = hi / n if n > 0 else inf
    down = -lo / (top - n) if n < top else inf
    return _minimum_scalar(up, down)


def _zero_grid_scalar(lo: Any, hi: Any, num_levels: int) -> tuple[Any, Any]:
    """:func:`_zero_grid` on numpy scalars of one float type (the same float operations)."""
    f = type(lo)
    top = f(num_levels - 1)
    span = hi - lo
    n_star = top * hi / (span if span != 0 else f(1))
    n0 = _clamp_scalar(np.floor(n_star), f(0), top)
    n1 = _clamp_scalar(n0 + f(1), -f(math.inf), top)
    q0, q1 = _grid_step_scalar(lo, hi, n0, top), _grid_step_scalar(lo, hi, n1, top)
    n = n1 if q1 > q0 else n0
    return _maximum_scalar(q0, q1), n - top


def _scalar_grid(
    in_lo: Any, in_hi: Any, out_lo: Any, out_hi: Any, num_levels: int, maintain_zero: bool
) -> Grid:
    """The grid from numpy scalars of one float type, with the kernels' parameter array."""
    f = type(in_lo)
    top = f(num_levels - 1)
    zero, one = f(0), f(1)
    if maintain_zero:
        step, base = _zero_grid_scalar(out_lo, out_hi, num_levels)
        span = in_hi - in_lo
        gain = (out_hi - out_lo) / span if span > 0 else one
        sub, div, origin = zero, (step if step != 0 else one), zero
    else:
        q_in, step = (in_hi - in_lo) / top, (out_hi - out_lo) / top
        gain, base, origin = one, zero, out_lo
        sub, div = (in_lo, q_in) if q_in > 0 else (out_lo, step if step != 0 else one)
    if in_lo != in_lo or in_hi != in_hi:  # NaN data: all NaN, as torch.clamp with NaN bounds
        div = f(math.nan)
    values = (in_lo, in_hi, sub, gain, div, base, top, step, origin, out_lo, out_hi)
    params = np.array((*values, _MAGIC[f], zero, one), dtype=f)
    return Grid(maintain_zero, *map(float, values), factor=float(step / div * gain), params=params)


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
        gain = torch.where(span > 0, (out_hi - out_lo) / _safe(span), torch.ones_like(span))
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
    grid, data = _resolve_grid(value, input_range, output_range, num_levels, maintain_zero, dims)
    u = None
    if stochastic:
        u = torch.rand(value.shape, dtype=value.dtype, device=value.device, generator=generator)
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
    gain = torch.where(span_in > 0, (out_hi - out_lo) / _safe(span_in), torch.ones_like(span_in))
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


# -- integer quantization ---------------------------------------------------------------------


def int_quant(
    value: torch.Tensor,
    maintain_zero: bool = True,
    map_to_max: bool = False,
    n_bits: int = 8,
    max_n_bits: int = 8,
) -> torch.Tensor:
    r"""Scale ``value`` to signed ``n_bits`` integers by its largest magnitude, then round.

    With ``Q = 2**(n_bits-1) - 1`` and ``M = max|v|``:

    .. math::

        \mathrm{out} = \mathrm{round}(s\,v), \qquad s = Q / M \;(1 \text{ if } M = 0),

    multiplied by ``(2**(max_n_bits-1) - 1) / Q`` when ``map_to_max`` (use the full range of a
    ``max_n_bits`` word). ``v = value`` when ``maintain_zero``; otherwise
    ``v = value - (max + min)/2`` is centred on the midpoint of its range first. The result
    holds integer-valued floats in ``[-Q, Q]`` (``[-Qmax, Qmax]`` with ``map_to_max``).
    Gradient: straight-through round, so ``d out / d value = s`` plus a term through ``M``.

    Args:
        value: Floating-point tensor (not modified).
        maintain_zero: Keep 0 at 0 (no centring).
        map_to_max: Spread the ``n_bits`` levels over the ``max_n_bits`` integer range.
        n_bits: Bits of the signed target integers, ``>= 2``.
        max_n_bits: Bits of the hardware word for ``map_to_max``, ``>= n_bits`` then.

    Returns:
        Integer-valued tensor of ``value``'s shape and dtype.

    Raises:
        TypeError: If ``value`` is not a floating-point tensor or an argument has the wrong type.
        ValueError: If ``n_bits < 2``, or ``map_to_max`` with ``max_n_bits < n_bits``.

    Examples:
        >>> x = torch.tensor([-1, -0.5, 0.25, 0, 0.25, 0.5, 1])
        >>> int_quant(x, n_bits=3)
        tensor([-3., -2.,  1.,  0.,  1.,  2.,  3.])
        >>> int_quant(x, n_bits=3, map_to_max=True)
        tensor([-127.,  -64.,   32.,    0.,   32.,   64.,  127.])
        >>> int_quant(torch.tensor([1.0, 2.0, 3.0]), maintain_zero=False, n_bits=3)
        tensor([-3.,  0.,  3.])
    """
    _check_tensor("value", value)
    _check_nonempty("value", value)
    maintain_zero = _check_bool("maintain_zero", maintain_zero)
    map_to_max = _check_bool("map_to_max", map_to_max)
    q = 2 ** (_check_int("n_bits", n_bits, 2, 8) - 1) - 1
    low = n_bits if map_to_max else 2
    q_max = 2 ** (_check_int("max_n_bits", max_n_bits, low, 8) - 1) - 1
    if not maintain_zero:
        value = value - (value.amax() + value.amin()) / 2
    m = value.abs().amax()
    scale = torch.where(m > 0, q / _safe(m), torch.ones_like(m))
    if map_to_max:
        scale = scale * (q_max / q)
    return round_passthrough(scale * value)


# -- masks and noise --------------------------------------------------------------------------


def dropout(
    param: torch.Tensor,
    dropout_prob: float = 0.5,
    *,
    rescale: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Zero each element of ``param`` independently with probability ``dropout_prob``.

    ``out = param * m`` with ``m_i = 1[U_i > p]``, ``U_i ~ U[0, 1)`` drawn on ``param``'s
    device; the gradient is the same 0/1 mask. By default the survivors are **not**
    rescaled by ``1/(1 - p)``: this transform models synapses that are missing on the
    hardware, where nothing compensates for them, so the training signal should see the
    network as it will run. Pass ``rescale=True`` for the usual inverted dropout.

    Args:
        param: Floating-point tensor (not modified).
        dropout_prob: Probability ``p`` in ``[0, 1]`` of zeroing an element.
        rescale: Multiply the survivors by ``1/(1 - p)`` (when ``p < 1``).
        generator: Optional ``torch.Generator`` on ``param``'s device.

    Returns:
        The masked tensor.

    Raises:
        TypeError: If ``param`` is not a floating-point tensor or an argument has the wrong type.
        ValueError: If ``dropout_prob`` is outside ``[0, 1]``.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> dropout(torch.ones(6), 0.5, generator=g)
        tensor([0., 1., 0., 0., 0., 1.])
        >>> dropout(torch.ones(3), 0.0)
        tensor([1., 1., 1.])
    """
    _check_tensor("param", param)
    p = _check_probability("dropout_prob", dropout_prob)
    rescale = _check_bool("rescale", rescale)
    generator = _check_generator(generator, param)
    u = torch.rand(param.shape, dtype=param.dtype, device=param.device, generator=generator)
    out = torch.where(u > p, param, torch.zeros_like(param))
    return out / (1.0 - p) if rescale and p < 1.0 else out


def magnitude_prune(param: torch.Tensor, fraction: float) -> torch.Tensor:
    """Zero the ``round(fraction * numel)`` elements of ``param`` with the smallest ``|w|``.

    ``out = param * m`` where the mask ``m`` is 0 on the pruned elements and 1 elsewhere;
    the gradient is the same mask (pruned weights get none). Ties in ``|w|`` are broken
    by ``torch.topk``.

    Args:
        param: Floating-point tensor (not modified).
        fraction: Fraction of elements to prune, in ``[0, 1]``.

    Returns:
        The pruned tensor.

    Raises:
        TypeError: If ``param`` is not a floating-point tensor or ``fraction`` is not a number.
        ValueError: If ``fraction`` is outside ``[0, 1]``.

    Examples:
        >>> magnitude_prune(torch.tensor([0.5, -0.1, 2.0, 0.05]), 0.5)
        tensor([0.5000, 0.0000, 2.0000, 0.0000])
    """
    _check_tensor("param", param)
    n_prune = round(_check_probability("fraction", fraction) * param.numel())
    with torch.no_grad():
        keep = torch.ones(param.numel(), dtype=torch.bool, device=param.device)
        keep[torch.topk(param.abs().flatten(), n_prune, largest=False).indices] = False
    return torch.where(keep.view(param.shape), param, torch.zeros_like(param))


def gaussian_mismatch(
    param: torch.Tensor,
    percent_deviation: float = 10.0,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Multiply each element by ``1 + eps``, ``eps ~ N(0, (percent_deviation / 100)**2)``.

    Models device mismatch: every weight, threshold or time constant of an analogue chip
    deviates from its nominal value by a relative Gaussian error. The default (10 %
    standard deviation) is the reference's JAX mismatch default (30 % at 3 sigma). The
    gradient is ``1 + eps``. Noise is drawn on ``param``'s device.

    Args:
        param: Floating-point tensor (not modified).
        percent_deviation: Standard deviation of the relative error, in percent (``>= 0``).
        generator: Optional ``torch.Generator`` on ``param``'s device.

    Returns:
        The perturbed tensor.

    Raises:
        TypeError: If ``param`` is not a floating-point tensor or an argument has the wrong type.
        ValueError: If ``percent_deviation`` is negative or not finite.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> gaussian_mismatch(torch.ones(3), 10.0, generator=g)
        tensor([1.1541, 0.9707, 0.7821])
        >>> gaussian_mismatch(torch.ones(2), 0.0)
        tensor([1., 1.])
    """
    _check_tensor("param", param)
    sigma = _check_real("percent_deviation", percent_deviation, _NONNEG_MSG, 10.0) / 100.0
    if sigma < 0:
        raise ValueError(
            _NONNEG_MSG.format(name="percent_deviation", got=percent_deviation, example=10.0)
        )
    generator = _check_generator(generator, param)
    eps = torch.randn(param.shape, dtype=param.dtype, device=param.device, generator=generator)
    return param * (1.0 + sigma * eps)


# -- bit-shift decays -------------------------------------------------------------------------


def _quantized_decay(decay: torch.Tensor, max_dash: int = MAX_DASH) -> torch.Tensor:
    """``1 - 2**-dash`` with ``dash = clamp(round(-log2(-ln decay)), 0, max_dash)``.

    ``decay >= 1`` gives ``max_dash``, ``decay <= 0`` gives ``0``; NaN propagates.
    """
    d = decay.clamp(min=torch.finfo(decay.dtype).tiny, max=1.0)
    raw = torch.round(-torch.log2(-torch.log(d)))
    dash = torch.where(d >= 1.0, torch.full_like(d, max_dash), raw).clamp(0, max_dash)
    return 1.0 - torch.exp2(-dash)


_decay_passthrough = make_backward_passthrough(_quantized_decay)


def t_decay(decay: torch.Tensor, dt: float = 1e-3) -> torch.Tensor:
    r"""Snap decay factors to the nearest hardware bit-shift decay, straight-through.

    A neuron with time constant ``tau`` decays per step by ``alpha = exp(-dt/tau)``; the
    hardware implements ``v <- v - (v >> dash)``, i.e. ``alpha_q = 1 - 2**-dash``, with the
    mapping ``dash = round(log2(tau/dt))``. Since ``tau/dt = -1/ln(alpha)``, ``dt`` cancels:

    .. math::

        \mathrm{dash} = \mathrm{clamp}(\mathrm{round}(-\log_2(-\ln\alpha)), 0, 15),
        \qquad \mathrm{out} = 1 - 2^{-\mathrm{dash}}.

    ``alpha >= 1`` (no leak) maps to the slowest decay ``1 - 2**-15`` and ``alpha <= 0`` to
    ``0``, so the result is never NaN for non-NaN input. The gradient is the identity (STE).

    Args:
        decay: Floating-point tensor of decay factors ``alpha``.
        dt: Simulation time step in seconds (``> 0``); it cancels from the result and is
            accepted for compatibility.

    Returns:
        The quantized decays, same shape and dtype.

    Raises:
        TypeError: If ``decay`` is not a floating-point tensor or ``dt`` is not a number.
        ValueError: If ``dt <= 0``.

    Examples:
        >>> t_decay(torch.tensor([0.4156, 0.8306, 0.5, 0.99, 1.0, 0.0]))
        tensor([0.0000, 0.7500, 0.5000, 0.9922, 1.0000, 0.0000])
        >>> float(t_decay(torch.tensor(1.0)))
        0.999969482421875
    """
    _check_tensor("decay", decay)
    _check_positive("dt", dt, 1e-3)
    return _decay_passthrough(decay)


class class_calc_q_decay:  # noqa: N801 (reference name)
    """The bit-shift decay map of :func:`t_decay`, without the straight-through gradient.

    Args:
        dt: Simulation time step in seconds (``> 0``); it cancels from the result.

    Raises:
        TypeError: If ``dt`` is not a number.
        ValueError: If ``dt <= 0``.

    Examples:
        >>> q = class_calc_q_decay(dt=1e-3)
        >>> q(torch.tensor([0.9, 0.99]))
        tensor([0.8750, 0.9922])
        >>> q
        class_calc_q_decay(dt=0.001)
    """

    def __init__(self, dt: float) -> None:
        self.dt = _check_positive("dt", dt, 1e-3)

    def calc_bitshift_decay(self, decay: torch.Tensor) -> torch.Tensor:
        """Return ``1 - 2**-dash`` for the nearest bit-shift ``dash`` in ``0..15``."""
        return _quantized_decay(_check_tensor("decay", decay))

    def __call__(self, decay: torch.Tensor) -> torch.Tensor:
        return self.calc_bitshift_decay(decay)

    def __repr__(self) -> str:
        return f"class_calc_q_decay(dt={self.dt!r})"


def round_bitshift(dash: torch.Tensor, max_dash: int = MAX_DASH) -> torch.Tensor:
    """Round bit-shifts to integers in the hardware range ``0..max_dash`` (clipped STE).

    Forward ``clamp(round(dash), 0, max_dash)``; gradient ``1`` for ``0 <= dash <= max_dash``
    and ``0`` outside, so a negative ``dash`` (which would make ``alpha < 0``) never reaches
    the network.

    Args:
        dash: Floating-point tensor of bit-shifts.
        max_dash: Largest hardware bit-shift (``>= 1``; 15 for a 4-bit field).

    Returns:
        The rounded, clamped bit-shifts.

    Raises:
        TypeError: If ``dash`` is not a floating-point tensor or ``max_dash`` not an int.
        ValueError: If ``max_dash < 1``.

    Examples:
        >>> round_bitshift(torch.tensor([-1.2, 4.32, 7.5, 21.0]))
        tensor([ 0.,  4.,  8., 15.])
    """
    _check_tensor("dash", dash)
    return clipped_round_passthrough(dash, 0, _check_int("max_dash", max_dash, 1, MAX_DASH))


# -- learned step size quantization -----------------------------------------------------------


def _lsq_bounds(n_bits: int, signed: bool) -> tuple[int, int]:
    """``(Q_N, Q_P)``: the integer codes are ``-Q_N .. Q_P``."""
    if signed:
        return 2 ** (n_bits - 1) - 1, 2 ** (n_bits - 1) - 1
    return 0, 2**n_bits - 1


def lsq_quantizer(
    value: torch.Tensor, scale: torch.Tensor, n_bits: int = 8, signed: bool = True
) -> torch.Tensor:
    r"""Learned step size quantization (LSQ, Esser et al. 2020) with a given step ``scale``.

    With ``v = value / s``, codes ``-Q_N .. Q_P`` (signed: ``Q_N = Q_P = 2**(n_bits-1) - 1``;
    unsigned: ``Q_N = 0``, ``Q_P = 2**n_bits - 1``) and ``N = value.numel()``:

    .. math::

        \mathrm{out} = \mathrm{round}(\mathrm{clamp}(v, -Q_N, Q_P))\, s,

        \frac{\partial\,\mathrm{out}}{\partial\,\mathrm{value}} =
            \mathbb{1}[-Q_N \le v \le Q_P],
        \qquad
        \frac{\partial\,\mathrm{out}}{\partial s} = g \cdot
        \begin{cases} -Q_N & v < -Q_N \\ \mathrm{round}(v) - v & \text{inside} \\
        Q_P & v > Q_P \end{cases},
        \qquad g = \frac{1}{\sqrt{N Q_P}}.

    The gradient scale ``g`` balances the step-size update against the weight updates.
    The value of ``s`` is floored at ``1e-8`` (its gradient is not), so a step driven
    non-positive by an optimizer cannot divide by zero.

    Args:
        value: Floating-point tensor to quantize.
        scale: Positive step size ``s``: a floating-point tensor broadcastable to ``value``.
        n_bits: Bits of the integer codes, ``>= 2``.
        signed: Symmetric signed codes (else unsigned ``0 .. 2**n_bits - 1``).

    Returns:
        The fake-quantized tensor (integer multiples of ``s``).

    Raises:
        TypeError: If ``value`` or ``scale`` is not a floating-point tensor, or an argument
            has the wrong type.
        ValueError: If ``n_bits < 2``.

    Examples:
        >>> s = torch.tensor(0.5, requires_grad=True)
        >>> lsq_quantizer(torch.tensor([-3.0, 0.3, 0.8, 1.0]), s, n_bits=3)
        tensor([-1.5000,  0.5000,  1.0000,  1.0000], grad_fn=<...>)
    """
    _check_tensor("value", value)
    _check_tensor("scale", scale)
    q_neg, q_pos = _lsq_bounds(_check_int("n_bits", n_bits, 2, 8), _check_bool("signed", signed))
    s = scale_gradient(scale, 1.0 / math.sqrt(max(value.numel(), 1) * q_pos))
    s = s + (s.clamp(min=_MIN_LSQ_SCALE) - s).detach()
    return round_passthrough(torch.clamp(value / s, -q_neg, q_pos)) * s


def _forget_ready(module: LSQQuantizer, incompatible_keys: Any) -> None:
    """After ``load_state_dict``, re-read the ``initialized`` buffer on the next call."""
    module._ready = False


class LSQQuantizer(torch.nn.Module):
    """A learned step size quantizer holding its step as a trainable ``nn.Parameter``.

    Call it as a transform, ``T(param)``, to get :func:`lsq_quantizer` of ``param`` with the
    module's ``scale``. Unless ``init_scale`` is given, the first call (or
    :meth:`init_from`) initialises the step as in the LSQ paper,
    ``s = 2 mean|x| / sqrt(Q_P)``. The step belongs to this module: give the module's
    parameters to the optimizer.

    Args:
        n_bits: Bits of the integer codes, ``>= 2``.
        signed: Symmetric signed codes (else unsigned).
        init_scale: Initial step ``> 0``; ``None`` initialises from the first tensor.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``n_bits < 2`` or ``init_scale <= 0``.

    Examples:
        >>> T = LSQQuantizer(n_bits=4, init_scale=0.25)
        >>> T(torch.tensor([0.1, -0.6, 9.0]))
        tensor([ 0.0000, -0.5000,  1.7500], grad_fn=<...>)
        >>> T
        LSQQuantizer(n_bits=4, signed=True, scale=0.25)
    """

    def __init__(
        self, n_bits: int = 8, signed: bool = True, init_scale: float | None = None
    ) -> None:
        super().__init__()
        self.n_bits = _check_int("n_bits", n_bits, 2, 8)
        self.signed = _check_bool("signed", signed)
        ready = init_scale is not None
        start = _check_positive("init_scale", init_scale, 0.01) if ready else 1.0
        self.scale = torch.nn.Parameter(torch.tensor(start))
        self.register_buffer("initialized", torch.tensor(ready))
        self._ready = ready
        self.register_load_state_dict_post_hook(_forget_ready)

    def init_from(self, tensor: torch.Tensor) -> LSQQuantizer:
        """Set ``scale = 2 mean|tensor| / sqrt(Q_P)`` (1 for an all-zero tensor); return self."""
        _check_tensor("tensor", tensor)
        _check_nonempty("tensor", tensor)
        q_pos = _lsq_bounds(self.n_bits, self.signed)[1]
        with torch.no_grad():
            s = 2.0 * tensor.detach().abs().mean() / math.sqrt(q_pos)
            self.scale.copy_(torch.where(s > 0, s, torch.ones_like(s)))
            self.initialized.fill_(True)
        self._ready = True
        return self

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        """Quantize ``value`` with the learned step (initialising it on the first call)."""
        if not self._ready:
            self._ready = bool(self.initialized)
            if not self._ready:
                self.init_from(value)
        return lsq_quantizer(value, self.scale, self.n_bits, self.signed)

    def extra_repr(self) -> str:
        return f"n_bits={self.n_bits}, signed={self.signed}, scale={float(self.scale.detach()):.4g}"


# -- composition ------------------------------------------------------------------------------


def _describe(fn: Callable) -> str:
    """A short, readable name for a transform: ``name(k=v)`` for partials."""
    if isinstance(fn, functools.partial):
        args = [repr(a) for a in fn.args] + [f"{k}={v!r}" for k, v in fn.keywords.items()]
        return f"{_describe(fn.func)}({', '.join(args)})"
    if isinstance(fn, (types.FunctionType, types.BuiltinFunctionType)):
        return fn.__name__
    return repr(fn)


class _Chain:
    """Transforms applied left to right; picklable when its transforms are."""

    def __init__(self, fns: tuple[Callable[[torch.Tensor], torch.Tensor], ...]) -> None:
        self.fns = fns

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for fn in self.fns:
            x = fn(x)
        return x

    def __repr__(self) -> str:
        return f"chain({', '.join(map(_describe, self.fns))})"


def chain(
    *fns: Callable[[torch.Tensor], torch.Tensor],
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Compose transforms left to right: ``chain(f, g)(x) == g(f(x))``.

    ``chain()`` is the identity. Bind arguments with :func:`functools.partial` to get a
    readable ``repr``.

    Args:
        *fns: Transforms ``Tensor -> Tensor``.

    Returns:
        The composed transform.

    Raises:
        TypeError: If an argument is not callable.

    Examples:
        >>> from functools import partial
        >>> T = chain(partial(magnitude_prune, fraction=0.5), round_passthrough)
        >>> T
        chain(magnitude_prune(fraction=0.5), round_passthrough)
        >>> T(torch.tensor([0.9, -0.2, -0.6, 0.1]))
        tensor([ 1.,  0., -1.,  0.])
    """
    for index, fn in enumerate(fns):
        if not callable(fn):
            raise TypeError(_CALLABLE_MSG.format(index=index, got=type(fn).__name__))
    return _Chain(fns)
