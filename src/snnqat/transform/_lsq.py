"""Learned step size quantization (LSQ): a quantizer with a trainable scale."""

from __future__ import annotations

import math
from typing import Any

import torch

from snnqat.transform._ste import (
    round_passthrough,
    scale_gradient,
)
from snnqat.transform._validation import (
    _MIN_LSQ_SCALE,
    _check_bool,
    _check_int,
    _check_nonempty,
    _check_positive,
    _check_tensor,
)

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
