"""``hardware_faithful``: train a network in the chip's own integer arithmetic.

The returned network is the input network patched with the transformation pipeline:

* **parameter transforms** (:class:`~snnqat.transform.torch_transform.TWrapper`): weights,
  recurrent weights, thresholds and biases are scaled into integer units and rounded
  (straight-through), with the scales that :func:`~snnqat.devices.xylo.export` uses;
* **module options**: LIF layers run the kernel's integer mode (bit-shift leaks with floor
  and minimum step 1, int16 saturation, spike caps 31 hidden / 1 output), weight layers cap
  input counts at 15, delay hidden→hidden and hidden→output hops by one step and deliver
  spikes source by source into saturating states, and residual blocks alias their input
  onto their last layer.

So its forward computes, spike for spike, what ``XyloSim.from_spec(export(net))`` computes
on the same input; its backward uses straight-through and surrogate gradients, so it trains.

Example:
    >>> import torch
    >>> from snnqat.nn.combinators import Sequential
    >>> from snnqat.nn.modules import LinearTorch, LIFTorch
    >>> from snnqat.devices.xylo import XyloSim, export
    >>> net = Sequential(LinearTorch((2, 4)), LIFTorch(4), LinearTorch((4, 2)), LIFTorch(2))
    >>> hf = hardware_faithful(net)
    >>> raster = (torch.rand(1, 20, 2) < 0.5).float() * 3
    >>> out = hf(raster)[0]
    >>> sim_out = XyloSim.from_spec(export(hf))(raster.int().numpy())[0]
    >>> bool((out.int().numpy() == sim_out).all())
    True
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from snnqat.devices.xylo._plan import METHODS, Plan, make_plan, population_scales
from snnqat.devices.xylo.limits import XyloLimits
from snnqat.kernels import HardwareOptions
from snnqat.parameters import Parameter
from snnqat.transform._ste import clipped_round_passthrough
from snnqat.transform.torch_transform import make_param_T_network

__all__ = ["hardware_faithful", "IntegerScale", "ToIntegerGrid"]


class IntegerScale:
    """The integer scale of one population, computed from the live float parameters.

    Holds the population's modules and reads their current parameters at each call (so it
    follows training and burn-in); returns ``(N,)`` scales, detached.
    """

    def __init__(self, plan: Plan, index: int, limits: XyloLimits, method: str) -> None:
        self.limits = limits
        pops = plan.hidden if index < len(plan.hidden) else [plan.output]
        pop = plan.hidden[index] if index < len(plan.hidden) else plan.output
        self.own = (pop.lin, pop.lif)
        self.group = [(p.lin, p.lif) for p in pops] if method == "global" else None

    def __call__(self) -> torch.Tensor:
        if self.group is None:
            return population_scales(*_values(*self.own), self.limits, per_neuron=True)
        scales = [
            population_scales(*_values(*m), self.limits, per_neuron=False) for m in self.group
        ]
        return torch.stack([s[0] for s in scales]).min().expand(self.own[1].size_out)


def _values(lin: Any, lif: Any) -> tuple:
    params = lif._parameters
    w_rec = params["w_rec"] if lif._has_rec else None
    n = lif.size_out
    thr, bias = params["threshold"].expand(n), params["bias"].expand(n)
    return ([lin._parameters["weight"], w_rec], thr, bias, lif.n_synapses)


class ToIntegerGrid:
    """``T(p) = clip(round(p · s), lo, hi)`` with the population's scale ``s`` (STE).

    Args:
        scale: The population's :class:`IntegerScale`.
        kind: ``"weights"`` (scale along the last axis, per target neuron and synapse),
            ``"threshold"`` or ``"bias"``.
        lo, hi: The integer range.
        n_syn: Synapses per neuron (for ``"weights"``).
    """

    def __init__(self, scale: IntegerScale, kind: str, lo: float, hi: float, n_syn: int = 1):
        self.scale, self.kind, self.lo, self.hi, self.n_syn = scale, kind, lo, hi, n_syn

    def __call__(self, p: torch.Tensor) -> torch.Tensor:
        s = self.scale().to(p.dtype)
        if self.kind == "weights":
            s = s.repeat_interleave(self.n_syn)
        return clipped_round_passthrough(p * s, self.lo, self.hi)

    def __repr__(self) -> str:
        return f"ToIntegerGrid({self.kind}, [{self.lo:g}, {self.hi:g}])"


def hardware_faithful(net: Any, *, limits: XyloLimits | None = None, method: str = "global") -> Any:
    """Return a patched copy of ``net`` that computes in the chip's integer arithmetic.

    Args:
        net: A deployable network (see :mod:`snnqat.devices.xylo._plan` for the rules).
        limits: The chip's limits (default :class:`XyloLimits`).
        method: ``"global"`` (one scale for all hidden layers, one for the outputs) or
            ``"channel"`` (one per neuron).

    Returns:
        The patched network. :func:`~snnqat.transform.torch_transform.apply_T` burns the
        integer values in, :func:`~snnqat.transform.torch_transform.remove_T_net` unwraps.

    Raises:
        ValueError: ``net`` is not deployable (the message names the module and the rule),
            or ``method`` is unknown.
    """
    limits = limits or XyloLimits()
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}.")
    net = copy.deepcopy(net)  # the caller's network is never modified, also on error
    plan = make_plan(net, limits)
    pops = [*plan.hidden, plan.output]
    for pop in pops:
        _full_shape_parameters(pop.lif)
        if pop.lif.noise_std > 0:
            raise ValueError(
                f"not deployable: LIFTorch '{'/'.join(pop.lif_path)}': membrane noise has no "
                "equivalent on the chip. Build it with noise_std=0."
            )
    config: dict = {}
    for index, pop in enumerate(pops):
        scale = IntegerScale(plan, index, limits, method)
        w = ToIntegerGrid(scale, "weights", -limits.weight_max, limits.weight_max, pop.n_syn)
        _put(config, pop.lin_path, {"weight": w})
        lif_cfg = {
            "threshold": ToIntegerGrid(scale, "threshold", 1, limits.threshold_max),
            "bias": ToIntegerGrid(scale, "bias", limits.state_min, limits.state_max),
        }
        if pop.lif._has_rec:
            lif_cfg["w_rec"] = w
        _put(config, pop.lif_path, lif_cfg)
        # the surrogate window is in membrane units: keep its width in float units
        pop.lif.learning_window = float(pop.lif.learning_window) * float(scale().mean())
    net = make_param_T_network(net, config, inplace=True)
    _set_options(plan, limits)
    return net


def _put(tree: dict, path: tuple, value: dict) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _full_shape_parameters(lif: Any) -> None:
    """Give scalar thresholds and biases one value per neuron (scales may differ)."""
    n = lif.size_out
    for name, family in (("threshold", "thresholds"), ("bias", "biases")):
        value = getattr(lif, name).detach()
        if value.shape != (n,):
            setattr(lif, name, Parameter(value.expand(n).clone(), family=family, shape=[(n,), ()]))


def _set_options(plan: Plan, limits: XyloLimits) -> None:
    state = dict(state_min=limits.state_min, state_max=limits.state_max, max_dash=limits.max_dash)
    for index, pop in enumerate([*plan.hidden, plan.output]):
        is_input = pop.source is None
        pop.lin.hardware = HardwareOptions(
            **state,
            input_cap=float(limits.max_input_spikes) if is_input else None,
            delay=0 if is_input else 1,
        )
        pop.lif.hardware = HardwareOptions(**state)
        is_out = index == len(plan.hidden)
        pop.lif.max_spikes_per_dt = float(
            limits.max_output_spikes if is_out else limits.max_hidden_spikes
        )
        if pop.residual is not None:
            pop.residual.alias = True
