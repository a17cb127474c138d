r"""Integer (hardware) delivery of spikes into saturating synaptic states.

A Xylo-class core adds each source's weight into the target's synaptic current *one source
at a time*, saturating after every addition. A chain of saturating additions is again one
saturating addition with moved bounds,

.. math::
    \mathrm{clamp}(\mathrm{clamp}(i + c_1, L_1, H_1) + c_2, lo, hi)
      = \mathrm{clamp}(i + c_1 + c_2,\ \mathrm{clamp}(L_1 + c_2, lo, hi),
                       \mathrm{clamp}(H_1 + c_2, lo, hi)),

so the delivery of all sources of one step is ``i -> clamp(i + V, L, H)`` with ``V`` the plain
sum and ``(L, H)`` the images of ``lo`` and ``hi``. :func:`delivery_bounds` computes ``L`` and
``H``; the LIF kernel applies them in its integer mode (:class:`~snnqat.kernels.IntegerSemantics`).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

__all__ = ["HardwareOptions", "delivery_bounds", "delay_steps"]


@dataclasses.dataclass(frozen=True)
class HardwareOptions:
    """Hardware (integer) semantics switched on for one module.

    Attributes:
        state_min: Lower saturation bound of synaptic and membrane states.
        state_max: Upper saturation bound.
        max_dash: Largest bit-shift decay (LIF).
        input_cap: Most spikes per input channel and step that a weight layer delivers
            (``None``: no cap).
        delay: Time steps by which a weight layer delays its input (one per hidden hop).

    Example:
        >>> HardwareOptions(delay=1).delay
        1
    """

    state_min: int = -32768
    state_max: int = 32767
    max_dash: int = 15
    input_cap: float | None = None
    delay: int = 0

    def __post_init__(self) -> None:
        if not self.state_min < self.state_max:
            raise ValueError(
                f"HardwareOptions: expected state_min < state_max, got {self.state_min}, "
                f"{self.state_max}."
            )
        if self.delay < 0:
            raise ValueError(f"HardwareOptions.delay: expected >= 0, got {self.delay}.")


def delay_steps(x: Tensor, steps: int) -> Tensor:
    """Shift ``(B, T, ...)`` by ``steps`` along time, filling the start with zeros.

    Example:
        >>> delay_steps(torch.tensor([[1.0, 2.0, 3.0]]), 1)
        tensor([[0., 1., 2.]])
    """
    if steps == 0:
        return x
    pad = torch.zeros_like(x[:, :steps])
    return torch.cat((pad, x[:, : x.shape[1] - steps]), 1)[:, : x.shape[1]]


@torch.no_grad()
def delivery_bounds(counts: Tensor, weight: Tensor, lo: float, hi: float) -> tuple[Tensor, Tensor]:
    """Bounds ``(L, H)`` of delivering ``counts (B, T, Nin)`` through ``weight (Nin, Nout)``.

    Source ``j`` adds ``counts[..., j] * weight[j]`` (``n`` saturating additions of the same
    weight equal one saturating addition of ``n`` times it), sources in index order.

    Returns:
        ``L, H`` of shape ``(B, T, Nout)``: the result of the delivery starting from ``lo``
        and from ``hi``.

    Example:
        >>> L, H = delivery_bounds(torch.tensor([[[1.0, 1.0]]]), torch.tensor([[5.0], [-3.0]]),
        ...                        -10.0, 10.0)
        >>> L.item(), H.item()  # from -10: -5, -8; from 10: 10, 7
        (-8.0, 7.0)
    """
    b, t, _ = counts.shape
    low = torch.full((b, t, weight.shape[1]), lo, dtype=weight.dtype, device=weight.device)
    high = torch.full_like(low, hi)
    contrib = torch.empty_like(low)
    for j in torch.nonzero(counts.reshape(-1, counts.shape[-1]).any(0)).flatten().tolist():
        torch.mul(counts[..., j : j + 1], weight[j], out=contrib)
        low.add_(contrib).clamp_(lo, hi)
        high.add_(contrib).clamp_(lo, hi)
    return low, high
