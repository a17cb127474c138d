"""Combinators: :func:`Sequential` and :func:`Residual`."""

from snnqat.nn.combinators.residual import Residual, TorchResidual
from snnqat.nn.combinators.sequential import Sequential, TorchSequential

__all__ = ["Sequential", "TorchSequential", "Residual", "TorchResidual"]
