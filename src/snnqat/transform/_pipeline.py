"""Config trees and network patching: select, patch, burn in, unpatch.

Parameter configs mirror ``net.parameters(family)``: ``{submodule: {...}, attribute: T_fn}``.
Activity configs hold the transform of each module under the key ``''``.
Configs are validated against the network before anything is modified.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import Any

import torch

from snnqat.nn.modules import TorchModule
from snnqat.nn.modules.module import ModuleBase
from snnqat.parameters import canonical_families
from snnqat.transform._wrappers import (
    ActWrapper,
    TWrapper,
    is_wrapper,
    transformed_values,
    unwrap,
    walk_submodules,
)
from snnqat.utilities.tree_utils import tree_map

__all__ = [
    "make_param_T_config",
    "make_param_T_network",
    "make_act_T_config",
    "make_act_T_network",
    "apply_T",
    "remove_T_net",
]

_DERIVED_LEAK_NAMES = ("tau_mem", "tau_syn", "alpha", "beta", "dash_mem", "dash_syn")


def _check_net(net: Any, who: str) -> None:
    if not isinstance(net, ModuleBase):
        raise TypeError(f"{who}: expected an snnqat module as `net`, got {type(net).__name__}.")


def _check_fn(fn: Any, who: str, allow_none: bool) -> None:
    if fn is None and allow_none:
        return
    if not callable(fn):
        raise TypeError(f"{who}: expected a callable transform (Tensor -> Tensor), got {fn!r}.")


# --------------------------------------------------------------------------- parameter configs
def make_param_T_config(net: ModuleBase, T_fn: Callable, param_family: Any = None) -> dict:
    """Build a parameter-transform config: ``T_fn`` at every parameter of the given family.

    Args:
        net: the network.
        T_fn: ``Callable[[Tensor], Tensor]`` placed at every selected parameter.
        param_family: a family (``'weights'``, ``'biases'``, ``'taus'``, ``'decays'``,
            ``'bitshifts'``, ``'thresholds'``; ``'bias'`` is an alias of ``'biases'``), a list of
            families, or ``None`` for all parameters.

    Returns:
        A nested dict mirroring ``net.parameters(param_family)`` with ``T_fn`` at the leaves.

    Raises:
        ValueError: an unknown family (the message lists the known ones).
        TypeError: ``net`` is not a module or ``T_fn`` is not callable.

    Warns:
        UserWarning: a known family that ``net`` does not contain (the config is empty).

    Example:
        >>> from snnqat.nn.modules import LinearTorch, LIFTorch
        >>> from snnqat.nn.combinators import Sequential
        >>> net = Sequential(LinearTorch((2, 3)), LIFTorch(3))
        >>> cfg = make_param_T_config(net, abs, "biases")
        >>> cfg
        {'1_LIFTorch': {'bias': <built-in function abs>}}
    """
    _check_net(net, "make_param_T_config")
    _check_fn(T_fn, "make_param_T_config", allow_none=False)
    families = canonical_families(param_family)
    config = tree_map(net.parameters(param_family), lambda _: T_fn)
    if families is not None and not config:
        warnings.warn(
            f"make_param_T_config: the network has no parameter of family {param_family!r}; "
            "the config is empty.",
            UserWarning,
            stacklevel=2,
        )
    return config


def make_param_T_network(net: ModuleBase, T_config_tree: dict, inplace: bool = False) -> Any:
    """Patch a network so that the configured parameters are transformed in every forward.

    Leaf modules named in the config are wrapped in :class:`TWrapper`. The config is checked
    first: a key that names no sub-module or attribute, or a derived (non-parameter)
    attribute, raises before anything changes.

    Args:
        net: the network.
        T_config_tree: a config tree from :func:`make_param_T_config` (or written by hand).
        inplace: modify ``net`` itself instead of a deep copy.

    Returns:
        The patched network.

    Raises:
        ValueError: a bad key in the config (the message names it and the valid keys).
        TypeError: a leaf of the config is neither callable nor ``None``.
    """
    _check_net(net, "make_param_T_network")
    _validate_param_config(net, T_config_tree, ())
    if not inplace:
        net = copy.deepcopy(net)
    return _patch_params(net, T_config_tree)


def _validate_param_config(mod: ModuleBase, cfg: Any, path: tuple) -> None:
    where = "/".join(path) or "<root>"
    if not isinstance(cfg, dict):
        raise TypeError(f"T_config_tree at {where!r}: expected a dict, got {type(cfg).__name__}.")
    inner = unwrap(mod)[0] if is_wrapper(mod) and "_mod" not in cfg else mod
    children = walk_submodules(inner)
    if children:
        for key, sub in cfg.items():
            if key not in children:
                raise ValueError(
                    f"T_config_tree at {where!r}: key {key!r} matches no sub-module of "
                    f"{inner.full_name}. Valid keys: {list(children)}."
                )
            _validate_param_config(children[key], sub, (*path, key))
        return
    valid = list(inner._parameters) + list(inner._buffers)
    for key, fn in cfg.items():
        if key not in valid:
            hint = (
                f" {key!r} is derived from the native leak parameters in this leak_mode; "
                "transform the native ones instead."
                if key in _DERIVED_LEAK_NAMES
                else ""
            )
            raise ValueError(
                f"T_config_tree at {where!r}: key {key!r} is not a parameter or buffer of "
                f"{inner.full_name}.{hint} Valid keys: {valid}."
            )
        _check_fn(fn, f"T_config_tree at {where}/{key}", allow_none=True)


def _patch_params(mod: ModuleBase, cfg: dict) -> ModuleBase:
    if is_wrapper(mod) and "_mod" not in cfg:
        mod._mod = _patch_params(mod._mod, cfg)
        return mod
    children = walk_submodules(mod)
    if not children:
        return TWrapper(mod, cfg)
    for key, sub in children.items():
        if key in cfg:
            setattr(mod, key, _patch_params(sub, cfg[key]))
    return mod


# --------------------------------------------------------------------------- activity configs
def make_act_T_config(net: ModuleBase, T_fn: Callable | None = None, ModuleClass: Any = None):
    """Build an activity-transform config: ``T_fn`` on the outputs of matching modules.

    Every node holds its own transform under ``''``: ``T_fn`` if ``ModuleClass`` is ``None``
    or the module is an instance of it, else ``None``. Wrappers are looked through.

    Example:
        >>> from snnqat.nn.modules import LinearTorch, LIFTorch
        >>> from snnqat.nn.combinators import Sequential
        >>> make_act_T_config(Sequential(LinearTorch((2, 3)), LIFTorch(3)), abs, LinearTorch)
        {'': None, '0_LinearTorch': {'': <built-in function abs>}, '1_LIFTorch': {'': None}}
    """
    _check_net(net, "make_act_T_config")
    _check_fn(T_fn, "make_act_T_config", allow_none=True)
    if ModuleClass is not None and not isinstance(ModuleClass, type):
        raise TypeError(
            f"make_act_T_config: ModuleClass must be a class (e.g. LinearTorch), got "
            f"{ModuleClass!r}."
        )
    inner = unwrap(net)[0]
    match = ModuleClass is None or isinstance(inner, ModuleClass)
    cfg: dict = {"": T_fn if match else None}
    for key, sub in walk_submodules(inner).items():
        cfg[key] = make_act_T_config(sub, T_fn, ModuleClass)
    return cfg


def make_act_T_network(net: ModuleBase, act_T_config: dict, inplace: bool = False) -> Any:
    """Patch a network so that configured module outputs are transformed.

    A module whose config holds a transform under ``''`` is wrapped in :class:`ActWrapper`;
    this includes composite modules such as a ``Residual`` (its summed output is transformed).

    Raises:
        ValueError: a config key names no sub-module.
        TypeError: a transform is not callable.
    """
    _check_net(net, "make_act_T_network")
    _validate_act_config(net, act_T_config, ())
    if not inplace:
        net = copy.deepcopy(net)
    return _patch_acts(net, act_T_config)


def _validate_act_config(mod: ModuleBase, cfg: Any, path: tuple) -> None:
    where = "/".join(path) or "<root>"
    if not isinstance(cfg, dict):
        raise TypeError(f"act_T_config at {where!r}: expected a dict, got {type(cfg).__name__}.")
    children = walk_submodules(unwrap(mod)[0])
    for key, sub in cfg.items():
        if key == "":
            _check_fn(sub, f"act_T_config at {where!r}", allow_none=True)
        elif key not in children:
            raise ValueError(
                f"act_T_config at {where!r}: key {key!r} matches no sub-module. Valid keys: "
                f"{[''] + list(children)}."
            )
        else:
            _validate_act_config(children[key], sub, (*path, key))


def _patch_acts(mod: ModuleBase, cfg: dict) -> ModuleBase:
    inner = unwrap(mod)[0]
    for key, sub in walk_submodules(inner).items():
        if key in cfg:
            setattr(inner, key, _patch_acts(sub, cfg[key]))
    fn = cfg.get("")
    return ActWrapper(mod, fn) if fn is not None else mod


# --------------------------------------------------------------------------- burn-in / unpatch
def apply_T(T_net: ModuleBase, inplace: bool = False) -> Any:
    """Burn in: replace each transformed parameter by its transformed value.

    The wrappers stay in place (as in the reference); call :func:`remove_T_net` to unwrap.
    Works in copy mode also after a ``record=True`` call.

    Example:
        >>> import torch
        >>> from snnqat.nn.modules import LinearTorch
        >>> tnet = TWrapper(LinearTorch((1, 1), weight=torch.full((1, 1), 0.4)),
        ...                 {"weight": torch.round})
        >>> apply_T(tnet)._mod.weight
        Parameter containing:
        tensor([[0.]], requires_grad=True)
    """
    _check_net(T_net, "apply_T")
    if not inplace:
        T_net = copy.deepcopy(T_net)
    _burn_in(T_net)
    return T_net


def _burn_in(root: ModuleBase) -> None:
    """Compute every transformed value first, then write them all.

    Transforms may read other parameters (e.g. a scale shared by a layer group), so writing
    one burned value before computing the next would change what the next one sees.
    """
    updates: list = []
    _collect_burn_in(root, updates)
    with torch.no_grad():
        for leaf, values in updates:
            leaf.set_attributes(values)


def _collect_burn_in(mod: ModuleBase, updates: list) -> None:
    if isinstance(mod, TWrapper) or (is_wrapper(mod) and _has_twrapper(mod)):
        with torch.no_grad():
            values = transformed_values(mod)
        if values:
            updates.append((unwrap(mod)[0], values))
    for sub in walk_submodules(unwrap(mod)[0]).values():
        _collect_burn_in(sub, updates)


def _has_twrapper(mod: Any) -> bool:
    while is_wrapper(mod):
        if isinstance(mod, TWrapper):
            return True
        mod = mod._mod
    return False


def remove_T_net(T_net: ModuleBase, inplace: bool = False) -> Any:
    """Remove every :class:`TWrapper` and :class:`ActWrapper`, keeping parameter values.

    The unwrapped modules get their original names back (no quotes are added).
    """
    _check_net(T_net, "remove_T_net")
    if not inplace:
        T_net = copy.deepcopy(T_net)
    return _unwrap_all(T_net)


def _unwrap_all(mod: ModuleBase) -> ModuleBase:
    if is_wrapper(mod):
        inner = _unwrap_all(mod._mod)
        object.__setattr__(inner, "_name", mod._name)
        return inner
    for key, sub in walk_submodules(mod).items():
        setattr(mod, key, _unwrap_all(sub))
    return mod


def _is_torch_module(mod: Any) -> bool:
    return isinstance(mod, TorchModule)
