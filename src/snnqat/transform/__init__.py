"""Transformations in training: quantizers, wrappers and the patching pipeline.

See :mod:`snnqat.transform.torch_transform`.
"""

from snnqat.transform import torch_transform
from snnqat.transform.torch_transform import *  # noqa: F403
from snnqat.transform.torch_transform import __all__ as _tt_all

__all__ = ["torch_transform", *_tt_all]
