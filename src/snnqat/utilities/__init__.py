"""General-purpose helpers that depend on nothing else in snnqat (except ``typehints``).

``tree_utils`` works on trees (nested dicts); import it as
``import snnqat.utilities.tree_utils as tu``. Its functions are also re-exported here.
:func:`reuse_freed_memory` keeps freed CPU memory for reuse (fewer page faults in training); the
LIF layers apply it at their first training call (:func:`reuse_freed_memory_for_training`).
"""

from snnqat.utilities import tree_utils
from snnqat.utilities.memory import reuse_freed_memory, reuse_freed_memory_for_training
from snnqat.utilities.tree_utils import (
    branches,
    get_nested,
    make_prototype_tree,
    set_matching,
    set_matching_select,
    set_nested,
    tree_find,
    tree_flatten,
    tree_map,
    tree_unflatten,
    tree_update,
)

__all__ = [
    "tree_utils",
    "branches",
    "get_nested",
    "set_nested",
    "set_matching",
    "set_matching_select",
    "make_prototype_tree",
    "tree_map",
    "tree_flatten",
    "tree_unflatten",
    "tree_update",
    "tree_find",
    "reuse_freed_memory",
    "reuse_freed_memory_for_training",
]
