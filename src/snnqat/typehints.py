"""Type aliases used across snnqat's public signatures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["Tree", "Leaf", "TransformFn", "Branch"]

Leaf = Any
"""Any non-``dict`` value in a tree."""

Tree = dict
"""A nested ``dict``; every non-``dict`` value is a leaf."""

Branch = tuple
"""A key path from the root of a tree to a leaf, e.g. ``('0_LinearTorch', 'weight')``."""

TransformFn = Callable[[torch.Tensor], torch.Tensor]
"""A transformation applied to a parameter or an activity tensor."""
