"""Tests for ``snnqat.utilities.tree_utils``: hand-written cases and hypothesis properties."""

from __future__ import annotations

import copy
from collections import OrderedDict

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import snnqat.utilities as utilities
import snnqat.utilities.tree_utils as tu

FAST = settings(max_examples=100, deadline=None)

# - Strategies: nested dicts of ints, strings and lists (lists are fresh objects, so leaf
#   identity is observable); empty sub-dicts included.
# A few common keys, so that two generated trees often share (and conflict on) branches.
KEYS = st.one_of(st.sampled_from(["a", "b", "c"]), st.integers(0, 2), st.text(max_size=3))
LEAVES = st.one_of(st.integers(), st.text(max_size=4), st.lists(st.integers(), max_size=2))
NODES = st.recursive(LEAVES, lambda kids: st.dictionaries(KEYS, kids, max_size=4), max_leaves=20)
TREES = st.dictionaries(KEYS, NODES, max_size=4)
# Three keys only: two such trees often put a leaf where the other has a dict.
FEW_KEYS = st.sampled_from(["a", "b", 0])
SMALL_NODES = st.recursive(
    LEAVES, lambda kids: st.dictionaries(FEW_KEYS, kids, max_size=3), max_leaves=12
)
SMALL_TREES = st.dictionaries(FEW_KEYS, SMALL_NODES, max_size=3)


def TREE() -> dict:
    """A fresh copy of the hand-written example tree."""
    return {"a": 1, "b": {"c": 2, "d": {}}, "e": {"f": {"g": 0}}}


def leaf_items(tree: dict, prefix: tuple = ()) -> list:
    """``(branch, leaf)`` pairs of ``tree``, computed independently of ``tree_utils``."""
    out = []
    for key, value in tree.items():
        if isinstance(value, dict):
            out += leaf_items(value, (*prefix, key))
        else:
            out.append(((*prefix, key), value))
    return out


def node_ids(tree: dict) -> set:
    """``id`` of every node (dict) of ``tree``, the root included."""
    ids = {id(tree)}
    for value in tree.values():
        if isinstance(value, dict):
            ids |= node_ids(value)
    return ids


def node_paths(tree: dict, prefix: tuple = ()) -> set:
    """Key path of every node (dict) of ``tree`` below the root, empty ones included."""
    paths = set()
    for key, value in tree.items():
        if isinstance(value, dict):
            paths |= {(*prefix, key)} | node_paths(value, (*prefix, key))
    return paths


def from_items(items: list) -> dict:
    """Build a tree from ``(branch, leaf)`` pairs, creating intermediate dicts."""
    tree: dict = {}
    for branch, leaf in items:
        node = tree
        for key in branch[:-1]:
            node = node.setdefault(key, {})
        node[branch[-1]] = leaf
    return tree


def graph_tensor() -> torch.Tensor:
    """A non-leaf tensor with autograd history (``copy.deepcopy`` refuses it)."""
    return torch.ones(2, requires_grad=True) * 3


# - Package surface -------------------------------------------------------------------------


def test_every_name_in_all_is_importable():
    for name in utilities.__all__:
        assert getattr(utilities, name) is not None
    for name in tu.__all__:
        assert getattr(utilities, name) is getattr(tu, name)
    assert utilities.tree_utils is tu


# - branches / tree_find ----------------------------------------------------------------------


def test_branches_depth_first_and_skips_empty_subdicts():
    assert list(tu.branches(TREE())) == [("a",), ("b", "c"), ("e", "f", "g")]
    assert list(tu.branches({})) == []
    assert list(tu.branches({"x": {}})) == []


@pytest.mark.parametrize("prefix", [("net",), ["net"]])
def test_branches_prefix(prefix):
    assert list(tu.branches({"a": 1, "b": {"c": 2}}, prefix)) == [("net", "a"), ("net", "b", "c")]


def test_branches_dict_subclass_is_a_node():
    tree = OrderedDict(a=OrderedDict(b=1), c=2)
    assert list(tu.branches(tree)) == [("a", "b"), ("c",)]


def test_branches_checks_arguments_eagerly():
    with pytest.raises(
        TypeError, match=r"`tree` must be a dict \(a tree\); got \[1\] of type list"
    ):
        tu.branches([1])
    with pytest.raises(TypeError, match="`prefix` must be a tuple or list of keys.*got 'net'"):
        tu.branches({}, prefix="net")


def test_tree_find_yields_truthy_leaves_only():
    tree = {"a": True, "b": {"c": False, "d": 1, "e": [], "f": [0]}, "g": {}}
    assert list(tu.tree_find(tree)) == [("a",), ("b", "d"), ("b", "f")]


def test_tree_find_checks_argument_eagerly():
    with pytest.raises(TypeError, match="`tree` must be a dict.*of type NoneType"):
        tu.tree_find(None)


# - get_nested ------------------------------------------------------------------------------


def test_get_nested_returns_leaf_or_subtree():
    tree = TREE()
    assert tu.get_nested(tree, ("b", "c")) == 2
    assert tu.get_nested(tree, ["e", "f", "g"]) == 0
    assert tu.get_nested(tree, ("b",)) is tree["b"]


def test_get_nested_rejects_plain_string_branch():
    with pytest.raises(TypeError, match=r"`branch` must be a tuple or list of keys.*got 'bc'"):
        tu.get_nested({"b": {"c": 2}}, "bc")


def test_get_nested_rejects_empty_branch_and_non_tree():
    with pytest.raises(ValueError, match="`branch` must contain at least one key; got an empty"):
        tu.get_nested(TREE(), ())
    with pytest.raises(TypeError, match="`tree` must be a dict.*got 3 of type int"):
        tu.get_nested(3, ("a",))


def test_get_nested_missing_key_names_key_and_branch():
    with pytest.raises(KeyError, match=r"Key 'x' of branch \('b', 'x'\) not found.*\['c', 'd'\]"):
        tu.get_nested(TREE(), ("b", "x"))
    with pytest.raises(KeyError, match=r"Key 'z' of branch \('z', 'c'\) not found"):
        tu.get_nested(TREE(), ("z", "c"))


def test_get_nested_through_a_leaf_raises_key_error():
    with pytest.raises(KeyError, match=r"Key 0 of branch \('a', 0\).*\('a',\) is a leaf"):
        tu.get_nested({"a": [10, 20]}, ("a", 0))


# - set_nested ------------------------------------------------------------------------------


def test_set_nested_replaces_and_copies_structure():
    tree = TREE()
    out = tu.set_nested(tree, ("b", "c"), 5)
    assert out == {"a": 1, "b": {"c": 5, "d": {}}, "e": {"f": {"g": 0}}}
    assert tree == TREE()
    assert node_ids(out).isdisjoint(node_ids(tree))


def test_set_nested_creates_missing_final_key():
    assert tu.set_nested({"a": {}}, ("a", "new"), 7) == {"a": {"new": 7}}


def test_set_nested_can_set_a_subtree():
    assert tu.set_nested({"a": 1}, ("a",), {"b": 2}) == {"a": {"b": 2}}


def test_set_nested_inplace_modifies_and_returns_input():
    tree = TREE()
    out = tu.set_nested(tree, ["e", "f", "g"], 9, inplace=True)
    assert out is tree
    assert tree["e"]["f"]["g"] == 9


def test_set_nested_keeps_dict_subclasses_and_shares_leaves():
    leaf = [1]
    tree = OrderedDict(a=OrderedDict(b=leaf, c=2))
    out = tu.set_nested(tree, ("a", "c"), 3)
    assert type(out) is OrderedDict and type(out["a"]) is OrderedDict
    assert out["a"]["b"] is leaf


def test_set_nested_missing_intermediate_key_raises():
    tree = TREE()
    with pytest.raises(KeyError, match=r"Key 'zz' of branch \('zz', 'new'\) not found"):
        tu.set_nested(tree, ("zz", "new"), 5)
    with pytest.raises(KeyError, match=r"Key 'x' of branch \('a', 'x'\).*\('a',\) is a leaf"):
        tu.set_nested(tree, ("a", "x"), 5)
    assert tree == TREE()


def test_set_nested_rejects_bad_branch():
    with pytest.raises(TypeError, match="`branch` must be a tuple or list of keys.*got 'a'"):
        tu.set_nested({"a": 1}, "a", 2)
    with pytest.raises(ValueError, match="`branch` must contain at least one key"):
        tu.set_nested({"a": 1}, [], 2)
    with pytest.raises(TypeError, match="`tree` must be a dict"):
        tu.set_nested("tree", ("a",), 2)


def test_set_nested_with_graph_tensors():
    weight = graph_tensor()
    out = tu.set_nested({"m": {"w": weight, "b": 0}}, ("m", "b"), graph_tensor())
    assert out["m"]["w"] is weight
    assert out["m"]["b"].grad_fn is not None


# - set_matching / set_matching_select ------------------------------------------------------


def test_set_matching_sets_every_target_branch():
    tree = TREE()
    out = tu.set_matching(tree, {"b": {"c": False}, "e": {"f": {"g": 0}}}, "V")
    assert out == {"a": 1, "b": {"c": "V", "d": {}}, "e": {"f": {"g": "V"}}}
    assert tree == TREE()


def test_set_matching_creates_final_key_and_rejects_missing_intermediate():
    assert tu.set_matching({"b": {}}, {"b": {"q": 1}}, 0) == {"b": {"q": 0}}
    with pytest.raises(KeyError, match=r"Key 'q' of branch \('q', 'c'\) not found"):
        tu.set_matching(TREE(), {"q": {"c": 1}}, 0)


def test_set_matching_inplace():
    tree = TREE()
    inner = tree["b"]
    assert tu.set_matching(tree, {"b": {"c": 1}}, "V", inplace=True) is tree
    assert inner["c"] == "V"


def test_set_matching_select_only_truthy_leaves():
    tree = TREE()
    out = tu.set_matching_select(tree, {"a": True, "b": {"c": 0}, "e": {"f": {"g": [1]}}}, "V")
    assert out == {"a": "V", "b": {"c": 2, "d": {}}, "e": {"f": {"g": "V"}}}
    assert tree == TREE()


@pytest.mark.parametrize("fn", [tu.set_matching, tu.set_matching_select])
def test_set_matching_rejects_non_trees(fn):
    with pytest.raises(TypeError, match="`full_tree` must be a dict.*of type list"):
        fn([], {}, 0)
    with pytest.raises(TypeError, match="`target_tree` must be a dict.*of type str"):
        fn({}, "a", 0)


# - make_prototype_tree ---------------------------------------------------------------------


def test_make_prototype_tree_marks_target_branches():
    full = TREE()
    out = tu.make_prototype_tree(full, {"b": {"c": None}})
    assert out == {"a": False, "b": {"c": True, "d": {}}, "e": {"f": {"g": False}}}
    assert full == TREE()


def test_make_prototype_tree_returns_plain_dicts():
    out = tu.make_prototype_tree(OrderedDict(a=OrderedDict(b=1)), {"a": {"b": 0}})
    assert type(out) is dict and type(out["a"]) is dict and out == {"a": {"b": True}}


def test_make_prototype_tree_warns_on_target_branches_missing_from_full():
    with pytest.warns(
        UserWarning, match=r"1 branch\(es\) that are not in `full_tree`: \('b', 'z'\)"
    ):
        out = tu.make_prototype_tree(TREE(), {"b": {"c": 1, "z": 1}})
    assert out["b"]["c"] is True


def test_make_prototype_tree_warning_lists_at_most_five():
    with pytest.warns(UserWarning, match=r"7 branch\(es\).*\('x', 4\), \.\.\..*argument order"):
        tu.make_prototype_tree({}, {"x": dict.fromkeys(range(7), 1)})


def test_make_prototype_tree_rejects_non_trees():
    with pytest.raises(TypeError, match="`full_tree` must be a dict"):
        tu.make_prototype_tree(None, {})
    with pytest.raises(TypeError, match="`target_tree` must be a dict"):
        tu.make_prototype_tree({}, None)


# - tree_map --------------------------------------------------------------------------------


def test_tree_map_applies_f_keeps_empty_subdicts():
    tree = TREE()
    assert tu.tree_map(tree, lambda x: 10 * x) == {
        "a": 10,
        "b": {"c": 20, "d": {}},
        "e": {"f": {"g": 0}},
    }
    assert tree == TREE()


def test_tree_map_calls_f_depth_first_and_returns_plain_dicts():
    seen = []
    out = tu.tree_map(OrderedDict(b=OrderedDict(c=2), a=1), seen.append)
    assert seen == [2, 1]
    assert type(out) is dict and type(out["b"]) is dict


def test_tree_map_rejects_bad_arguments():
    with pytest.raises(
        TypeError, match="`f` must be a callable taking one leaf; got 3 of type int"
    ):
        tu.tree_map({}, 3)
    with pytest.raises(TypeError, match="`tree` must be a dict"):
        tu.tree_map([1], str)


# - tree_flatten / tree_unflatten -----------------------------------------------------------


def test_tree_flatten_hand_example():
    leaves, treedef = tu.tree_flatten(TREE())
    assert leaves == [1, 2, 0]
    assert treedef == {"a": None, "b": {"c": None, "d": {}}, "e": {"f": {"g": None}}}


def test_tree_flatten_appends_to_given_list():
    acc = [99]
    leaves, _ = tu.tree_flatten({"a": 1}, acc)
    assert leaves is acc and acc == [99, 1]


def test_tree_flatten_rejects_bad_arguments():
    with pytest.raises(TypeError, match="`leaves` must be a list or None; got \\(1,\\)"):
        tu.tree_flatten({}, (1,))
    with pytest.raises(TypeError, match="`tree` must be a dict"):
        tu.tree_flatten(1)


def test_tree_unflatten_hand_example_does_not_touch_leaves_list():
    leaves = [1, 2, 0]
    treedef = {"a": None, "b": {"c": None, "d": {}}, "e": {"f": {"g": None}}}
    assert tu.tree_unflatten(treedef, leaves) == TREE()
    assert leaves == [1, 2, 0]
    assert tu.tree_unflatten(treedef, (1, 2, 0)) == TREE()


def test_tree_unflatten_keeps_graph_tensors():
    # The reference deep-copies leaves here and raises RuntimeError.
    weight, bias = graph_tensor(), graph_tensor()
    leaves, treedef = tu.tree_flatten({"m": {"w": weight, "b": bias}})
    out = tu.tree_unflatten(treedef, leaves)
    assert out["m"]["w"] is weight and out["m"]["b"] is bias
    out["m"]["w"].sum().backward()


@pytest.mark.parametrize("leaves, got", [([1], 1), ([1, 2, 3, 4], 4)])
def test_tree_unflatten_wrong_leaf_count(leaves, got):
    match = f"`leaves` has {got} leaves, but the tree definition `treedef` needs 3"
    with pytest.raises(ValueError, match=match):
        tu.tree_unflatten({"a": None, "b": {"c": None, "d": None}}, leaves)


def test_tree_unflatten_rejects_bad_arguments():
    with pytest.raises(TypeError, match="`treedef` must be a dict.*got None"):
        tu.tree_unflatten(None, [])
    with pytest.raises(TypeError, match="`leaves` must be a sequence.*got 'ab' of type str"):
        tu.tree_unflatten({"a": None, "b": None}, "ab")
    with pytest.raises(TypeError, match="`leaves_tail` must be a list; got \\(1,\\)"):
        tu.tree_unflatten({"a": None}, [], leaves_tail=(1,))


def test_tree_unflatten_leaves_tail_consumes_from_front():
    tail = [1, 2, 3]
    assert tu.tree_unflatten({"a": None, "b": {"c": None}}, None, leaves_tail=tail) == {
        "a": 1,
        "b": {"c": 2},
    }
    assert tail == [3]
    assert tu.tree_unflatten({"d": None}, None, leaves_tail=tail) == {"d": 3}
    assert tail == []
    with pytest.raises(ValueError, match="`leaves_tail` has 0 leaves.*needs 1"):
        tu.tree_unflatten({"d": None}, None, leaves_tail=tail)


# - tree_update -----------------------------------------------------------------------------


def test_tree_update_merges_recursively():
    target = {"0_Linear": {"weight": "Tw"}, "1_LIF": {"w_rec": "Tw"}}
    additional = {"1_LIF": {"bias": "Tb"}, "2_Linear": {"weight": "Tw2"}}
    out = tu.tree_update(target, additional)
    assert out == {
        "0_Linear": {"weight": "Tw"},
        "1_LIF": {"w_rec": "Tw", "bias": "Tb"},
        "2_Linear": {"weight": "Tw2"},
    }
    assert target == {"0_Linear": {"weight": "Tw"}, "1_LIF": {"w_rec": "Tw"}}


def test_tree_update_dict_replaces_leaf_and_leaf_replaces_dict():
    # The reference raises AttributeError for the first case.
    assert tu.tree_update({"a": 1}, {"a": {"c": 2}}) == {"a": {"c": 2}}
    assert tu.tree_update({"a": {"x": 1}}, {"a": 5}) == {"a": 5}
    assert tu.tree_update({"a": {"x": 1}}, {"a": {}}) == {"a": {"x": 1}}


def test_tree_update_does_not_alias_inserted_subtrees():
    additional = {"new": {"x": {"y": 1}}}
    out = tu.tree_update({}, additional)
    out["new"]["x"]["y"] = 2
    assert additional == {"new": {"x": {"y": 1}}}
    assert node_ids(out).isdisjoint(node_ids(additional))


def test_tree_update_inplace_modifies_target_at_every_level():
    target = {"a": {"b": {"c": 1}}}
    inner = target["a"]["b"]
    assert tu.tree_update(target, {"a": {"b": {"d": 2}}}, inplace=True) is target
    assert inner == {"c": 1, "d": 2}


def test_tree_update_keeps_dict_subclasses():
    out = tu.tree_update(OrderedDict(a=OrderedDict(b=1)), {"c": OrderedDict(d=2)})
    assert type(out) is OrderedDict and type(out["a"]) is OrderedDict
    assert type(out["c"]) is OrderedDict


def test_tree_update_with_graph_tensors():
    w, b = graph_tensor(), graph_tensor()
    out = tu.tree_update({"m": {"w": w}}, {"m": {"b": b}})
    assert out["m"]["w"] is w and out["m"]["b"] is b
    (out["m"]["w"] + out["m"]["b"]).sum().backward()


def test_tree_update_rejects_non_trees():
    with pytest.raises(TypeError, match="`target` must be a dict.*of type list"):
        tu.tree_update([], {})
    with pytest.raises(TypeError, match="`additional` must be a dict.*of type int"):
        tu.tree_update({}, 1)


# - Properties ------------------------------------------------------------------------------


@FAST
@given(TREES)
def test_flatten_unflatten_round_trip_is_identity(tree):
    before = copy.deepcopy(tree)
    leaves, treedef = tu.tree_flatten(tree)
    out = tu.tree_unflatten(treedef, leaves)
    assert out == tree == before
    assert [leaf for _, leaf in leaf_items(tree)] == leaves
    assert all(a is b for (_, a), (_, b) in zip(leaf_items(out), leaf_items(tree)))
    assert tu.tree_flatten(out)[1] == treedef


@FAST
@given(TREES)
def test_branches_matches_independent_walk(tree):
    assert list(tu.branches(tree)) == [branch for branch, _ in leaf_items(tree)]


@FAST
@given(TREES)
def test_tree_map_keeps_branches(tree):
    before = copy.deepcopy(tree)
    out = tu.tree_map(tree, lambda leaf: ("mapped", leaf))
    assert list(tu.branches(out)) == list(tu.branches(tree))
    assert [leaf for _, leaf in leaf_items(out)] == [("mapped", v) for _, v in leaf_items(tree)]
    assert tree == before
    assert tu.tree_flatten(out)[1] == tu.tree_flatten(tree)[1]


@FAST
@given(TREES, st.data())
def test_set_get_nested_round_trip(tree, data):
    items = leaf_items(tree)
    before = copy.deepcopy(tree)
    value = object()
    if items:
        branch = data.draw(st.sampled_from([b for b, _ in items]))
    else:
        branch = ("fresh",)
    out = tu.set_nested(tree, branch, value)
    assert tu.get_nested(out, branch) is value
    assert tree == before
    assert node_ids(out).isdisjoint(node_ids(tree))
    others = [(b, leaf) for b, leaf in items if b != branch]
    assert all(tu.get_nested(out, b) is leaf for b, leaf in others)


@FAST
@given(TREES, st.data())
def test_set_nested_creates_final_key_under_existing_node(tree, data):
    new_key = ("not", "generated")  # tuple keys never come from KEYS
    parents = [()] + [b[:-1] for b, _ in leaf_items(tree) if len(b) > 1]
    parent = data.draw(st.sampled_from(parents))
    out = tu.set_nested(tree, (*parent, new_key), 7)
    assert tu.get_nested(out, (*parent, new_key)) == 7
    assert new_key not in (tu.get_nested(tree, parent) if parent else tree)


@FAST
@given(SMALL_TREES, SMALL_TREES)
def test_tree_update_branches_and_leaves(a, b):
    a_before, b_before = copy.deepcopy(a), copy.deepcopy(b)
    out = tu.tree_update(a, b)
    b_items = dict(leaf_items(b))
    b_nodes = node_paths(b)

    def survives(branch):
        # An `a` leaf stays unless `b` has a leaf on the way to it, or a dict in its place.
        on_the_way = any(branch[:i] in b_items for i in range(1, len(branch)))
        return not on_the_way and branch not in b_nodes

    expected = {br: leaf for br, leaf in leaf_items(a) if survives(br)} | b_items
    assert set(tu.branches(out)) == set(expected)
    assert all(leaf is expected[br] for br, leaf in leaf_items(out))
    assert a == a_before and b == b_before
    assert node_ids(out).isdisjoint(node_ids(a) | node_ids(b))


@FAST
@given(TREES, st.data())
def test_tree_update_of_compatible_trees_is_union(tree, data):
    items = leaf_items(tree)
    sides = data.draw(st.lists(st.sampled_from("ab+"), min_size=len(items), max_size=len(items)))
    a = from_items([item for item, s in zip(items, sides) if s in "a+"])
    b = from_items([item for item, s in zip(items, sides) if s in "b+"])
    out = tu.tree_update(a, b)
    assert set(tu.branches(out)) == set(tu.branches(a)) | set(tu.branches(b))
    assert all(leaf is tu.get_nested(tree, br) for br, leaf in leaf_items(out))


@FAST
@given(SMALL_TREES, SMALL_TREES)
def test_tree_update_inplace_equals_copy_mode(a, b):
    b_before = copy.deepcopy(b)
    expected = tu.tree_update(a, b)
    assert tu.tree_update(a, b, inplace=True) is a
    assert a == expected
    assert b == b_before
    assert node_ids(a).isdisjoint(node_ids(b))


@FAST
@given(TREES, st.data())
def test_prototype_then_select_sets_chosen_leaves(tree, data):
    items = leaf_items(tree)
    chosen = data.draw(st.lists(st.sampled_from(items), unique_by=lambda i: i[0])) if items else []
    before = copy.deepcopy(tree)
    mask = tu.make_prototype_tree(tree, from_items(chosen))
    assert set(tu.tree_find(mask)) == {branch for branch, _ in chosen}
    marker = object()
    out = tu.set_matching_select(tree, mask, marker)
    chosen_branches = {branch for branch, _ in chosen}
    for branch, leaf in leaf_items(out):
        assert leaf is (marker if branch in chosen_branches else tu.get_nested(tree, branch))
    assert tu.set_matching(tree, from_items(chosen), marker) == out
    assert tree == before
