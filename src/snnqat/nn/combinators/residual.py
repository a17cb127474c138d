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
            last = list(self._modules.values())[-1]
            while "_mod" in last._modules:  # look through transformation wrappers
                last = last._modules["_mod"]
            last.__dict__["_spike_offset"] = data
            return super().evolve(data, record=record)
        out, state, rec = super().evolve(data, record=record)
        return out + data, state, rec


def Residual(*mods: Any, **kwargs: Any) -> TorchResidual:  # noqa: N802 - factory
    """Build a :class:`TorchResidual` block from modules."""
    return TorchResidual(*mods, **kwargs)
