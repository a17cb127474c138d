"""Composition of element-wise transforms (:func:`chain`)."""

from __future__ import annotations

import functools
import types
from collections.abc import Callable

import torch

from snnqat.transform._validation import (
    _CALLABLE_MSG,
)

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
        >>> from snnqat.transform.torch_transform import magnitude_prune, round_passthrough
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
