"""Neural-network modules and combinators."""

from snnqat.nn import combinators, modules

__all__ = ["modules", "combinators"]
