"""``LinearTorch``: a dense weight layer ``y = x @ W (+ b)`` over ``(B, T, Nin)`` input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from snnqat.kernels import HardwareOptions, delay_steps, delivery_bounds, matmul_with_shortcut
from snnqat.nn.modules._init import checked_value, kaiming_transposed, uniform_fan_in
from snnqat.nn.modules.torch_module import TorchModule
from snnqat.parameters import Parameter

__all__ = ["LinearTorch"]


class LinearTorch(TorchModule):
    """A linear weight layer.

    ``y[b, t] = x[b, t] @ weight (+ bias)`` with ``weight`` of shape ``(Nin, Nout)``
    (family ``weights``) and an optional ``bias`` of shape ``(Nout,)`` (family ``biases``).

    Args:
        shape: ``(Nin, Nout)``.
        weight: initial weights, or ``None`` for Kaiming-uniform ``U(±sqrt(6/Nin))``.
        bias: initial bias (implies ``has_bias=True``), or ``None``.
        has_bias: whether the layer has a bias.
        weight_init_func: ``Callable[[shape], Tensor]`` used when ``weight`` is ``None``.
        bias_init_func: ``Callable[[shape], Tensor]`` used when ``bias`` is ``None``.

    Raises:
        ValueError: ``shape`` does not have two elements.

    Example:
        >>> lin = LinearTorch((3, 2), weight=torch.ones(3, 2))
        >>> out, _, _ = lin(torch.ones(1, 4, 3))
        >>> out[0, 0]
        tensor([3., 3.], grad_fn=<SelectBackward0>)
        >>> lin
        LinearTorch  with shape (3, 2)
    """

    def __init__(
        self,
        shape: tuple,
        weight: Any = None,
        bias: Any = None,
        has_bias: bool = False,
        weight_init_func: Callable = kaiming_transposed,
        bias_init_func: Callable | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        shape = _check_linear_shape(shape)
        super().__init__(shape=shape, spiking_input=False, spiking_output=False, **kwargs)
        weight, bias = checked_value("weight", weight), checked_value("bias", bias)
        self.weight = Parameter(weight, family="weights", init_func=weight_init_func, shape=shape)
        has_bias = has_bias or bias is not None
        if has_bias:
            self.bias = Parameter(
                bias,
                family="biases",
                init_func=bias_init_func or uniform_fan_in(shape[0]),
                shape=[(shape[1],), ()],
            )
        else:
            self.bias = None
        self.hardware: HardwareOptions | None = None

    def forward(self, data: Any) -> torch.Tensor:
        """Apply the weights to ``(B, T, Nin)`` input; returns ``(B, T, Nout)``.

        With ``hardware`` options set (see :func:`snnqat.devices.xylo.hardware_faithful`),
        the input spike counts are capped and delayed, and the output is
        ``(B, T, Nout, 3)``: the summed currents and the bounds of their saturating
        delivery (:func:`snnqat.kernels.delivery_bounds`), which an integer-mode LIF applies.
        """
        shortcut = self.__dict__.pop("_shortcut", None)  # set by a residual block, see there
        data, _ = self._auto_batch(data)
        if self.hardware is not None:
            return _hardware_forward(data, self.weight, self.hardware)
        if shortcut is not None and data is shortcut.input:
            out, shortcut.skip = matmul_with_shortcut(data, self.weight)
        else:
            out = data @ self.weight
        return out + self.bias if self.bias is not None else out

    def as_graph(self) -> Any:
        """Not provided: use :func:`snnqat.nir.to_nir` for graph export."""
        raise NotImplementedError("LinearTorch.as_graph: use snnqat.nir.to_nir instead.")


def _hardware_forward(data: torch.Tensor, weight: torch.Tensor, hw: HardwareOptions):
    if hw.input_cap is not None:
        data = data + (data.clamp(max=hw.input_cap) - data).detach()
    data = delay_steps(data, hw.delay)
    lo, hi = delivery_bounds(data.detach(), weight.detach(), hw.state_min, hw.state_max)
    return torch.stack((data @ weight, lo, hi), -1)


def _check_linear_shape(shape: Any) -> tuple[int, int]:
    if isinstance(shape, int) or not hasattr(shape, "__len__") or len(shape) != 2:
        raise ValueError(
            f"shape: LinearTorch expects a 2-element shape (Nin, Nout), got {shape!r}. "
            "Example: LinearTorch((16, 64))."
        )
    for s in shape:
        if not isinstance(s, int) or s < 1:
            raise ValueError(f"shape: expected positive ints (Nin, Nout), got {shape!r}.")
    return (int(shape[0]), int(shape[1]))
