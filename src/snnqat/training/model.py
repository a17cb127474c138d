"""The network, its readout, and the training-time transforms of a stage.

The network is ``Sequential(LinearTorch((16, H1)), LIFTorch(H1), ..., LinearTorch((Hk, C)),
LIFTorch(C))`` with bit-shift leaks, hidden spike caps of 31 and output caps of 1: what a
Xylo core can run. The readout sums each output neuron's spikes over time; the predicted
class is the neuron with the most spikes. A tie for the most spikes (including a silent
output layer) is a wrong answer: the chip gives no decision there, and a tie-break by index
would favour low classes.

Example:
    >>> import torch
    >>> counts = torch.tensor([[3., 1., 0.], [2., 2., 0.], [0., 0., 0.]])
    >>> predict(counts).tolist()
    [0, -1, -1]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

import snnqat.transform.torch_transform as tt
from snnqat.nn.combinators import Sequential
from snnqat.nn.modules import LIFTorch, LinearTorch
from snnqat.parameters import FAMILIES, canonical_families
from snnqat.training.config import ModelConfig, StageConfig
from snnqat.transform._wrappers import TWrapper, is_wrapper, walk_submodules

__all__ = [
    "build_network",
    "check_families",
    "set_trainable",
    "trainable_parameters",
    "predict",
    "accuracy",
    "attach_transforms",
    "detach_transforms",
]


def build_network(cfg: ModelConfig, n_inputs: int, n_class: int) -> Any:
    """Build the Xylo-compatible network (initialised from torch's global RNG).

    Example:
        >>> net = build_network(ModelConfig(hidden=(8,)), 16, 4)
        >>> [type(m).__name__ for m in net.modules().values()]
        ['LinearTorch', 'LIFTorch', 'LinearTorch', 'LIFTorch']
    """
    common = dict(
        leak_mode="bitshifts",
        dash_mem=float(cfg.dash_mem),
        dash_syn=float(cfg.dash_syn),
        threshold=float(cfg.threshold),
        spike_generation_fn=cfg.surrogate,
        learning_window=cfg.learning_window,
        dt=cfg.dt,
    )
    layers: list[nn.Module] = []
    size = n_inputs
    for h in cfg.hidden:
        layers.append(LinearTorch((size, h)))
        layers.append(
            LIFTorch(h, has_rec=cfg.recurrent, max_spikes_per_dt=cfg.hidden_max_spikes, **common)
        )
        size = h
    layers.append(LinearTorch((size, n_class)))
    layers.append(LIFTorch(n_class, max_spikes_per_dt=cfg.output_max_spikes, **common))
    net = Sequential(*layers)
    with torch.no_grad():
        layers[0].weight.mul_(cfg.input_weight_scale)
        for lif in layers[1:-2:2]:
            if cfg.recurrent:
                lif.w_rec.mul_(0.1)
    return net


def check_families(net: Any, stages: dict[str, StageConfig]) -> None:
    """Check that every family a stage trains or transforms exists in ``net``.

    Raises:
        ValueError: A family without parameters in ``net`` (the message lists those present).

    Example:
        >>> net = build_network(ModelConfig(hidden=(4,)), 16, 2)
        >>> check_families(net, {"float": StageConfig(trainable=("taus",))})
        Traceback (most recent call last):
        ...
        ValueError: config: float.trainable: the network has no parameter of family 'taus'; ...
    """
    present = [f for f in FAMILIES if any(True for _ in _leaves(net.parameters(f)))]
    for name, stage in stages.items():
        for key, families in (("trainable", stage.trainable), ("transforms", stage.transforms)):
            for family in families:
                if family not in present:
                    raise ValueError(
                        f"config: {name}.{key}: the network has no parameter of family "
                        f"{family!r}; its families are {present} (the leaks are "
                        "'bitshifts')."
                    )


def _family_ids(net: Any, families: Iterable[str]) -> set[int]:
    params = net.parameters(tuple(families))
    return {id(p) for p in _leaves(params)}


def _leaves(tree: Any) -> Iterable[torch.Tensor]:
    for v in tree.values():
        if isinstance(v, dict):
            yield from _leaves(v)
        elif isinstance(v, torch.Tensor):
            yield v


def set_trainable(net: Any, families: Iterable[str]) -> None:
    """``requires_grad`` on the parameters of ``families``, off on all others."""
    keep = _family_ids(net, canonical_families(tuple(families)))
    for p in nn.Module.parameters(net):
        p.requires_grad_(id(p) in keep)


def trainable_parameters(net: Any) -> list[nn.Parameter]:
    """The torch parameters with ``requires_grad``, in registration order."""
    return [p for p in nn.Module.parameters(net) if p.requires_grad]


def predict(counts: torch.Tensor) -> torch.Tensor:
    """Class with the most output spikes ``(B, C) -> (B,)``; ``-1`` where the most is tied."""
    top = counts.max(dim=1, keepdim=True).values
    unique = (counts == top).sum(dim=1) == 1
    return torch.where(unique, counts.argmax(dim=1), torch.full_like(unique, -1, dtype=torch.long))


def accuracy(counts: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of samples whose unique top class is the label (ties are wrong)."""
    return float((predict(counts) == labels).float().mean()) if len(labels) else float("nan")


# --------------------------------------------------------------------------- stage transforms
def attach_transforms(net: Any, stage: StageConfig) -> tuple[Any, list[TWrapper]]:
    """Wrap the parameters of ``stage.transforms``' families (in place).

    Returns:
        ``(net, wrappers)``: the patched network and the wrappers added, so that
        :func:`detach_transforms` can remove exactly those (other wrappers, e.g. the
        hardware-faithful ones, stay).
    """
    if not stage.transforms:
        return net, []
    before = {id(m) for m in nn.Module.modules(net)}
    config: dict = {}
    for family, tcfg in stage.transforms.items():
        part = tt.make_param_T_config(net, tcfg.build(), family)
        config = _merge(config, part)
    net = tt.make_param_T_network(net, config, inplace=True)
    added = [m for m in nn.Module.modules(net) if isinstance(m, TWrapper) and id(m) not in before]
    for w in added:
        object.__setattr__(w, "_snnqat_burn_in", _burns(w, stage))
    return net, added


def _burns(wrapper: TWrapper, stage: StageConfig) -> bool:
    leaf = wrapper._mod
    while is_wrapper(leaf):
        leaf = leaf._mod
    infos = getattr(leaf, "_snn_attributes", {})
    for name in wrapper._T_config:
        fam = infos[name].family if name in infos else None
        fam = canonical_families(fam)[0] if fam else None
        if fam in stage.transforms and stage.transforms[fam].burn_in:
            return True
    return False


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def detach_transforms(net: Any, wrappers: list[TWrapper]) -> Any:
    """Remove the given wrappers (burning in those configured with ``burn_in``); returns net."""
    targets = {id(w) for w in wrappers}
    for w in wrappers:
        if getattr(w, "_snnqat_burn_in", False):
            w.apply_T()
    return _unwrap(net, targets)


def _unwrap(mod: Any, targets: set[int]) -> Any:
    if id(mod) in targets:
        inner = _unwrap(mod._mod, targets)
        object.__setattr__(inner, "_name", mod._name)
        return inner
    if is_wrapper(mod):
        mod._mod = _unwrap(mod._mod, targets)
        return mod
    for key, sub in walk_submodules(mod).items():
        new = _unwrap(sub, targets)
        if new is not sub:
            setattr(mod, key, new)
    return mod
