"""Straight-through estimators: every custom ``torch.autograd.Function`` of the transforms.

A straight-through estimator (STE) evaluates a hard, piecewise-constant operation
``h(x)`` in the forward pass and back-propagates the Jacobian of a smooth *surrogate*
``g(x)`` instead of ``h'(x)`` (which is zero almost everywhere). Each function below
documents its pair ``(h, g)``:

=============================  ============================  ==============================
function                       forward ``h(x)``              gradient ``g'(x)``
=============================  ============================  ==============================
``round_passthrough``          ``round(x)`` (ties to even)   ``1``
``floor_passthrough``          ``floor(x)``                  ``1``
``clipped_round_passthrough``  ``clamp(round(x), lo, hi)``   ``1`` if ``lo <= x <= hi``
                                                             else ``0``
``scale_gradient``             ``x``                         ``factor``
``make_backward_passthrough``  ``function(x)``               ``1``
=============================  ============================  ==============================

All Functions are defined once, at import, in the ``forward`` + ``setup_context`` style, so
they work under ``torch.func`` (``grad``, ``vmap``, ``jacfwd``, ``jacrev``).

The rounding quantizers (``stochastic_rounding``, ``deterministic_rounding``,
``stochastic_channel_rounding``) are the one exception: they round in one pass with their own
Function, :mod:`snnqat.transform._fused_rounding`, in the older ``forward(ctx, ...)`` style
(cheaper per call). Its gradient is that of the composition of the Functions here which it
replaces; under ``torch.func`` transforms and ``torch.compile`` the quantizers run that
composition instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = [
    "clipped_round_passthrough",
    "floor_passthrough",
    "make_backward_passthrough",
    "round_passthrough",
    "scale_gradient",
]

_SHAPE_MSG = (
    "make_backward_passthrough: the wrapped function must return a tensor of the input's "
    "shape {expected}; got {got}. An identity gradient needs an element-wise function."
)
_BOUNDS_MSG = (
    "clipped_round_passthrough: lo must be below hi; got lo={lo!r}, hi={hi!r}. "
    "Swap the bounds or widen the interval."
)


def _check_tensor(name: str, value: Any) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor; got {type(value).__name__}. "
            f"Convert it first, e.g. torch.as_tensor(value, dtype=torch.float32)."
        )


class _RoundSTE(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.round(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        pass

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad

    @staticmethod
    def jvp(ctx: Any, tangent: torch.Tensor) -> torch.Tensor:
        return tangent


class _FloorSTE(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.floor(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        pass

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad

    @staticmethod
    def jvp(ctx: Any, tangent: torch.Tensor) -> torch.Tensor:
        return tangent


class _ClippedRoundSTE(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        return torch.clamp(torch.round(x), lo, hi)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        x, lo, hi = inputs
        inside = (x >= lo) & (x <= hi)
        ctx.save_for_backward(inside)
        ctx.save_for_forward(inside)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None

    @staticmethod
    def jvp(ctx: Any, tangent: torch.Tensor, *_: Any) -> torch.Tensor:
        (inside,) = ctx.saved_tensors
        return tangent * inside


class _ScaleGradient(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, factor: float) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        ctx.factor = inputs[1]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.factor, None

    @staticmethod
    def jvp(ctx: Any, tangent: torch.Tensor, *_: Any) -> torch.Tensor:
        return tangent * ctx.factor


class _Passthrough(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, function: Callable[[torch.Tensor], torch.Tensor]) -> Any:
        out = function(x)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(_SHAPE_MSG.format(expected=tuple(x.shape), got=got))
        return out

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        pass

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        return (grad if ctx.needs_input_grad[0] else None), None

    @staticmethod
    def jvp(ctx: Any, tangent: torch.Tensor, *_: Any) -> torch.Tensor:
        return tangent


def round_passthrough(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest integer, with an identity (straight-through) gradient.

    Forward ``torch.round(x)`` (ties go to the even neighbour); backward
    ``d out / d x = 1``.

    Args:
        x: Any floating-point tensor.

    Returns:
        ``torch.round(x)``, differentiable as the identity.

    Examples:
        >>> x = torch.tensor([0.5, 1.5, 2.5, -0.7], requires_grad=True)
        >>> y = round_passthrough(x)
        >>> y.detach()
        tensor([ 0.,  2.,  2., -1.])
        >>> y.sum().backward()
        >>> x.grad
        tensor([1., 1., 1., 1.])
    """
    _check_tensor("x", x)
    return _RoundSTE.apply(x)


def floor_passthrough(x: torch.Tensor) -> torch.Tensor:
    """Round down, with an identity (straight-through) gradient.

    Forward ``torch.floor(x)``; backward ``d out / d x = 1``.

    Args:
        x: Any floating-point tensor.

    Returns:
        ``torch.floor(x)``, differentiable as the identity.

    Examples:
        >>> x = torch.tensor([0.5, 1.9, -0.1], requires_grad=True)
        >>> floor_passthrough(x).detach()
        tensor([ 0.,  1., -1.])
    """
    _check_tensor("x", x)
    return _FloorSTE.apply(x)


def clipped_round_passthrough(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    r"""Round and clamp to ``[lo, hi]``, with a clipped straight-through gradient.

    Forward ``clamp(round(x), lo, hi)``; backward is the gradient of the surrogate
    ``clamp(x, lo, hi)``:

    .. math::

        \frac{\partial\, \mathrm{out}}{\partial x} = \mathbb{1}[lo \le x \le hi].

    Values outside the interval receive no gradient, so training does not push them
    further out (the usual "clipped STE" of QAT).

    Args:
        x: Any floating-point tensor.
        lo: Lower bound (a Python number).
        hi: Upper bound, strictly above ``lo``.

    Returns:
        The rounded, clamped tensor.

    Raises:
        ValueError: If ``lo >= hi``.

    Examples:
        >>> x = torch.tensor([-2.0, 0.4, 3.6, 9.0], requires_grad=True)
        >>> y = clipped_round_passthrough(x, 0, 4)
        >>> y.detach()
        tensor([0., 0., 4., 4.])
        >>> y.sum().backward()
        >>> x.grad
        tensor([0., 1., 1., 0.])
    """
    _check_tensor("x", x)
    if not lo < hi:
        raise ValueError(_BOUNDS_MSG.format(lo=lo, hi=hi))
    return _ClippedRoundSTE.apply(x, lo, hi)


def scale_gradient(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Return ``x`` unchanged, multiplying its gradient by ``factor``.

    Forward ``x``; backward ``d out / d x = factor``. Used by the LSQ quantizer to scale
    the step-size gradient.

    Args:
        x: Any floating-point tensor.
        factor: The gradient multiplier (a Python number).

    Returns:
        A copy of ``x``.

    Examples:
        >>> s = torch.tensor(2.0, requires_grad=True)
        >>> (3 * scale_gradient(s, 0.1)).backward()
        >>> s.grad
        tensor(0.3000)
    """
    _check_tensor("x", x)
    return _ScaleGradient.apply(x, float(factor))


class _BackwardPassthrough:
    """A picklable callable applying ``function`` with an identity gradient."""

    def __init__(self, function: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.function = function

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_tensor("x", x)
        return _Passthrough.apply(x, self.function)

    def __repr__(self) -> str:
        name = getattr(self.function, "__name__", repr(self.function))
        return f"make_backward_passthrough({name})"


def make_backward_passthrough(
    function: Callable[[torch.Tensor], torch.Tensor],
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Wrap an element-wise function so that its gradient is the identity (STE).

    The returned callable takes exactly one tensor ``x`` and computes ``function(x)`` in
    the forward pass; the backward pass returns the incoming gradient unchanged
    (``d out / d x = 1``), or ``None`` when ``x`` does not require a gradient. One
    shared ``autograd.Function`` serves every wrapped function, so no class is built per
    call.

    Args:
        function: ``Tensor -> Tensor`` returning a tensor of the input's shape.

    Returns:
        The straight-through version of ``function``.

    Raises:
        TypeError: If ``function`` is not callable.

    Examples:
        >>> ste_sign = make_backward_passthrough(torch.sign)
        >>> x = torch.tensor([-0.3, 0.0, 2.0], requires_grad=True)
        >>> ste_sign(x).sum().backward()
        >>> x.grad
        tensor([1., 1., 1.])
        >>> ste_sign
        make_backward_passthrough(sign)
    """
    if not callable(function):
        raise TypeError(
            f"function must be callable (Tensor -> Tensor); got {type(function).__name__}. "
            "Pass a function such as torch.round."
        )
    return _BackwardPassthrough(function)
