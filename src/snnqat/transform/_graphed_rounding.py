"""The rounding quantizers on a GPU, replayed as CUDA graphs.

On a GPU a quantizer call is a few dozen small kernels (the range of the data, the grid's
scalars, the rounding; in the backward pass the mask, the sums and the range terms), each
costing more to launch than to run: at the benchmark's size S on an H200, a ``param`` step
(four weight quantizers) took 1.90x the plain step with them launched one by one, 1.10x
replayed (``param+act``, three more on the activations: 2.62x and 1.17x). Like the LIF loops
(:mod:`snnqat.kernels._graphs`), the forward and the backward pass of each call structure
(shape, dtype, device, ranges, levels, rounding mode) are captured the second time the
structure comes and replayed from then on: one launch, plus copying the input in and the
output out.

The grid's scalar tensors, which the backward pass needs, leave the forward graph packed into
one tensor (one copy out instead of a dozen), with a template of which fields they fill.
Values and gradients are those of the launched kernels (the same operations on the same
data).

Switched off with :func:`set_quantizer_cuda_graphs`; the graphs' memory is released with the
LIF loops' by :func:`snnqat.kernels.release_cuda_graphs`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from snnqat.kernels import _graphs
from snnqat.transform._fused_rounding import DataRange, Grid, _torch_backward, _torch_levels

__all__ = ["GRAPH_MAX_NUMEL", "graphed", "round_graphed", "set_quantizer_cuda_graphs"]

_ENABLED = [True]
"""Whether the rounding quantizers replay CUDA graphs (see :func:`set_quantizer_cuda_graphs`)."""


def set_quantizer_cuda_graphs(enabled: bool) -> bool:
    """Switch the CUDA graphs of the rounding quantizers on a GPU on (the default) or off.

    On: the second call of each structure (shape, dtype, device, ranges, levels, rounding
    mode, for tensors of up to :data:`GRAPH_MAX_NUMEL` elements) captures its forward and
    backward kernels as CUDA graphs, later calls replay them
    (at the benchmark's size S on an H200, a ``param`` step took 1.10x the plain step instead
    of 1.90x with the kernels launched). Each captured structure keeps its input and output
    buffers until :func:`snnqat.kernels.release_cuda_graphs`. Off: the kernels are launched one
    by one. Values and gradients are the same either way.

    Args:
        enabled: The new setting.

    Returns:
        The previous setting.

    Raises:
        TypeError: ``enabled`` is not a bool.

    Example:
        >>> previous = set_quantizer_cuda_graphs(False)
        >>> set_quantizer_cuda_graphs(previous)
        False
    """
    if not isinstance(enabled, bool):
        raise TypeError(
            f"enabled: expected a bool, got {type(enabled).__name__}. "
            "Example: set_quantizer_cuda_graphs(False)."
        )
    previous, _ENABLED[0] = _ENABLED[0], enabled
    return previous


Resolve = Callable[[Tensor], tuple[Grid, DataRange | None]]
"""The grid of one call from the (detached) value: ``(grid, data range or None)``."""


class _Slot(NamedTuple):
    """Where a tensor field lies in the packed tensor: ``packed[start:stop].view(shape)``."""

    start: int
    stop: int
    shape: torch.Size


GRAPH_MAX_NUMEL = 1 << 22
"""Tensors up to this many elements are rounded through CUDA graphs. A kernel over a larger one
runs longer than its launch takes (16 MB of float32 read and written at the H200's ~4 TB/s:
about 8 µs), so the host queues the launches ahead of the GPU and a graph saves little, while
its input and output buffers (several tensors of that size per structure) stay allocated. The
weights, and the activations of the benchmark's sizes S and M, lie below; L's above."""


def graphed(value: Tensor) -> bool:
    """Whether a quantizer call on ``value`` runs through CUDA graphs."""
    return _ENABLED[0] and value.numel() <= GRAPH_MAX_NUMEL and _graphs.graphs_supported(value)


def _pack(grid: Grid, data: DataRange | None, like: Tensor) -> tuple[tuple, Tensor]:
    """The template of ``(grid, data)`` and its tensor fields concatenated into one tensor
    (a zero of ``like``'s type where there are none: a grid of given ranges)."""
    flat: list[Tensor] = []
    start = 0

    def template(fields: NamedTuple) -> NamedTuple:
        nonlocal start
        out = []
        for v in fields:
            if isinstance(v, Tensor):
                flat.append(v.reshape(-1))
                out.append(_Slot(start, start + v.numel(), v.shape))
                start += v.numel()
            else:
                out.append(v)
        return type(fields)(*out)

    shapes = (template(grid), None if data is None else template(data))
    return shapes, torch.cat(flat) if flat else like.new_zeros(1)


def _unpack(template: tuple, packed: Tensor) -> tuple[Grid, DataRange | None]:
    """``(grid, data)`` with views of ``packed`` in the tensor fields of ``template``."""

    def fill(fields: NamedTuple) -> NamedTuple:
        return type(fields)(
            *(packed[v.start : v.stop].view(v.shape) if isinstance(v, _Slot) else v for v in fields)
        )

    grid_t, data_t = template
    return fill(grid_t), None if data_t is None else fill(data_t)


def _forward_fn(resolve: Resolve) -> Callable[[Tensor, Tensor | None], tuple]:
    """The forward computation: ``(y, packed grid, template)`` (the template, plain Python
    values, is returned as it was at the capture by every replay)."""

    def run(x: Tensor, u: Tensor | None) -> tuple[Tensor, Tensor, tuple]:
        grid, data = resolve(x)
        template, packed = _pack(grid, data, x)
        return _torch_levels(x, u, grid)[0], packed, template

    return run


def _run(key: Hashable, fn: Callable, args: tuple) -> tuple[Any, bool]:
    switch = "snnqat.transform.set_quantizer_cuda_graphs(False)"
    return _graphs.run_graphed(key, fn, args, name="a rounding quantizer", switch=switch)


class _GraphedRound(torch.autograd.Function):
    """Round onto the grid that ``resolve`` finds, through the graphs of ``key``."""

    @staticmethod
    def forward(
        ctx: Any, value: Tensor, u: Tensor | None, key: Hashable, resolve: Resolve
    ) -> Tensor:
        ctx.set_materialize_grads(False)
        run = _forward_fn(resolve)
        (y, packed, template), replayed = _run(("round", key), run, (value.detach(), u))
        if replayed:  # the graph's buffers
            y, packed = y.clone(), packed.clone()
        ctx.save_for_backward(value, u, packed)
        ctx.key, ctx.template = key, template
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor | None) -> tuple[Tensor | None, None, None, None]:
        if grad is None or not ctx.needs_input_grad[0]:
            return None, None, None, None
        value, u, packed = ctx.saved_tensors
        template, x = ctx.template, value.detach()

        def run(grad: Tensor, x: Tensor, u: Tensor | None, packed: Tensor) -> Tensor:
            return _torch_backward(grad, x, u, *_unpack(template, packed))

        if torch.is_grad_enabled():  # create_graph=True: the differentiable torch operations
            return run(grad, x, u, packed), None, None, None
        out, replayed = _run(("round-grad", ctx.key), run, (grad, x, u, packed))
        return (out.clone() if replayed else out), None, None, None


def round_graphed(value: Tensor, u: Tensor | None, key: Hashable, resolve: Resolve) -> Tensor:
    """Round ``value`` onto the grid ``resolve(value)`` (with the uniform draws ``u`` for the
    stochastic rounding, or ``None``), through CUDA graphs: values and gradients of
    :func:`~snnqat.transform._fused_rounding.round_onto_grid` on that grid.

    Args:
        value: A CUDA tensor that passes :func:`graphed`.
        u: Uniform draws of ``value``'s shape, or ``None``.
        key: Everything besides ``value``'s shape, dtype and device that decides the kernels:
            the ranges, the levels, the rounding mode.
        resolve: Finds the grid from the value's data, on the GPU (no synchronisation).

    Returns:
        The rounded tensor.
    """
    key = (value.shape, value.dtype, value.device, u is None, key)
    if value.requires_grad and torch.is_grad_enabled():
        return _GraphedRound.apply(value, u, key, resolve)
    (y, _, _), replayed = _run(("round", key), _forward_fn(resolve), (value.detach(), u))
    return y.clone() if replayed else y
