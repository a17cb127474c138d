"""Registered module attributes: :class:`Parameter`, :class:`State`, :class:`SimulationParameter`.

Assigning one of these to a module attribute registers it with the module, together with a
*family* (a name for a group of parameters, e.g. ``"weights"``) that the transformation
pipeline uses to select parameters.

The family vocabulary is defined here, once: :data:`FAMILIES`. The reference's singular
``"bias"`` is accepted as an alias of ``"biases"``.

Example:
    >>> import torch
    >>> p = Parameter(shape=(2, 3), family="weights", init_func=torch.zeros)
    >>> p.data.shape
    torch.Size([2, 3])
    >>> canonical_family("bias")
    'biases'
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "FAMILIES",
    "FAMILY_ALIASES",
    "Constant",
    "Parameter",
    "ParameterBase",
    "SimulationParameter",
    "State",
    "canonical_family",
    "canonical_families",
]

FAMILIES: tuple[str, ...] = ("weights", "biases", "taus", "decays", "bitshifts", "thresholds")
"""Every parameter family that a module of this library defines."""

FAMILY_ALIASES: dict[str, str] = {"bias": "biases", "weight": "weights", "threshold": "thresholds"}
"""Other spellings accepted wherever a family is named."""


def canonical_family(family: str) -> str:
    """Return the canonical spelling of a family name.

    Families compare by equality, so strings built at run time match too.

    Args:
        family: a family name or one of its aliases.

    Returns:
        The canonical family name.

    Raises:
        TypeError: ``family`` is not a string.
        ValueError: ``family`` is not a known family.

    Example:
        >>> canonical_family("".join(["wei", "ghts"]))
        'weights'
    """
    if not isinstance(family, str):
        raise TypeError(f"family: expected a str, got {type(family).__name__} ({family!r}).")
    fam = FAMILY_ALIASES.get(family, family)
    if fam not in FAMILIES:
        raise ValueError(
            f"family: unknown family {family!r}. Known families: {', '.join(FAMILIES)} "
            f"(aliases: {', '.join(f'{a}->{c}' for a, c in FAMILY_ALIASES.items())})."
        )
    return fam


def canonical_families(family: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """Normalise a family selector (``None``, one name, or several) to a tuple of names.

    Example:
        >>> canonical_families(["bias", "weights"])
        ('biases', 'weights')
        >>> canonical_families(None) is None
        True
    """
    if family is None:
        return None
    if isinstance(family, str):
        return (canonical_family(family),)
    if isinstance(family, Iterable):
        return tuple(canonical_family(f) for f in family)
    raise TypeError(
        f"family: expected None, a str, or a list/tuple of str, got {type(family).__name__}."
    )


class Constant:
    """Mark a value as constant: a :class:`Parameter` built from it becomes a
    :class:`SimulationParameter` (never trained, never returned by ``parameters()``).

    Example:
        >>> import torch
        >>> type(Parameter(Constant(torch.ones(2)))).__name__
        'SimulationParameter'
    """

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __repr__(self) -> str:
        return f"Constant({self.obj!r})"


class _CopyInit:
    """Initialisation function that returns a copy of the constructor value (picklable)."""

    def __init__(self, data: Any) -> None:
        self.data = data.detach().clone() if isinstance(data, torch.Tensor) else copy.deepcopy(data)

    def __call__(self, shape: Any = None) -> Any:
        if isinstance(self.data, torch.Tensor):
            return self.data.clone()
        return copy.deepcopy(self.data)


def _normalise_shapes(shape: Any) -> list[tuple[int, ...]] | None:
    """Turn ``int | tuple | list[tuple]`` into a list of permitted shape tuples."""
    if shape is None:
        return None
    if isinstance(shape, (int, np.integer)):
        return [(int(shape),)]
    if isinstance(shape, list) and shape and all(isinstance(s, (tuple, list)) for s in shape):
        return [_check_shape_tuple(tuple(s)) for s in shape]
    if isinstance(shape, (tuple, list, torch.Size)):
        return [_check_shape_tuple(tuple(shape))]
    raise TypeError(
        f"shape: expected an int, a tuple of ints or a list of tuples, got {type(shape).__name__}."
    )


def _check_shape_tuple(shape: tuple) -> tuple[int, ...]:
    for s in shape:
        if not isinstance(s, (int, np.integer)):
            raise TypeError(f"shape: every element must be an int, got {s!r} in {shape!r}.")
    return tuple(int(s) for s in shape)


class ParameterBase:
    """Base class of registered attributes.

    Args:
        data: the initial value; if ``None``, ``init_func(shape)`` makes it.
        family: the family of this attribute (see :data:`FAMILIES`), or ``None``.
        init_func: ``Callable[[shape], value]`` used when ``data`` is absent and on reset.
        shape: an int, a tuple, or a list of permitted tuples (the first is the default).
        permit_reshape: reshape ``data`` to the first permitted shape with as many elements.
        cast_fn: applied once to the data at construction.

    Raises:
        ValueError: neither ``data`` nor ``shape`` is given, or ``data`` fits no permitted shape.
        TypeError: ``shape`` has non-integer elements.
    """

    def __init__(
        self,
        data: Any = None,
        family: str | None = None,
        init_func: Callable[[Any], Any] | None = None,
        shape: Any = None,
        permit_reshape: bool = True,
        cast_fn: Callable[[Any], Any] | None = None,
    ) -> None:
        if isinstance(data, Constant):
            data = data.obj
        if data is None and shape is None:
            raise ValueError(
                f"{type(self).__name__}: expected `data` or `shape`, got neither. "
                "Pass an initial value or a shape with an `init_func`."
            )
        self.family = family
        shapes = _normalise_shapes(shape)
        if data is None:
            if init_func is None:
                raise ValueError(
                    f"{type(self).__name__}: without `data`, `init_func` is required "
                    f"(got init_func=None for shape {shapes[0]})."
                )
            data = init_func(shapes[0])
        else:
            data = _fit_shape(data, shapes, permit_reshape, type(self).__name__)
            init_func = _CopyInit(data)
        if cast_fn is not None:
            data = cast_fn(data)
        self.data = data
        self.init_func = init_func
        self.shape = tuple(np.shape(data)) if shapes is None or data is not None else shapes[0]
        self.permitted_shapes = shapes

    def __repr__(self) -> str:
        return f"{type(self).__name__}(family={self.family!r}, shape={self.shape})"


def _fit_shape(
    data: Any, shapes: Sequence[tuple[int, ...]] | None, permit_reshape: bool, who: str
) -> Any:
    if shapes is None:
        return data
    got = tuple(np.shape(data))
    if got in shapes:
        return data
    n = int(np.prod(got))
    if permit_reshape:
        for s in shapes:
            if int(np.prod(s)) == n:
                return data.reshape(s) if hasattr(data, "reshape") else np.reshape(data, s)
    raise ValueError(f"{who}: data of shape {got} fits none of the permitted shapes {shapes}.")


class Parameter(ParameterBase):
    """A trainable configuration value of a module (weights, time constants, thresholds...).

    A ``Parameter`` built from a :class:`Constant` becomes a :class:`SimulationParameter`.
    """

    def __new__(cls, data: Any = None, *args: Any, **kwargs: Any) -> ParameterBase:
        if cls is Parameter and isinstance(data, Constant):
            return SimulationParameter(data, *args, **kwargs)
        return super().__new__(cls)

    def __init__(self, data: Any = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(data, *args, **kwargs)


class State(ParameterBase):
    """A transient dynamical state of a module (membrane potential, synaptic current...)."""


class SimulationParameter(ParameterBase):
    """A solver setting or fixed value of a module (``dt``, ``leak_mode``...); never trained."""
