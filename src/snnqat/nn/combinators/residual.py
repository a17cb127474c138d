"""``Residual``: a sequential block whose input is added to its output.

Example:
    >>> import torch
    >>> from snnqat.nn.modules import LinearTorch
    >>> blk = Residual(LinearTorch((2, 2), weight=torch.zeros(2, 2)))
    >>> blk(torch.ones(1, 3, 2))[0][0, 0]
    tensor([1., 1.], grad_fn=<SelectBackward0>)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from snnqat.nn.combinators.sequential import TorchSequential

__all__ = ["Residual", "TorchResidual"]


class TorchResidual(TorchSequential):
    """A residual block: ``output = chain(input) + input``; see :func:`Residual`.

    Raises:
        ValueError: the block's input and output sizes differ.
    """

    def __init__(self, *mods: Any, **kwargs: Any) -> None:
        super().__init__(*mods, **kwargs)
        if self.size_in != self.size_out:
            raise ValueError(
                "`size_in` and `size_out` must be identical for a residual block: got "
                f"size_in={self.size_in}, size_out={self.size_out}."
            )
        self.alias = False

    def evolve(self, input_data: Any, record: bool = False) -> tuple:
        """Evolve the chain and add the (batched) input to its output.

        With ``alias`` set (hardware-faithful mode), the input spikes are instead aliased onto
        the last neuron layer of the chain, as on a Xylo core: they count toward that layer's
        spike cap and are part of its output.
        """
        data, _ = self._auto_batch(input_data)
        if self.alias:
            last = _innermost(list(self._modules.values())[-1])
            last.__dict__["_spike_offset"] = data
            return super().evolve(data, record=record)
        first = _innermost(list(self._modules.values())[0])
        first.__dict__["_shortcut"] = shortcut = _Shortcut(data)
        try:
            out, state, rec = super().evolve(data, record=record)
        finally:
            first.__dict__.pop("_shortcut", None)
        # A first LinearTorch that took ``data`` returned an alias of it to add here (its
        # gradient is then summed inside the Linear's backward product, one pass fewer).
        return out + (data if shortcut.skip is None else shortcut.skip), state, rec


class _Shortcut:
    """The residual input offered to the block's first module, and the alias it returns."""

    __slots__ = ("input", "skip")

    def __init__(self, data: torch.Tensor) -> None:
        self.input, self.skip = data, None


def _innermost(mod: nn.Module) -> nn.Module:
    """``mod`` without its transformation wrappers."""
    while "_mod" in mod._modules:
        mod = mod._modules["_mod"]
    return mod


def Residual(*mods: Any, **kwargs: Any) -> TorchResidual:  # noqa: N802 - factory
    """Build a :class:`TorchResidual` block from modules."""
    return TorchResidual(*mods, **kwargs)
