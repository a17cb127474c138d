"""Picklable default initialisation functions and value checks for module parameters."""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["kaiming_transposed", "uniform_fan_in", "zeros", "constant", "checked_value"]


def kaiming_transposed(shape: tuple[int, ...]) -> torch.Tensor:
    """Kaiming-uniform on the transposed ``(Nout, Nin)`` matrix: ``U(±sqrt(6 / Nin))``."""
    return torch.empty(shape).uniform_(-1.0, 1.0) * math.sqrt(6.0 / shape[0])


class uniform_fan_in:  # noqa: N801 - used like a function
    """``U(±1/sqrt(fan_in))`` of the given shape (the torch ``nn.Linear`` bias rule)."""

    def __init__(self, fan_in: int) -> None:
        self.fan_in = fan_in

    def __call__(self, shape: tuple[int, ...]) -> torch.Tensor:
        bound = 1.0 / math.sqrt(max(self.fan_in, 1))
        return torch.empty(shape).uniform_(-bound, bound)


def zeros(shape: tuple[int, ...]) -> torch.Tensor:
    """Zeros of the given shape."""
    return torch.zeros(shape)


class constant:  # noqa: N801 - used like a function
    """A constant of the given shape."""

    def __init__(self, value: float) -> None:
        self.value = float(value)

    def __call__(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.full(shape, self.value)


def checked_value(name: str, value: Any, positive: bool = False) -> Any:
    """``value`` as a float tensor, finite (and ``> 0`` if ``positive``); ``None`` passes."""
    if value is None:
        return None
    if not isinstance(value, (torch.Tensor, float, int, list, tuple)) and not hasattr(
        value, "__array__"
    ):
        raise TypeError(f"{name}: expected a number or a tensor, got {type(value).__name__}.")
    t = torch.as_tensor(value, dtype=torch.get_default_dtype())
    if not torch.isfinite(t).all():
        raise ValueError(f"{name}: expected finite values, got {t.tolist()}.")
    if positive and not (t > 0).all():
        raise ValueError(f"{name}: expected values > 0, got {t.tolist()}.")
    return t
