"""Constants and argument checks shared by the element-wise transforms (errors say what was
expected, what was got and how to fix it)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import torch

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
    if type(value) is int and value >= low:  # the common case, first (quantizers check per call)
        return value
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
    try:
        bounds = [float(v) for v in value]
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(_RANGE_MSG.format(name=name, got=value)) from None
    if len(bounds) != 2 or not all(map(math.isfinite, bounds)) or bounds[0] >= bounds[1]:
        raise ValueError(_RANGE_MSG.format(name=name, got=value))
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
