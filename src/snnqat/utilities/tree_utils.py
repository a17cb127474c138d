"""Utilities for trees: nested ``dict`` structures with arbitrary leaves.

A *tree* is a nested ``dict``. Every value that is an instance of ``dict`` (subclasses such as
``OrderedDict`` included) is a *node*; every other value is a *leaf*. An empty ``dict`` is a
node without leaves. A *branch* is the tuple of keys leading from the root to a leaf, e.g.
``('0_LinearTorch', 'weight')``. All functions walk depth-first in key insertion order.

Copying rules, shared by every function here:

* Leaves are never copied. They are moved into results by reference, so tensors that carry
  autograd history (``grad_fn``) pass through unchanged.
* Functions that modify a tree (``set_nested``, ``set_matching``, ``set_matching_select``,
  ``tree_update``) work on a *structural copy* unless ``inplace=True``: every node is
  shallow-copied (keeping its ``dict`` subclass) and the leaves are shared. The input tree is
  then never modified.
* Functions that build a new tree from scratch (``tree_map``, ``make_prototype_tree``,
  ``tree_flatten``'s tree definition, ``tree_unflatten``) return plain ``dict`` nodes.
"""

from __future__ import annotations

import copy
import reprlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from snnqat.typehints import Branch, Tree

__all__ = [
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
]

_WRONG_TYPE = "`{name}` must be {expected}; got {got} of type {type}."
_TREE = "a dict (a tree)"
_KEYS = "a tuple or list of keys, e.g. ('a', 'b')"
_EMPTY_BRANCH = "`branch` must contain at least one key; got an empty {type}."
_MISSING_KEY = "Key {key!r} of branch {branch!r} not found: {reason}."
_EXTRA_TARGET = (
    "make_prototype_tree: `target_tree` has {n} branch(es) that are not in `full_tree`: "
    "{shown}. Check the argument order: make_prototype_tree(full_tree, target_tree)."
)
_LEAF_COUNT = "`{name}` has {got} leaves, but the tree definition `treedef` needs {need}."


# - Private helpers -------------------------------------------------------------------------


def _wrong_type(name: str, expected: str, got: Any) -> TypeError:
    """Build the ``TypeError`` for argument ``name``: what was expected and what was got."""
    return TypeError(
        _WRONG_TYPE.format(
            name=name, expected=expected, got=reprlib.repr(got), type=type(got).__name__
        )
    )


def _check_tree(tree: Any, name: str) -> None:
    """Raise ``TypeError`` unless ``tree`` is a ``dict``."""
    if not isinstance(tree, dict):
        raise _wrong_type(name, _TREE, tree)


def _check_branch(branch: Any) -> tuple:
    """Return ``branch`` as a non-empty tuple, or raise ``TypeError`` / ``ValueError``."""
    if not isinstance(branch, (tuple, list)):
        raise _wrong_type("branch", _KEYS, branch)
    if len(branch) == 0:
        raise ValueError(_EMPTY_BRANCH.format(type=type(branch).__name__))
    return tuple(branch)


def _items(tree: Tree, prefix: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """Yield ``(branch, leaf)`` for every leaf of ``tree``, depth-first."""
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _items(value, (*prefix, key))
        else:
            yield (*prefix, key), value


def _copy_structure(tree: Tree) -> Tree:
    """Copy every node of ``tree`` (keeping its ``dict`` subclass); share the leaves."""
    new = copy.copy(tree)
    for key, value in tree.items():
        if isinstance(value, dict):
            new[key] = _copy_structure(value)
    return new


def _child(node: Tree, branch: tuple, depth: int) -> Any:
    """Return ``node[branch[depth]]``, raising a ``KeyError`` that names the key and the branch."""
    key = branch[depth]
    if key not in node:
        reason = f"the node at {branch[:depth]!r} has keys {list(node)!r}"
        raise KeyError(_MISSING_KEY.format(key=key, branch=branch, reason=reason))
    return node[key]


def _parent(tree: Tree, branch: tuple) -> Tree:
    """Return the node that holds the last key of ``branch``; every node on the way must exist."""
    node = tree
    for depth in range(len(branch) - 1):
        node = _child(node, branch, depth)
        if not isinstance(node, dict):
            reason = f"{branch[: depth + 1]!r} is a leaf, not a dict"
            raise KeyError(_MISSING_KEY.format(key=branch[depth + 1], branch=branch, reason=reason))
    return node


def _set_branches(tree: Tree, target_branches: Iterator[tuple], value: Any, inplace: bool) -> Tree:
    """Set ``value`` at every branch in ``target_branches`` (see ``set_nested``)."""
    result = tree if inplace else _copy_structure(tree)
    for branch in list(target_branches):
        set_nested(result, branch, value, inplace=True)
    return result


def _count_leaves(tree: Tree) -> int:
    """Return the number of leaves of ``tree``."""
    return sum(1 for _ in _items(tree))


def _build(treedef: Tree, leaves: list, pos: int) -> tuple[Tree, int]:
    """Fill ``treedef`` with ``leaves[pos:]`` in order; return the tree and the next position."""
    tree = {}
    for key, slot in treedef.items():
        if isinstance(slot, dict):
            tree[key], pos = _build(slot, leaves, pos)
        else:
            tree[key], pos = leaves[pos], pos + 1
    return tree, pos


def _map_branches(tree: Tree, f: Callable[[tuple, Any], Any], prefix: tuple = ()) -> Tree:
    """Return a plain-``dict`` copy of ``tree`` with ``f(branch, leaf)`` at every leaf."""
    return {
        key: _map_branches(value, f, (*prefix, key))
        if isinstance(value, dict)
        else f((*prefix, key), value)
        for key, value in tree.items()
    }


def _unflatten_tail(treedef: Tree, leaves_tail: list, need: int) -> Tree:
    """Rebuild ``treedef`` from the front of ``leaves_tail`` and remove the leaves used."""
    if not isinstance(leaves_tail, list):
        raise _wrong_type("leaves_tail", "a list", leaves_tail)
    if len(leaves_tail) < need:
        raise ValueError(_LEAF_COUNT.format(name="leaves_tail", got=len(leaves_tail), need=need))
    tree, used = _build(treedef, leaves_tail, 0)
    del leaves_tail[:used]
    return tree


def _merge(target: Tree, additional: Tree) -> None:
    """Merge ``additional`` into ``target`` in place (see ``tree_update``)."""
    for key, value in additional.items():
        if isinstance(value, dict) and key in target and isinstance(target[key], dict):
            _merge(target[key], value)
        elif isinstance(value, dict):
            target[key] = _copy_structure(value)
        else:
            target[key] = value


# - Public API ------------------------------------------------------------------------------


def branches(tree: Tree, prefix: Branch | list | None = None) -> Iterator[Branch]:
    """Iterate over the branch (tuple of keys) of every leaf of a tree, depth-first.

    Empty sub-dicts have no leaves, so they yield nothing. The arguments are checked when the
    function is called, not when the iterator is first advanced.

    Args:
        tree: The tree to walk.
        prefix: Keys prepended to every branch (a tuple or list). Defaults to none.

    Returns:
        An iterator over one tuple of keys per leaf.

    Raises:
        TypeError: If ``tree`` is not a dict or ``prefix`` is not a tuple or list.

    Example:
        >>> list(branches({'a': 1, 'b': {'c': 2, 'd': {}}}))
        [('a',), ('b', 'c')]
        >>> list(branches({'a': 1}, prefix=('net',)))
        [('net', 'a')]
    """
    _check_tree(tree, "tree")
    if prefix is not None and not isinstance(prefix, (tuple, list)):
        raise _wrong_type("prefix", _KEYS, prefix)
    return (branch for branch, _ in _items(tree, tuple(prefix or ())))


def get_nested(tree: Tree, branch: Branch) -> Any:
    """Return the value at the end of a branch: a leaf, or a sub-tree for a shorter branch.

    Args:
        tree: The tree to read.
        branch: A non-empty tuple or list of keys. A plain ``str`` is refused, so that
            ``'ab'`` is never mistaken for ``('a', 'b')``.

    Returns:
        The value found (by reference, not copied).

    Raises:
        TypeError: If ``tree`` is not a dict or ``branch`` is not a tuple or list.
        ValueError: If ``branch`` is empty.
        KeyError: If a key of ``branch`` is missing, or the branch runs through a leaf.

    Example:
        >>> get_nested({'a': {'b': 1}}, ('a', 'b'))
        1
        >>> get_nested({'a': {'b': 1}}, ('a',))
        {'b': 1}
    """
    _check_tree(tree, "tree")
    branch = _check_branch(branch)
    return _child(_parent(tree, branch), branch, len(branch) - 1)


def set_nested(tree: Tree, branch: Branch, value: Any, inplace: bool = False) -> Tree:
    """Set the value at the end of a branch, creating the final key if it is missing.

    Every key of ``branch`` except the last must already exist and lead to a dict. The last key
    is created when it is missing, or overwritten (leaf or whole sub-tree) when present.

    Args:
        tree: The tree to modify.
        branch: A non-empty tuple or list of keys.
        value: The value to store, by reference. It may be a leaf or a sub-tree.
        inplace: If ``True``, modify ``tree`` itself. Otherwise (the default) modify and return a
            structural copy, leaving ``tree`` unchanged.

    Returns:
        The modified tree: ``tree`` itself if ``inplace``, else its structural copy.

    Raises:
        TypeError: If ``tree`` is not a dict or ``branch`` is not a tuple or list.
        ValueError: If ``branch`` is empty.
        KeyError: If an intermediate key is missing or leads to a leaf.

    Example:
        >>> tree = {'a': {'b': 1}}
        >>> set_nested(tree, ('a', 'c'), 2)
        {'a': {'b': 1, 'c': 2}}
        >>> tree
        {'a': {'b': 1}}
    """
    _check_tree(tree, "tree")
    branch = _check_branch(branch)
    result = tree if inplace else _copy_structure(tree)
    _parent(result, branch)[branch[-1]] = value
    return result


def set_matching(full_tree: Tree, target_tree: Tree, value: Any, inplace: bool = False) -> Tree:
    """Set ``value`` at every branch of ``target_tree`` in ``full_tree``, whatever the target leaf.

    Each branch is set as by :func:`set_nested`: a missing final key is created and a missing
    intermediate key raises ``KeyError``. With ``inplace=True``, branches set before such an
    error stay set.

    Args:
        full_tree: The tree to modify.
        target_tree: A tree whose branches select the leaves to set. Its leaf values are ignored.
        value: The value to store at each selected branch, by reference.
        inplace: If ``True``, modify ``full_tree`` itself; otherwise return a structural copy.

    Returns:
        The modified tree.

    Raises:
        TypeError: If ``full_tree`` or ``target_tree`` is not a dict.
        KeyError: If a branch of ``target_tree`` runs through a key missing from ``full_tree``.

    Example:
        >>> set_matching({'a': 1, 'b': {'c': 2}}, {'b': {'c': None}}, 0)
        {'a': 1, 'b': {'c': 0}}
    """
    _check_tree(full_tree, "full_tree")
    _check_tree(target_tree, "target_tree")
    return _set_branches(full_tree, branches(target_tree), value, inplace)


def set_matching_select(
    full_tree: Tree, target_tree: Tree, value: Any, inplace: bool = False
) -> Tree:
    """Like :func:`set_matching`, but only for branches whose leaf in ``target_tree`` is truthy.

    Args:
        full_tree: The tree to modify.
        target_tree: A tree whose branches with truthy leaves (``bool(leaf)``) select the leaves
            to set, e.g. a tree from :func:`make_prototype_tree`.
        value: The value to store at each selected branch, by reference.
        inplace: If ``True``, modify ``full_tree`` itself; otherwise return a structural copy.

    Returns:
        The modified tree.

    Raises:
        TypeError: If ``full_tree`` or ``target_tree`` is not a dict.
        KeyError: If a selected branch runs through a key missing from ``full_tree``.

    Example:
        >>> set_matching_select({'a': 1, 'b': 2}, {'a': True, 'b': False}, 0)
        {'a': 0, 'b': 2}
    """
    _check_tree(full_tree, "full_tree")
    _check_tree(target_tree, "target_tree")
    return _set_branches(full_tree, tree_find(target_tree), value, inplace)


def make_prototype_tree(full_tree: Tree, target_tree: Tree) -> Tree:
    """Return a boolean mask of ``full_tree``: ``True`` where a leaf's branch is in ``target_tree``.

    The result has the structure of ``full_tree`` (plain dicts, empty sub-dicts kept), with
    ``True`` at each leaf whose branch is also a branch of ``target_tree`` and ``False`` elsewhere.
    Branches of ``target_tree`` that are not branches of ``full_tree`` are ignored, with a
    ``UserWarning`` naming them (the reference warns with a ``SyntaxWarning``, and only when the
    target has more leaves than the full tree).

    Args:
        full_tree: The tree whose structure the mask takes.
        target_tree: The tree whose branches are marked ``True``. Its leaf values are ignored.

    Returns:
        A new tree of ``bool`` leaves.

    Raises:
        TypeError: If ``full_tree`` or ``target_tree`` is not a dict.

    Warns:
        UserWarning: If ``target_tree`` has branches that ``full_tree`` lacks.

    Example:
        >>> make_prototype_tree({'a': 1, 'b': {'c': 2, 'd': 3}}, {'b': {'c': None}})
        {'a': False, 'b': {'c': True, 'd': False}}
    """
    _check_tree(full_tree, "full_tree")
    _check_tree(target_tree, "target_tree")
    selected = set(branches(target_tree))
    known = set(branches(full_tree))
    extra = [branch for branch in branches(target_tree) if branch not in known]
    if extra:
        shown = ", ".join(map(repr, extra[:5])) + (", ..." if len(extra) > 5 else "")
        warnings.warn(_EXTRA_TARGET.format(n=len(extra), shown=shown), UserWarning, stacklevel=2)
    return _map_branches(full_tree, lambda branch, _: branch in selected)


def tree_map(tree: Tree, f: Callable[[Any], Any]) -> Tree:
    """Return a new tree with ``f(leaf)`` at every leaf.

    The result has plain ``dict`` nodes (also where ``tree`` has dict subclasses) and keeps
    empty sub-dicts. ``tree`` is not modified.

    Args:
        tree: The tree to map over.
        f: A function of one argument, called once per leaf, depth-first.

    Returns:
        The mapped tree.

    Raises:
        TypeError: If ``tree`` is not a dict or ``f`` is not callable.

    Example:
        >>> tree_map({'a': 1, 'b': {'c': 2, 'd': {}}}, lambda x: 10 * x)
        {'a': 10, 'b': {'c': 20, 'd': {}}}
    """
    _check_tree(tree, "tree")
    if not callable(f):
        raise _wrong_type("f", "a callable taking one leaf", f)
    return _map_branches(tree, lambda _, leaf: f(leaf))


def tree_flatten(tree: Tree, leaves: list | None = None) -> tuple[list, Tree]:
    """Split a tree into its leaves and its structure (tree definition).

    Not compatible with ``jax.tree_util``: the tree definition is simply a plain-``dict`` copy of
    the structure with ``None`` at every leaf (empty sub-dicts kept).

    Args:
        tree: The tree to flatten.
        leaves: Optional list to which the leaves are appended, in place. Defaults to a new list.

    Returns:
        ``(leaves, treedef)``: the leaves depth-first (by reference) and the tree definition.

    Raises:
        TypeError: If ``tree`` is not a dict or ``leaves`` is not a list.

    Example:
        >>> tree_flatten({'a': 1, 'b': {'c': 2, 'd': {}}})
        ([1, 2], {'a': None, 'b': {'c': None, 'd': {}}})
    """
    _check_tree(tree, "tree")
    if leaves is None:
        leaves = []
    elif not isinstance(leaves, list):
        raise _wrong_type("leaves", "a list or None", leaves)
    leaves.extend(leaf for _, leaf in _items(tree))
    return leaves, _map_branches(tree, lambda _, __: None)


def tree_unflatten(treedef: Tree, leaves: Sequence, leaves_tail: list | None = None) -> Tree:
    """Rebuild a tree from a tree definition and its leaves; the inverse of :func:`tree_flatten`.

    Leaves are inserted by reference, never copied, so tensors with autograd history keep it.
    Every non-dict value of ``treedef`` is a slot for one leaf, filled in depth-first order.

    Args:
        treedef: The tree definition, as returned by :func:`tree_flatten`.
        leaves: The leaves, exactly one per slot of ``treedef``. Not modified.
        leaves_tail: Optional list to consume leaves from instead of ``leaves`` (which is then
            ignored). The leaves used are removed from its front, in place, and any left over stay
            in it, so several trees can be rebuilt one after another from one list.

    Returns:
        A new tree with plain ``dict`` nodes.

    Raises:
        TypeError: If ``treedef`` is not a dict, ``leaves`` is not a sequence or ``leaves_tail``
            is not a list.
        ValueError: If there are too few leaves, or (without ``leaves_tail``) too many.

    Example:
        >>> tree_unflatten({'a': None, 'b': {'c': None, 'd': {}}}, [1, 2])
        {'a': 1, 'b': {'c': 2, 'd': {}}}
    """
    _check_tree(treedef, "treedef")
    need = _count_leaves(treedef)
    if leaves_tail is not None:
        return _unflatten_tail(treedef, leaves_tail, need)
    if not isinstance(leaves, Sequence) or isinstance(leaves, (str, bytes)):
        raise _wrong_type("leaves", "a sequence (e.g. a list) of leaves", leaves)
    if len(leaves) != need:
        raise ValueError(_LEAF_COUNT.format(name="leaves", got=len(leaves), need=need))
    return _build(treedef, list(leaves), 0)[0]


def tree_update(target: Tree, additional: Tree, inplace: bool = False) -> Tree:
    """Merge ``additional`` into ``target``, recursively; ``additional`` wins on conflicts.

    For each key of ``additional``: where both values are dicts, they are merged recursively;
    otherwise the value from ``additional`` replaces the one in ``target`` (a dict replaces a leaf
    and a leaf replaces a dict). Sub-trees taken from ``additional`` are inserted as structural
    copies, so later changes to the result never reach ``additional``. Leaves are never copied.

    Args:
        target: The tree to update.
        additional: The tree to merge in. Not modified.
        inplace: If ``True``, modify ``target`` itself (at every level); otherwise (the default)
            update and return a structural copy, leaving ``target`` unchanged.

    Returns:
        The updated tree.

    Raises:
        TypeError: If ``target`` or ``additional`` is not a dict.

    Example:
        >>> tree_update({'a': {'b': 1}, 'c': 2}, {'a': {'d': 3}, 'c': {'e': 4}})
        {'a': {'b': 1, 'd': 3}, 'c': {'e': 4}}
    """
    _check_tree(target, "target")
    _check_tree(additional, "additional")
    result = target if inplace else _copy_structure(target)
    _merge(result, additional)
    return result


def tree_find(tree: Tree) -> Iterator[Branch]:
    """Iterate over the branch of every truthy leaf (``bool(leaf)`` is ``True``), depth-first.

    The argument is checked when the function is called, not when the iterator is first advanced.

    Args:
        tree: The tree to search, typically a boolean mask from :func:`make_prototype_tree`.
            Its leaves must support ``bool()`` (a tensor with several elements does not).

    Returns:
        An iterator over one tuple of keys per truthy leaf.

    Raises:
        TypeError: If ``tree`` is not a dict.

    Example:
        >>> list(tree_find({'a': True, 'b': {'c': False, 'd': 1}}))
        [('a',), ('b', 'd')]
    """
    _check_tree(tree, "tree")
    return (branch for branch, leaf in _items(tree) if leaf)
