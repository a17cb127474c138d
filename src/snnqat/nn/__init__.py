"""Neural-network modules and combinators, and :func:`checkpoint_in_time` /
:class:`TimeCheckpointed` (training over long sequences in bounded memory)."""

from snnqat.nn import combinators, modules
from snnqat.nn.checkpoint import TimeCheckpointed, checkpoint_in_time

__all__ = ["modules", "combinators", "checkpoint_in_time", "TimeCheckpointed"]
