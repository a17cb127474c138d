"""snnqat modules: the substrate (:class:`Module`, :class:`TorchModule`) and layers."""

from snnqat.nn.modules.exp_syn_torch import ExpSynTorch
from snnqat.nn.modules.lif_torch import LIFTorch
from snnqat.nn.modules.linear_torch import LinearTorch
from snnqat.nn.modules.module import Module, ModuleBase
from snnqat.nn.modules.torch_module import TorchModule, TorchModuleParameters

__all__ = [
    "Module",
    "ModuleBase",
    "TorchModule",
    "TorchModuleParameters",
    "LinearTorch",
    "LIFTorch",
    "ExpSynTorch",
]
