"""Map a network onto a Xylo-class core: populations, design rules and integer scales.

A deployable network is a ``Sequential`` of weight layers (``LinearTorch``) and neuron layers
(``LIFTorch``), possibly with ``Residual`` blocks made of such pairs:

* the first weight layer reads the inputs (``weights_in``, no delay);
* every neuron layer but the last is a *hidden population*; weight layers between hidden
  populations and a LIF's own ``w_rec`` go into ``weights_rec`` (one step of delay per hop);
* the last neuron layer is the *output population*, fed through ``weights_out``;
* a ``Residual`` block's input spikes are *aliased* onto the block's last population.

Integer scales: each population's incoming weights, threshold and bias are multiplied by one
positive factor (``method="global"``: one factor for all hidden populations and one for the
outputs; ``"channel"``: one per neuron), the largest for which nothing leaves its range:
``s = min(w_max / max|w|, th_max / max θ, state_max / max|b|)``. The spike dynamics of a
population are invariant under this scaling, so it changes only the rounding.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from snnqat.devices.xylo.limits import XyloLimits
from snnqat.nn.combinators import TorchResidual, TorchSequential
from snnqat.nn.modules import LIFTorch, LinearTorch
from snnqat.transform._wrappers import ActWrapper, TWrapper, transformed_values, unwrap

__all__ = ["Population", "Plan", "make_plan", "population_scales", "effective"]

METHODS = ("global", "channel")


@dataclasses.dataclass
class Population:
    """One neuron layer and the weight layer feeding it.

    Attributes:
        lif_path: Names from the root to the neuron layer's slot.
        lin_path: Names from the root to the weight layer's slot.
        lif: The neuron layer (innermost module).
        lin: The weight layer (innermost module).
        source: Index of the hidden population whose spikes feed ``lin``; ``None``: inputs.
        alias_source: Index of the population aliased onto this one (residual), or ``None``.
        offset: Index of this population's first neuron among the hidden neurons.
    """

    lif_path: tuple[str, ...]
    lin_path: tuple[str, ...]
    lif: LIFTorch
    lin: LinearTorch
    source: int | None
    alias_source: int | None = None
    residual: TorchResidual | None = None
    offset: int = 0

    @property
    def size(self) -> int:
        """Number of neurons."""
        return self.lif.size_out

    @property
    def n_syn(self) -> int:
        """Synapses per neuron."""
        return self.lif.n_synapses


@dataclasses.dataclass
class Plan:
    """The populations of a network in hidden-index order, then the output population."""

    hidden: list[Population]
    output: Population
    n_inputs: int
    dt: float

    @property
    def n_hidden(self) -> int:
        """Total number of hidden neurons."""
        return sum(p.size for p in self.hidden)

    @property
    def n_syn(self) -> int:
        """Synapses per hidden neuron in the spec (the largest of the populations)."""
        return max(p.n_syn for p in self.hidden)


def _fail(where: str, rule: str, fix: str) -> ValueError:
    return ValueError(f"not deployable: {where}: {rule} {fix}")


def _name(path: tuple[str, ...], mod: Any) -> str:
    return f"{type(mod).__name__} '{'/'.join(path)}'"


def make_plan(net: Any, limits: XyloLimits) -> Plan:
    """Check the design rules and list the populations of ``net``.

    Raises:
        ValueError: the network breaks a design rule; the message names the module and rule.
        TypeError: ``net`` is not an snnqat ``Sequential``.
    """
    root = unwrap(net)[0]
    if not isinstance(root, TorchSequential) or isinstance(root, TorchResidual):
        raise TypeError(
            f"net: expected a Sequential of LinearTorch / LIFTorch / Residual modules, got "
            f"{type(root).__name__}."
        )
    pops: list[Population] = []
    _walk(root, (), None, pops, limits)
    if len(pops) < 2:
        raise _fail(
            "network",
            "needs at least two neuron layers (hidden and output).",
            "Add a hidden LIFTorch layer.",
        )
    *hidden, out = pops
    _check_output(out, hidden)
    offset = 0
    for pop in hidden:
        pop.offset = offset
        offset += pop.size
    plan = Plan(hidden, out, hidden[0].lin.size_in, _common_dt(pops))
    _check_limits(plan, limits)
    return plan


def _walk(seq: Any, prefix: tuple, source: int | None, pops: list, limits: XyloLimits) -> int:
    pending: tuple | None = None
    for name, child in seq._modules.items():
        path = (*prefix, name)
        leaf = unwrap(child)[0]
        _check_wrapper(child, path)
        if isinstance(leaf, LinearTorch):
            if pending is not None:
                raise _fail(
                    _name(path, leaf),
                    "a weight layer feeds another weight layer.",
                    "Put a LIFTorch between them or merge the two matrices.",
                )
            if leaf.bias is not None:
                raise _fail(
                    _name(path, leaf),
                    "weight layers have no bias on the chip.",
                    "Use LinearTorch(..., has_bias=False) and the LIF's `bias`.",
                )
            pending = (path, leaf)
        elif isinstance(leaf, LIFTorch):
            if pending is None:
                raise _fail(
                    _name(path, leaf),
                    "a neuron layer must be fed by a weight layer.",
                    "Put a LinearTorch before it.",
                )
            pops.append(Population(path, pending[0], leaf, pending[1], source))
            source, pending = len(pops) - 1, None
        elif isinstance(leaf, TorchResidual):
            if pending is not None or source is None:
                raise _fail(
                    _name(path, leaf),
                    "a residual block must follow a neuron layer.",
                    "Place the Residual after a LIFTorch.",
                )
            new_source = _walk(leaf, path, source, pops, limits)
            if new_source == source or not isinstance(unwrap(_last(leaf))[0], LIFTorch):
                raise _fail(
                    _name(path, leaf),
                    "a residual block must end with a neuron layer.",
                    "Use Residual(LinearTorch(...), LIFTorch(...)).",
                )
            pops[new_source].alias_source, pops[new_source].residual = source, leaf
            source = new_source
        else:
            raise _fail(
                _name(path, leaf),
                "only LinearTorch, LIFTorch and Residual map onto the chip.",
                "Remove or replace this module.",
            )
    if pending is not None:
        raise _fail(
            _name(pending[0], pending[1]),
            "the network must end with a neuron layer.",
            "Add a LIFTorch after the last weight layer.",
        )
    return source


def _last(seq: Any) -> Any:
    return list(seq._modules.values())[-1]


def _check_wrapper(child: Any, path: tuple) -> None:
    mod = child
    while isinstance(mod, (TWrapper, ActWrapper)):
        if isinstance(mod, ActWrapper):
            raise _fail(
                f"ActWrapper '{'/'.join(path)}'",
                "activity transforms have no equivalent on the chip.",
                "Remove them with remove_T_net first.",
            )
        mod = mod._mod


def _check_output(out: Population, hidden: list[Population]) -> None:
    where = _name(out.lif_path, out.lif)
    if out.source is None:
        raise _fail(
            where,
            "the output layer must be fed by a hidden layer.",
            "Add a hidden LIFTorch layer before it.",
        )
    if out.lif._has_rec:
        raise _fail(where, "output neurons cannot be recurrent.", "Use has_rec=False.")
    if out.n_syn != 1:
        raise _fail(where, "output neurons have one synapse.", "Use shape (N, N).")
    if out.alias_source is not None:
        raise _fail(
            where,
            "the output layer cannot end a residual block.",
            "Put a weight and neuron layer after the Residual.",
        )


def _common_dt(pops: list[Population]) -> float:
    dts = {float(p.lif.dt) for p in pops}
    if len(dts) != 1:
        raise _fail(
            "network",
            f"all neuron layers must share one dt, got {sorted(dts)}.",
            "Build every LIFTorch with the same dt.",
        )
    return dts.pop()


def _check_limits(plan: Plan, limits: XyloLimits) -> None:
    first = plan.hidden[0]
    checks = [
        (plan.n_inputs, limits.max_inputs, "inputs", _name(first.lin_path, first.lin)),
        (plan.n_hidden, limits.max_hidden, "hidden neurons", "network"),
        (
            plan.output.size,
            limits.max_outputs,
            "outputs",
            _name(plan.output.lif_path, plan.output.lif),
        ),
    ]
    checks += [
        (p.n_syn, limits.max_synapses, "synapses per neuron", _name(p.lif_path, p.lif))
        for p in plan.hidden
    ]
    for got, most, what, where in checks:
        if got > most:
            raise _fail(
                where,
                f"{got} {what}, but the chip has at most {most}.",
                "Make the layer smaller or raise the XyloLimits.",
            )


# --------------------------------------------------------------------------- values and scales
def effective(slot: Any, name: str) -> torch.Tensor | None:
    """The value a parameter takes in the forward pass: through all transforms of its slot."""
    values = transformed_values(slot)
    if name in values:
        return values[name]
    leaf = unwrap(slot)[0]
    return leaf._parameters.get(name, leaf._buffers.get(name))


def population_scales(
    weights: list[torch.Tensor | None],
    threshold: torch.Tensor,
    bias: torch.Tensor,
    n_syn: int,
    limits: XyloLimits,
    per_neuron: bool,
) -> torch.Tensor:
    """The integer scale of each neuron of one population (or one shared value).

    Args:
        weights: Matrices ``(sources, N·S)`` feeding the population (``None`` entries skipped).
        threshold: ``(N,)`` thresholds. bias: ``(N,)`` biases.
        n_syn: Synapses per neuron ``S``.
        limits: The chip limits.
        per_neuron: One scale per neuron (``"channel"``) or one for all.

    Returns:
        ``(N,)`` scales ``s = min(w_max/max|w|, th_max/max θ, state_max/max|b|)``.
    """
    n = threshold.shape[0]
    refs = []
    for w in weights:
        if w is not None:
            refs.append(
                (w.detach().abs().reshape(w.shape[0], n, n_syn).amax((0, 2)), limits.weight_max)
            )
    refs.append((threshold.detach().abs(), limits.threshold_max))
    refs.append((bias.detach().abs(), limits.state_max))
    scale = torch.full((n,), float("inf"), dtype=threshold.dtype, device=threshold.device)
    for ref, most in refs:
        ref = ref if per_neuron else ref.max().expand(n)
        scale = torch.minimum(scale, torch.where(ref > 0, most / ref, torch.inf))
    return torch.where(torch.isfinite(scale), scale, torch.ones_like(scale))
