"""A matrix product whose input also feeds a residual shortcut, with the two gradients of the
input summed inside the backward product.

In ``out = f(x) + x`` with ``f`` starting with ``x @ W``, autograd forms the input's gradient as
``g + g_y Wᵀ``: a product into a fresh tensor, then an element-wise addition, one more pass over
a ``(B, T, N)`` tensor. :func:`matmul_with_shortcut` returns ``x @ W`` *and* an alias of ``x``
for the shortcut; its backward pass receives both gradients at once and forms
``addmm(g, g_y, Wᵀ)``: the addition happens inside the product (``β = 1``).

Example:
    >>> import torch
    >>> x = torch.ones(1, 2, 3, requires_grad=True)
    >>> w = torch.ones(3, 3, requires_grad=True)
    >>> y, skip = matmul_with_shortcut(x, w)
    >>> (y + skip).sum().backward()
    >>> x.grad[0, 0]
    tensor([4., 4., 4.])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from snnqat.kernels._autocast import autocast_on

__all__ = ["matmul_with_shortcut"]


class _MatmulShortcut(torch.autograd.Function):
    """``(x @ W, x)``; backward ``(g_y Wᵀ + g_x, xᵀ g_y)`` with the sum inside the product."""

    @classmethod
    def apply(cls, *args):  # noqa: ANN002, ANN206
        """``Function.apply`` without its per-call ``inspect.signature`` binding (about 30 µs;
        :func:`matmul_with_shortcut` always passes both arguments positionally and never
        under functorch transforms, where torch's own path would be needed)."""
        return super(torch.autograd.Function, cls).apply(*args)

    @staticmethod
    def forward(x: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:  # noqa: D102
        return x @ w, x.view_as(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:  # noqa: D102
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx: Any, g_y: Tensor | None, g_skip: Tensor | None) -> tuple:  # noqa: D102
        x, w = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad
        g_x = g_w = None
        if need_x:
            if g_y is None:
                g_x = g_skip
            elif g_skip is None:
                g_x = g_y @ w.transpose(0, 1)
            else:
                flat = g_y.reshape(-1, g_y.shape[-1])
                g_x = torch.addmm(g_skip.reshape(-1, x.shape[-1]), flat, w.transpose(0, 1))
                g_x = g_x.view(x.shape)
        if need_w and g_y is not None:
            g_w = x.reshape(-1, x.shape[-1]).transpose(0, 1) @ g_y.reshape(-1, g_y.shape[-1])
        return g_x, g_w


def matmul_with_shortcut(x: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """``(x @ w, skip)``: the product and an alias of ``x`` to add at the end of the block.

    Values are those of ``x @ w`` and ``x``. Gradients are those of using ``x`` twice, except
    that the input's two gradients are summed inside the backward product
    (``torch.addmm(g_skip, g_y, wᵀ)``) instead of by autograd after it.

    Args:
        x: ``(..., N_in)`` input.
        w: ``(N_in, N_out)`` weights.

    Returns:
        ``(x @ w, skip)``; ``skip`` has ``x``'s values and must be used instead of ``x`` for
        the shortcut, so that its gradient reaches the product. Under ``torch.compile``,
        ``torch.autocast`` and functorch transforms (and for a weight that is not a matrix) the
        product is the plain ``x @ w`` and ``skip`` is ``x`` itself.
    """
    plain = w.ndim != 2 or x.ndim < 2 or torch.compiler.is_compiling()
    plain = plain or autocast_on(x.device.type)  # autograd's own node casts the gradients
    if plain or torch._C._are_functorch_transforms_active():
        return x @ w, x  # plain autograd (traced code, autocast, functorch transforms, shapes)
    return _MatmulShortcut.apply(x, w)
