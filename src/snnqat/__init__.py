"""snnqat: spiking neural networks in PyTorch with transformations in training.

Quantization-aware training, stochastic/deterministic rounding, pruning, mismatch and
bit-shift decays, so that a network trained in floating point runs unchanged on integer
neuromorphic hardware.
"""

from snnqat.nn.combinators import Residual, Sequential
from snnqat.nn.modules import ExpSynTorch, LIFTorch, LinearTorch, TorchModule
from snnqat.parameters import Constant, Parameter, SimulationParameter, State

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "Sequential",
    "Residual",
    "LinearTorch",
    "LIFTorch",
    "ExpSynTorch",
    "TorchModule",
    "Parameter",
    "State",
    "SimulationParameter",
    "Constant",
]
