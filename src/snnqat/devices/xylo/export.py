"""``export``: turn a trained network into the integer arrays of a Xylo-class core.

Works on float networks (post-training quantization) and on networks patched with
:func:`~snnqat.devices.xylo.hardware_faithful` (whose parameters already are integers in
the forward pass: the export reads exactly those values). Out-of-range values saturate,
never wrap, and the report counts them (decision 24). Biases are scaled with the scale of
their own layer.

Example:
    >>> from snnqat.nn.combinators import Sequential
    >>> from snnqat.nn.modules import LinearTorch, LIFTorch
    >>> net = Sequential(LinearTorch((2, 4)), LIFTorch(4), LinearTorch((4, 2)), LIFTorch(2))
    >>> spec, rep = export(net, report=True)
    >>> spec.weights_in.shape, spec.weights_rec.shape, spec.weights_out.shape
    ((2, 4, 1), (4, 4, 1), (4, 2))
    >>> int(abs(spec.weights_in).max())
    127
    >>> sum(rep.clipped.values())
    0
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from snnqat.devices.xylo._plan import METHODS, Plan, Population, effective, make_plan
from snnqat.devices.xylo._plan import population_scales as _scales
from snnqat.devices.xylo.limits import XyloLimits
from snnqat.devices.xylo.spec import XyloSpec
from snnqat.nn.modules.lif_torch import LEAK_MODES, _convert
from snnqat.transform._wrappers import unwrap

__all__ = ["export", "ExportReport"]


@dataclasses.dataclass
class ExportReport:
    """What :func:`export` did.

    Attributes:
        clipped: Number of values that saturated at their range, per array.
        scales: The integer scale of each population (one value, or one per neuron).
        bits: Bit widths of the exported quantities.
        notes: Things that have no equivalent on the chip and were left out.
    """

    clipped: dict[str, int]
    scales: dict[str, list[float]]
    bits: dict[str, int]
    notes: list[str]


def export(
    net: Any, *, method: str = "global", limits: XyloLimits | None = None, report: bool = False
) -> Any:
    """Export a network to a :class:`XyloSpec` of integer arrays.

    Args:
        net: A deployable network (``Sequential`` of ``LinearTorch``/``LIFTorch``/``Residual``),
            plain or patched (parameter transforms are applied as in the forward pass).
        method: ``"global"`` (one scale for all hidden layers, one for the outputs) or
            ``"channel"`` (one per neuron).
        limits: The chip's limits (default :class:`XyloLimits`).
        report: Also return an :class:`ExportReport`.

    Returns:
        The spec, or ``(spec, report)``.

    Raises:
        ValueError: the network breaks a design rule (the message names the module and the
            rule), or ``method`` is unknown.
    """
    limits = limits or XyloLimits()
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}.")
    plan = make_plan(net, limits)
    with torch.no_grad():
        values = [_population_values(net, p) for p in (*plan.hidden, plan.output)]
        scales = _all_scales(values, plan, limits, method)
        spec, rep = _assemble(plan, values, scales, limits)
    spec.validate(limits)
    return (spec, rep) if report else spec


def _slot(root: Any, path: tuple[str, ...]) -> Any:
    node = unwrap(root)[0]
    for name in path[:-1]:
        node = unwrap(node._modules[name])[0]
    return node._modules[path[-1]]


def _population_values(root: Any, pop: Population) -> dict[str, Any]:
    lin, lif = _slot(root, pop.lin_path), _slot(root, pop.lif_path)
    n = pop.size
    mode = pop.lif.leak_mode
    dashes = [
        _convert(effective(lif, native), mode, "dash", float(pop.lif.dt))
        for native in LEAK_MODES[mode]
    ]
    return {
        "weight": effective(lin, "weight").double(),
        "w_rec": effective(lif, "w_rec").double() if pop.lif._has_rec else None,
        "threshold": effective(lif, "threshold").double().expand(n),
        "bias": effective(lif, "bias").double().expand(n),
        "dash_mem": dashes[0].double().expand(n),
        "dash_syn": dashes[1].double().expand(n, pop.n_syn),
    }


def _all_scales(values: list, plan: Plan, limits: XyloLimits, method: str) -> list[torch.Tensor]:
    per_neuron = method == "channel"
    scales = [
        _scales([v["weight"], v["w_rec"]], v["threshold"], v["bias"], p.n_syn, limits, per_neuron)
        for v, p in zip(values, (*plan.hidden, plan.output))
    ]
    if not per_neuron:
        hidden = torch.stack([s[0] for s in scales[:-1]]).min()
        scales = [hidden.expand(s.shape[0]) for s in scales[:-1]] + [scales[-1]]
    return scales


class _Clip:
    """Round, saturate and count what saturated."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def __call__(self, name: str, value: torch.Tensor, lo: float, hi: float) -> np.ndarray:
        rounded = torch.round(value)
        self.counts[name] = self.counts.get(name, 0) + int(((rounded < lo) | (rounded > hi)).sum())
        return rounded.clamp(lo, hi).to(torch.int64).cpu().numpy()


def _assemble(plan: Plan, values: list, scales: list, limits: XyloLimits) -> tuple:
    clip = _Clip()
    n_in, n_hid, n_syn, n_out = plan.n_inputs, plan.n_hidden, plan.n_syn, plan.output.size
    w_in = np.zeros((n_in, n_hid, n_syn), np.int64)
    w_rec = np.zeros((n_hid, n_hid, n_syn), np.int64)
    w_out = np.zeros((n_hid, n_out), np.int64)
    hid = {k: np.zeros(n_hid, np.int64) for k in ("threshold", "bias", "dash_mem")}
    dash_syn = np.zeros((n_hid, n_syn), np.int64)
    wmax = limits.weight_max
    for pop, v, s in zip(plan.hidden, values, scales):
        sl, k = slice(pop.offset, pop.offset + pop.size), pop.n_syn
        w = clip("weights", v["weight"] * s.repeat_interleave(k), -wmax, wmax)
        w = w.reshape(w.shape[0], pop.size, k)
        if pop.source is None:
            w_in[:, sl, :k] = w
        else:
            src = plan.hidden[pop.source]
            w_rec[src.offset : src.offset + src.size, sl, :k] = w
        if v["w_rec"] is not None:
            r = clip("weights", v["w_rec"] * s.repeat_interleave(k), -wmax, wmax)
            w_rec[sl, sl, :k] += r.reshape(pop.size, pop.size, k)
        _neuron_values(clip, hid, dash_syn, sl, k, v, s, limits, "")
    out_v, out_s = values[-1], scales[-1]
    src = plan.hidden[plan.output.source]
    w_out[src.offset : src.offset + src.size] = clip(
        "weights_out", out_v["weight"] * out_s, -wmax, wmax
    )
    out: dict = {k: np.zeros(n_out, np.int64) for k in ("threshold", "bias", "dash_mem")}
    out_syn = np.zeros((n_out, 1), np.int64)
    _neuron_values(clip, out, out_syn, slice(0, n_out), 1, out_v, out_s, limits, "_out")
    aliases = [[] for _ in range(n_hid)]
    for pop in plan.hidden:
        if pop.alias_source is not None:
            src = plan.hidden[pop.alias_source]
            for i in range(pop.size):
                aliases[src.offset + i].append(pop.offset + i)
    spec = XyloSpec(
        weights_in=w_in,
        weights_rec=w_rec,
        weights_out=w_out,
        dash_mem=hid["dash_mem"],
        dash_syn=dash_syn,
        dash_mem_out=out["dash_mem"],
        dash_syn_out=out_syn[:, 0],
        threshold=hid["threshold"],
        threshold_out=out["threshold"],
        bias=hid["bias"],
        bias_out=out["bias"],
        aliases=aliases,
        dt=plan.dt,
    )
    bits = dict(
        weights=limits.weight_bits, state=limits.state_bits, threshold=limits.threshold_bits, dash=4
    )
    names = [f"hidden{i}" for i in range(len(plan.hidden))] + ["output"]
    rep_scales = {
        n: s.tolist() if s.unique().numel() > 1 else [float(s[0])] for n, s in zip(names, scales)
    }
    notes = [
        f"membrane noise of LIFTorch '{'/'.join(p.lif_path)}' is not exported"
        for p in (*plan.hidden, plan.output)
        if p.lif.noise_std > 0
    ]
    return spec, ExportReport(clip.counts, rep_scales, bits, notes)


def _neuron_values(clip, into, dash_syn, sl, k, v, s, limits, suffix) -> None:
    into["threshold"][sl] = clip("threshold" + suffix, v["threshold"] * s, 1, limits.threshold_max)
    into["bias"][sl] = clip("bias" + suffix, v["bias"] * s, limits.state_min, limits.state_max)
    into["dash_mem"][sl] = clip("dash_mem" + suffix, v["dash_mem"], 0, limits.max_dash)
    dash_syn[sl, :k] = clip("dash_syn" + suffix, v["dash_syn"], 0, limits.max_dash)
