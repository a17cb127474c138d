r"""The element-wise pass of the rounding quantizers: one autograd Function per call.

:func:`~snnqat.transform.stochastic_rounding`, :func:`~snnqat.transform.deterministic_rounding`
and :func:`~snnqat.transform.stochastic_channel_rounding` resolve their level grid once per call
into a :class:`Grid` of scalars (Python floats, or small broadcastable tensors when the range is
taken from the data on a GPU or per channel), then call :func:`round_onto_grid`, which makes
one pass over the tensor:

.. code-block:: text

    x   = clamp(v, in_lo, in_hi)
    lev = ((x - sub) * gain) / div - base          (the fractional level index)
    k   = round(clamp(lev, 0, top))                (ties to even; or k = floor + 1[frac > u])
    y   = clamp(origin + (k + base) * step, out_lo, out_hi)

with the float operations of the reference composition (its values, bitwise). On the CPU, for
float32 and float64 with numba installed, the pass is one compiled loop
(:mod:`snnqat.transform._fused_kernels`) on ``torch.get_num_threads()`` threads; otherwise it is
a chain of in-place torch operations on one output buffer.

**Gradient.** ``d y / d v = factor`` (the gain ``s``) where ``v`` lies inside the input range
and ``lev`` inside ``[0, top]``, ``0`` elsewhere (clipped straight-through). With a range taken
from the data (:class:`DataRange`), the gradient that the reference's autograd graph sends
through the extreme values ``M = max|v|`` (or ``min v`` and ``max v``) is added in closed form:
with ``G = sum(g)``, ``G_in = sum(g mask)``, ``G_x = sum(g mask (x - sub))`` and
``G_k = sum(g (k + base))``,

* zero-anchored grid: ``dL/dM = (G_k step [output range from the data] - gain G_x) / M``
  (``0`` when ``M = 0``), sent to the elements with ``|v| = M`` as
  ``dL/dM / count * sign(v)``;
* affine grid (``q_in = (max - min)/top > 0``, ``s = q_out/q_in``):
  ``dL/dmax = (G_k [output from the data] - s G_x / q_in) / top`` and
  ``dL/dmin = G [output from the data] - s G_in - dL/dmax``, each split evenly between the
  elements equal to ``max`` (``min``); for constant data (``q_in = 0``) ``dL/dmin = G`` when the
  output range comes from the data, else nothing.

These are the reference's gradients up to float rounding (its sums and products run in another
order). The Function is the old ``forward(ctx, ...)`` style (cheaper per call than
``setup_context``); under ``torch.func`` transforms and ``torch.compile`` the quantizers use the
reference composition instead, which supports them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from snnqat._threads import run_pieces, split
from snnqat.transform import _grid

__all__ = [
    "DataRange",
    "Grid",
    "data_range_fusable",
    "fused_available",
    "grid_of",
    "round_data_range",
    "round_onto_grid",
]

MIN_CHUNK = 1 << 18
"""Elements per thread below which the compiled loops run on the calling thread only."""

Scalar = Any
"""A Python float, or a tensor broadcastable to the value."""


class Grid(NamedTuple):
    """The resolved level grid of one call (see the module docstring for the formulas).

    The fields are Python floats (the exact values in the tensor's float type), or tensors
    broadcastable to the value; ``params`` is the parameter array of the compiled loops
    (:data:`snnqat.transform._fused_kernels.PARAMS`) for float32/float64 scalar grids, else
    ``None``. ``maintain_zero`` selects the zero-anchored grid (``sub = origin = 0``) or the
    affine one (``gain = 1``, ``base = 0``).
    """

    maintain_zero: bool
    in_lo: Scalar
    in_hi: Scalar
    sub: Scalar
    gain: Scalar
    div: Scalar
    base: Scalar
    top: float
    step: Scalar
    origin: Scalar
    out_lo: Scalar
    out_hi: Scalar
    factor: Scalar
    params: np.ndarray | None = None


class DataRange(NamedTuple):
    """A range taken from the data: ``[lo, hi]`` (``[-M, M]`` with ``maintain_zero``).

    ``dims`` are the reduced dimensions (``None``: all, and ``lo``/``hi`` are scalars);
    ``output_given`` tells whether the output range was given (else it is this range too);
    ``spread`` is ``q_in = (hi - lo)/top`` of the affine grid.
    """

    lo: Scalar
    hi: Scalar
    output_given: bool
    spread: Scalar
    dims: tuple[int, ...] | None = None


def grid_of(params: np.ndarray, maintain_zero: bool) -> Grid:
    """The :class:`Grid` of a parameter array filled by :func:`snnqat.transform._grid.fill_grid`."""
    v = params.tolist()
    return Grid(maintain_zero, *v[:11], factor=v[14], params=params)


# -- the compiled loops (optional) -----------------------------------------------------------

_KERNELS: ModuleType | None = None
_KERNELS_TRIED = False


def _kernels() -> ModuleType | None:
    """:mod:`snnqat.transform._fused_kernels`, or ``None`` when numba is not installed."""
    global _KERNELS, _KERNELS_TRIED
    if not _KERNELS_TRIED:
        _KERNELS_TRIED = True
        try:
            from snnqat.transform import _fused_kernels
        except ImportError:
            _fused_kernels = None
        _KERNELS = _fused_kernels
    return _KERNELS


def fused_available() -> bool:
    """Whether the compiled loops can run (numba is installed)."""
    return _kernels() is not None


def _fusable(value: Tensor, grid: Grid) -> bool:
    return grid.params is not None and value.is_cpu and _kernels() is not None


def _pieces(n: int, unit: int = 1) -> list[tuple[int, int]]:
    """Split ``[0, n)`` into one contiguous range per thread (see :func:`split`), in whole
    multiples of ``unit``, each of at least :data:`MIN_CHUNK` elements."""
    return [(a * unit, min(b * unit, n)) for a, b in split(-(-n // unit), n, MIN_CHUNK)]


def _elementwise(kernel: Callable, arrays: tuple, *scalars: Any) -> None:
    """``kernel(*arrays, *scalars)`` on contiguous pieces of the 1-D ``arrays`` (``None`` kept)."""
    pieces = _pieces(arrays[0].size)
    if len(pieces) == 1:
        kernel(*arrays, *scalars)
        return

    def piece(_: int, a: int, b: int) -> None:
        kernel(*(None if t is None else t[a:b] for t in arrays), *scalars)

    run_pieces(piece, pieces)


def _flat(t: Tensor | None) -> np.ndarray | None:
    """A 1-D numpy view of a contiguous CPU tensor (``None`` stays ``None``)."""
    return None if t is None else t.detach().numpy().ravel()


def _fused_forward(x: Tensor, u: Tensor | None, grid: Grid, want_mask: bool) -> tuple:
    # Buffers from torch's allocator, like every other tensor (memory profiles count them).
    # On a VM, each fresh multi-MB buffer that glibc maps anew costs page faults comparable to
    # the pass itself; numpy-backed buffers (reused from glibc's heap) avoid most of them, but
    # are invisible to torch's memory profiler and cannot be resized.
    out = torch.empty(x.shape, dtype=x.dtype)
    mask = torch.empty(x.shape, dtype=torch.bool) if want_mask else None
    arrays = (_flat(x), _flat(u), _flat(out), _flat(mask))
    _elementwise(_kernels().forward, arrays, grid.params)
    return out, mask


def _fused_backward_mask(grad: Tensor, mask: Tensor, grid: Grid) -> Tensor:
    out = torch.empty(grad.shape, dtype=grad.dtype)
    factor = grid.params.dtype.type(grid.factor)
    _elementwise(_kernels().backward_mask, (_flat(grad), _flat(mask)), factor, _flat(out))
    return out


def _fused_backward_data(
    grad: Tensor, x: Tensor, u: Tensor | None, grid: Grid, data: DataRange
) -> Tensor:
    kernels = _kernels()
    block = kernels.BLOCK
    out = torch.empty(grad.shape, dtype=grad.dtype)
    gs, xs, os_ = _flat(grad), _flat(x), _flat(out)
    ftype = grid.params.dtype.type
    factor, t_hi, t_lo = ftype(grid.factor), ftype(data.hi), ftype(data.lo)
    want_k, want_in = not data.output_given, not grid.maintain_zero  # see _range_terms
    us = _flat(u) if want_k else None
    pieces = _pieces(xs.size, block)
    sums = np.zeros((len(pieces), 4))
    ties = np.zeros((len(pieces), 2), dtype=np.int64)
    counts = np.zeros(-(-xs.size // block), dtype=np.int32)

    def piece(c: int, a: int, b: int) -> None:
        kernels.backward_data(
            gs[a:b],
            xs[a:b],
            None if us is None else us[a:b],
            os_[a:b],
            grid.params,
            factor,
            t_hi,
            t_lo,
            sums[c],
            ties[c],
            counts[a // block : -(-b // block)],
            np.empty(block, xs.dtype) if want_in else None,
            np.empty(block, xs.dtype) if want_k else None,
        )

    run_pieces(piece, pieces)
    if len(pieces) > 1:
        sums, ties = sums.sum(axis=0, keepdims=True), ties.sum(axis=0, keepdims=True)
    c_hi, c_lo = _range_terms(sums[0].tolist(), ties[0].tolist(), grid, data)
    if c_hi != 0 or c_lo != 0:
        kernels.add_ties(xs, os_, counts, t_hi, ftype(c_hi), t_lo, ftype(c_lo))
    return out


# -- the torch chain --------------------------------------------------------------------------


def _torch_levels(
    x: Tensor, u: Tensor | None, grid: Grid, want_mask: bool = False, want_k: bool = False
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """``(y, mask, k + base)`` by in-place torch operations on one fresh buffer.

    The operations and their order are those of the reference composition; the ones that
    are identities on this grid (``- 0``, ``* 1``, ``+ 0``) are left out.
    """
    lev = torch.clamp(x, grid.in_lo, grid.in_hi)
    mask = (x >= grid.in_lo) & (x <= grid.in_hi) if want_mask else None
    if grid.maintain_zero:
        lev.mul_(grid.gain).div_(grid.div).sub_(grid.base)
    else:
        lev.sub_(grid.sub).div_(grid.div)
    if mask is not None:
        mask &= (lev >= 0) & (lev <= grid.top)
    k = lev.clamp_(0, grid.top)
    if u is None:
        k.round_()
    else:
        low = torch.floor(k)
        k = low.add_(k.sub_(low).gt_(u))
    if grid.maintain_zero:
        k.add_(grid.base)
    k_base = k.clone() if want_k else None
    y = k.mul_(grid.step)
    if not grid.maintain_zero:
        y.add_(grid.origin)
    return y.clamp_(grid.out_lo, grid.out_hi), mask, k_base


def _torch_backward(
    grad: Tensor, x: Tensor, u: Tensor | None, grid: Grid, data: DataRange | None
) -> Tensor:
    _, mask, k_base = _torch_levels(x, u, grid, want_mask=True, want_k=data is not None)
    g_in = grad * mask
    out = g_in * grid.factor
    if data is None:
        return out
    dims = data.dims

    def total(t: Tensor) -> Tensor:
        return t.sum() if dims is None else t.sum(dims, keepdim=True)

    shifted = x if grid.maintain_zero else x - grid.sub
    at_hi, at_lo = x == data.hi, x == data.lo
    sums = (total(grad), total(g_in), total(g_in * shifted), total(grad * k_base))
    c_hi, c_lo = _range_terms(sums, (total(at_hi), total(at_lo)), grid, data)
    return out.add_(torch.where(at_hi, c_hi, 0.0)).add_(torch.where(at_lo, c_lo, 0.0))


# -- the gradient through a data-derived range ------------------------------------------------


def _nonzero(x: Scalar) -> Scalar:
    """``x`` where non-zero, else 1 (a safe denominator), for floats and tensors."""
    if isinstance(x, Tensor):
        return torch.where(x != 0, x, torch.ones_like(x))
    return x if x != 0 else 1.0


def _finite(x: Scalar) -> Any:
    """Not ±inf, for floats and tensors (NaN counts as finite here: it propagates)."""
    return ~torch.isinf(x) if isinstance(x, Tensor) else not math.isinf(x)


def _and(a: Any, b: Any) -> Any:
    return a & b if isinstance(a, Tensor) or isinstance(b, Tensor) else a and b


def _select(condition: Any, a: Scalar, b: Scalar) -> Scalar:
    if isinstance(condition, Tensor):
        return torch.where(condition, a, b)
    return a if condition else b


def _range_terms(
    sums: tuple | list, counts: tuple | list, grid: Grid, data: DataRange
) -> tuple[Scalar, Scalar]:
    """The gradient added to each element equal to ``data.hi`` and to ``data.lo``.

    ``sums = (G, G_in, G_x, G_k)`` and ``counts = (#hi, #lo)``, see the module docstring.
    """
    g_all, g_in, g_x, g_k = sums
    n_hi, n_lo = counts
    if grid.maintain_zero:
        m = data.hi
        d_m = -grid.gain * g_x if data.output_given else g_k * grid.step - grid.gain * g_x
        varies = m > 0  # the gain depends on M (not where M = 0 or out_span / 2M overflows)
        if data.output_given:
            varies = _and(varies, _finite((grid.out_hi - grid.out_lo) / _nonzero(m + m)))
        d_m = _select(varies, d_m / _nonzero(m), 0.0)
        c = d_m / _nonzero(n_hi + n_lo)  # the elements with |v| = M (two sets unless M = 0)
        return c, -c
    q_in, s = data.spread, grid.factor
    if data.output_given:
        d_hi = -s * g_x / (_nonzero(q_in) * grid.top)
        d_lo, constant = -s * g_in - d_hi, 0.0
    else:
        d_hi = (g_k - s * g_x / _nonzero(q_in)) / grid.top
        d_lo, constant = g_all - s * g_in - d_hi, g_all
    spread = q_in > 0
    d_hi, d_lo = _select(spread, d_hi, 0.0), _select(spread, d_lo, constant)
    return d_hi / _nonzero(n_hi), d_lo / _nonzero(n_lo)


# -- the Function -----------------------------------------------------------------------------


class _GridRound(torch.autograd.Function):
    """Round onto the grid; clipped straight-through gradient plus the data-range term."""

    @staticmethod
    def forward(
        ctx: Any,
        value: Tensor,
        u: Tensor | None,
        grid: Grid,
        data: DataRange | None,
        fused: bool,
    ) -> Tensor:
        ctx.set_materialize_grads(False)
        ctx.grid, ctx.data, ctx.fused = grid, data, fused
        if not fused:
            ctx.save_for_backward(value, u)
            return _torch_levels(value.detach(), u, grid)[0]
        x = value.detach().contiguous()
        out, mask = _fused_forward(x, u, grid, want_mask=data is None)
        if data is None:
            ctx.save_for_backward(mask)
        else:
            ctx.save_for_backward(x, u)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor | None) -> tuple[Tensor | None, None, None, None, None]:
        if grad is None or not ctx.needs_input_grad[0]:
            return None, None, None, None, None
        grid, data = ctx.grid, ctx.data
        # create_graph=True: torch operations, so that the result stays differentiable in grad
        differentiable = torch.is_grad_enabled()
        if ctx.fused and data is None:
            (mask,) = ctx.saved_tensors
            if differentiable:
                out = grad * mask * grid.factor
            else:
                out = _fused_backward_mask(grad.contiguous(), mask, grid)
        else:
            x, u = ctx.saved_tensors
            if ctx.fused and not differentiable:
                out = _fused_backward_data(grad.contiguous(), x, u, grid, data)
            else:
                out = _torch_backward(grad, x.detach(), u, grid, data)
        return out, None, None, None, None


class _DataRound(torch.autograd.Function):
    """:class:`_GridRound` with the zero-anchored range ``[-M, M]`` of the data, where the
    range, the grid and the rounding are one compiled call (:func:`round_data_range`)."""

    @staticmethod
    def forward(
        ctx: Any, value: Tensor, u: Tensor | None, num_levels: int, output_range: Any
    ) -> Tensor:
        ctx.set_materialize_grads(False)
        x = value.detach()
        out, params = _data_forward(x, u, num_levels, output_range)
        ctx.save_for_backward(x, u)
        ctx.params, ctx.output_given = params, output_range is not None
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor | None) -> tuple[Tensor | None, None, None, None]:
        if grad is None or not ctx.needs_input_grad[0]:
            return None, None, None, None
        if torch.is_grad_enabled():  # create_graph=True: the differentiable torch path
            grid = ctx.grid = grid_of(ctx.params, True)
            ctx.data = DataRange(grid.in_lo, grid.in_hi, ctx.output_given, float(ctx.params[15]))
            ctx.fused = True
            return _GridRound.backward(ctx, grad)[:4]
        x, u = ctx.saved_tensors
        grad = grad.contiguous()
        out = torch.empty(grad.shape, dtype=grad.dtype)
        arrays = (_flat(grad), _flat(x), _flat(u), _flat(out))
        _kernels().backward_data_range(*arrays, ctx.params, ctx.output_given)
        return out, None, None, None


_FLOAT_TYPES = {torch.float32: np.float32, torch.float64: np.float64}

_BITS = {
    np.float32: (np.uint32, np.uint32(2**31 - 1)),
    np.float64: (np.uint64, np.uint64(2**63 - 1)),
}
"""Per float type: the unsigned integer type of its width and the mask of all bits but the
sign (what :func:`snnqat.transform._fused_kernels.abs_max` reads)."""


ONE_CALL_MAX = MIN_CHUNK
"""Elements up to which :func:`round_data_range` takes a tensor: the tensors that one thread
rounds anyway. There the Python around the passes (torch's range reduction and two ``.item()``,
the grid, the calls) costs more than what the threaded reduction saves (the activations of the
benchmark's size S, 204 800 elements: 1.24x -> 1.20x the plain step with ``param+act``).
Larger tensors take torch's reduction (vectorised, threaded) and are split between threads."""


def data_range_fusable(value: Tensor) -> bool:
    """Whether :func:`round_data_range` can take ``value``: a contiguous, non-empty CPU
    float32/float64 tensor of at most :data:`ONE_CALL_MAX` elements, with numba installed."""
    return (
        value.is_cpu
        and value.dtype in _FLOAT_TYPES
        and 0 < value.numel() <= ONE_CALL_MAX
        and value.is_contiguous()
        and _kernels() is not None
    )


def _data_forward(
    x: Tensor, u: Tensor | None, num_levels: int, output_range: tuple[float, float] | None
) -> tuple[Tensor, np.ndarray]:
    ftype = _FLOAT_TYPES[x.dtype]
    params = _grid.template(ftype, num_levels, *(output_range or (0.0, 0.0)))
    out = torch.empty(x.shape, dtype=x.dtype)
    xs, (utype, magnitude) = _flat(x), _BITS[ftype]
    bits, given = xs.view(utype), output_range is not None
    _kernels().forward_data(xs, _flat(u), _flat(out), None, params, given, bits, magnitude)
    return out, params


def round_data_range(
    value: Tensor,
    u: Tensor | None,
    num_levels: int,
    output_range: tuple[float, float] | None = None,
) -> Tensor:
    """:func:`round_onto_grid` onto the zero-anchored grid of ``[-M, M]``, ``M = max|value|``
    (onto ``output_range`` if given), in one compiled call; ``value`` passes
    :func:`data_range_fusable`. Same values and gradients as resolving that grid first."""
    if value.requires_grad and torch.is_grad_enabled():
        return _DataRound.apply(value, u, num_levels, output_range)
    return _data_forward(value.detach(), u, num_levels, output_range)[0]


def round_onto_grid(
    value: Tensor, u: Tensor | None, grid: Grid, data: DataRange | None = None
) -> Tensor:
    """Round ``value`` onto ``grid`` (see the module docstring), differentiable in ``value``.

    Args:
        value: Floating-point tensor.
        u: Uniform draws of ``value``'s shape and type for the stochastic rounding, or ``None``
            for rounding to the nearest level (ties to even).
        grid: The resolved grid.
        data: The range taken from the data, or ``None`` when the input range was given.

    Returns:
        The rounded tensor, same shape and dtype.
    """
    fused = _fusable(value, grid)
    if value.requires_grad and torch.is_grad_enabled():
        return _GridRound.apply(value, u, grid, data, fused)
    if fused:
        return _fused_forward(value.contiguous(), u, grid, want_mask=False)[0]
    return _torch_levels(value, u, grid)[0]
