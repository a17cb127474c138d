"""Vectorised integer kernels behind :class:`~snnqat.devices.xylo.XyloSim` (private).

Everything here is a pure function of NumPy ``int64`` arrays with a leading batch axis ``B``.
The semantics are documented in ``docs/dev/xylo_semantics.md`` and in ``sim.py``; the comments
here explain how the vectorisation keeps them exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .limits import XyloLimits
from .spec import XyloSpec

_EXACT_FLOAT = 2**52  # integers below this are exact in float64 sums


class SimState(NamedTuple):
    """Batched simulator state, all ``int64``."""

    vmem: np.ndarray  # (B, Nhid)
    isyn: np.ndarray  # (B, Nhid, Nsyn)
    spikes: np.ndarray  # (B, Nhid): hidden spike counts of the last step, delivered next step
    vmem_out: np.ndarray  # (B, Nout)
    isyn_out: np.ndarray  # (B, Nout)


@dataclass(frozen=True)
class Projection:
    """Weights from an ordered list of sources to flattened targets (synapses)."""

    weights: np.ndarray  # (S, K) int64, already shifted
    positive: np.ndarray  # (S, K) max(w, 0), float64 (or int64 if float64 is not exact)
    negative: np.ndarray  # (S, K) min(w, 0)


@dataclass(frozen=True)
class Population:
    """Per-neuron constants of one neuron population."""

    dash_syn: np.ndarray  # (N, S)
    dash_mem: np.ndarray  # (N,)
    threshold: np.ndarray  # (N,)
    bias: np.ndarray  # (N,)
    cap: int  # spikes per neuron per step


@dataclass(frozen=True)
class AliasEdges:
    """Alias contributions ``n[:, sources] @ matrix`` onto ``targets``."""

    sources: np.ndarray  # (k,)
    targets: np.ndarray  # (m,)
    matrix: np.ndarray  # (k, m) multiplicities


@dataclass(frozen=True)
class Plan:
    """Everything the step needs, precomputed once from a validated spec."""

    low: int
    high: int
    state_bits: int
    input_cap: int
    to_hidden: Projection  # sources: Nin input channels, then Nhid hidden neurons
    to_output: Projection  # sources: Nhid hidden neurons
    hidden: Population
    output: Population
    first_wave: np.ndarray  # hidden neurons that start from 0 aliased spikes
    forward_aliases: tuple[AliasEdges, ...]  # one per wave, in order
    late_aliases: AliasEdges | None  # source index >= target index: counted after firing


# ---------------------------------------------------------------------- elementwise maths
def decay(v: np.ndarray, dash: np.ndarray) -> np.ndarray:
    """``v >> dash`` (floor), but at least one step toward 0: ``sign(v)`` when it is 0."""
    dv = np.right_shift(v, dash)
    return np.where((dv == 0) & (v != 0), np.sign(v), dv)


def integrate(
    isyn: np.ndarray, vmem: np.ndarray, pop: Population, plan: Plan
) -> tuple[np.ndarray, np.ndarray]:
    """Decay ``isyn``, then ``vmem <- sat(vmem + sat(sat(-decay(vmem) + sum isyn) + bias))``."""
    isyn = isyn - decay(isyn, pop.dash_syn)
    leak = -decay(vmem, pop.dash_mem)
    # the vendor stores -decay(vmem) in the state type: -(-2**15) wraps to -2**15 (dash 0)
    leak = np.where(leak > plan.high, leak - 2**plan.state_bits, leak)
    dv = np.clip(leak + isyn.sum(axis=-1), plan.low, plan.high)
    dv = np.clip(dv + pop.bias, plan.low, plan.high)
    return isyn, np.clip(vmem + dv, plan.low, plan.high)


def fire(
    vmem: np.ndarray, threshold: np.ndarray, already: np.ndarray | int, cap: int
) -> tuple[np.ndarray, np.ndarray]:
    """Subtractive reset, ``floor(vmem / threshold)`` spikes but at most ``cap - already``."""
    emitted = np.clip(vmem // threshold, 0, cap - already)
    return already + emitted, vmem - emitted * threshold


# ---------------------------------------------------------------------- spike delivery
def deliver(
    isyn: np.ndarray, counts: np.ndarray, proj: Projection, low: int, high: int
) -> np.ndarray:
    """Add ``counts[:, s] * w[s]`` source by source, saturating after every addition.

    Adding one weight ``n`` times with saturation equals ``clip(x + n * w)``; across sources
    the order matters only if a partial sum leaves ``[low, high]``. Every partial sum lies
    between ``x + counts @ min(w, 0)`` and ``x + counts @ max(w, 0)``, so where both bounds are
    inside the range the plain matrix product is exact. Only the columns that may saturate are
    replayed source by source (vectorised over batch and those columns).
    """
    active = np.flatnonzero(counts.any(axis=0))
    if active.size == 0:
        return isyn
    counts = counts[:, active]
    up = _matmul(counts, proj.positive[active])
    down = _matmul(counts, proj.negative[active])
    result = isyn + up + down
    risky = np.flatnonzero(((isyn + up > high) | (isyn + down < low)).any(axis=0))
    if risky.size:
        weights = proj.weights[np.ix_(active, risky)]
        result[:, risky] = _replay(isyn[:, risky], counts, weights, low, high)
    return result


def _matmul(counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    if weights.dtype == np.float64:
        return np.rint(counts.astype(np.float64) @ weights).astype(np.int64)
    return counts @ weights


def _replay(
    x: np.ndarray, counts: np.ndarray, weights: np.ndarray, low: int, high: int
) -> np.ndarray:
    x = x.copy()
    increment = np.empty_like(x)
    for s in np.flatnonzero(weights.any(axis=1)):  # a zero row cannot change anything
        np.multiply(counts[:, s, None], weights[s], out=increment)
        np.add(x, increment, out=x)
        np.maximum(x, low, out=x)
        np.minimum(x, high, out=x)
    return x


# ---------------------------------------------------------------------- one time step
def step_hidden_inputs(state: SimState, inputs: np.ndarray, plan: Plan) -> SimState:
    """Deliver this step's input counts and last step's hidden spikes (delay of one step)."""
    batch, n_hidden, n_syn = state.isyn.shape
    sources = np.concatenate([inputs, state.spikes], axis=1)
    flat = state.isyn.reshape(batch, n_hidden * n_syn)
    isyn = deliver(flat, sources, plan.to_hidden, plan.low, plan.high)
    isyn_out = deliver(state.isyn_out, state.spikes, plan.to_output, plan.low, plan.high)
    return state._replace(isyn=isyn.reshape(batch, n_hidden, n_syn), isyn_out=isyn_out)


def fire_hidden(vmem: np.ndarray, plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """Fire hidden neurons in index order, with aliased spikes counted toward the cap.

    A neuron's aliased spikes from lower-index sources arrive before it fires: neurons are
    fired in waves (a wave's aliased counts depend only on earlier waves). Aliases from a
    higher-or-equal index arrive after the target fired: they only raise its delivered count.
    Capped additions of non-negative counts commute, so each target's sum is capped once.
    """
    pop = plan.hidden
    spikes = np.zeros_like(vmem)
    vmem = vmem.copy()
    wave = plan.first_wave
    spikes[:, wave], vmem[:, wave] = fire(vmem[:, wave], pop.threshold[wave], 0, pop.cap)
    for edges in plan.forward_aliases:
        t = edges.targets
        already = np.minimum(spikes[:, edges.sources] @ edges.matrix, pop.cap)
        spikes[:, t], vmem[:, t] = fire(vmem[:, t], pop.threshold[t], already, pop.cap)
    delivered = spikes
    if plan.late_aliases is not None:
        edges = plan.late_aliases
        delivered = spikes.copy()
        late = spikes[:, edges.sources] @ edges.matrix
        delivered[:, edges.targets] = np.minimum(spikes[:, edges.targets] + late, pop.cap)
    return delivered, vmem


def step(state: SimState, inputs: np.ndarray, plan: Plan) -> tuple[np.ndarray, SimState]:
    """One time step; ``inputs`` are this step's input counts, already capped. Returns
    ``(output spikes, new state)``."""
    state = step_hidden_inputs(state, inputs, plan)
    isyn, vmem = integrate(state.isyn, state.vmem, plan.hidden, plan)
    spikes, vmem = fire_hidden(vmem, plan)
    isyn_out, vmem_out = integrate(state.isyn_out[..., None], state.vmem_out, plan.output, plan)
    out, vmem_out = fire(vmem_out, plan.output.threshold, 0, plan.output.cap)
    return out, SimState(vmem, isyn, spikes, vmem_out, isyn_out[..., 0])


def run(
    plan: Plan, counts: np.ndarray, state: SimState, record: bool
) -> tuple[np.ndarray, SimState, dict[str, np.ndarray]]:
    """Run ``counts`` ``(B, T, Nin)`` (already capped) from ``state``."""
    batch, steps, _ = counts.shape
    outputs = np.zeros((batch, steps, plan.output.threshold.size), np.int32)
    traces = _empty_traces(state, steps) if record else {}
    for t in range(steps):
        out, state = step(state, counts[:, t], plan)
        outputs[:, t] = out
        for key, value in zip(traces, _trace_values(state)):
            traces[key][:, t] = value
    return outputs, state, traces


_TRACE_KEYS = ("Vmem", "Isyn", "Spikes", "Vmem_out", "Isyn_out")


def _trace_values(state: SimState) -> tuple[np.ndarray, ...]:
    return state.vmem, state.isyn, state.spikes, state.vmem_out, state.isyn_out


def _empty_traces(state: SimState, steps: int) -> dict[str, np.ndarray]:
    return {
        key: np.zeros((v.shape[0], steps, *v.shape[1:]), np.int32)
        for key, v in zip(_TRACE_KEYS, _trace_values(state))
    }


# ---------------------------------------------------------------------- plan building
def build_plan(spec: XyloSpec, limits: XyloLimits) -> Plan:
    """Precompute shifted weights, per-population constants and alias waves."""
    nin, nhid, nsyn = spec.weights_in.shape
    w_in = _shifted(spec.weights_in, spec.weight_shift_in).reshape(nin, nhid * nsyn)
    w_rec = _shifted(spec.weights_rec, spec.weight_shift_rec).reshape(nhid, nhid * nsyn)
    max_count = max(limits.max_input_spikes, limits.max_hidden_spikes)
    waves, forward, late = _alias_plan(spec.aliases, nhid)
    return Plan(
        low=limits.state_min,
        high=limits.state_max,
        state_bits=limits.state_bits,
        input_cap=limits.max_input_spikes,
        to_hidden=_projection(np.concatenate([w_in, w_rec]), max_count, limits),
        to_output=_projection(_shifted(spec.weights_out, spec.weight_shift_out), max_count, limits),
        hidden=_population(spec, "", limits.max_hidden_spikes),
        output=_population(spec, "_out", limits.max_output_spikes),
        first_wave=waves,
        forward_aliases=forward,
        late_aliases=late,
    )


def _shifted(weights: np.ndarray, shift: int) -> np.ndarray:
    return np.left_shift(weights.astype(np.int64), shift)


def _projection(weights: np.ndarray, max_count: int, limits: XyloLimits) -> Projection:
    bound = weights.shape[0] * max_count * 2 ** (limits.state_bits - 1)
    dtype = np.float64 if bound < _EXACT_FLOAT else np.int64
    return Projection(
        weights=weights,
        positive=np.maximum(weights, 0).astype(dtype),
        negative=np.minimum(weights, 0).astype(dtype),
    )


def _population(spec: XyloSpec, suffix: str, cap: int) -> Population:
    dash_syn = getattr(spec, "dash_syn" + suffix).astype(np.int64)
    return Population(
        dash_syn=dash_syn.reshape(dash_syn.shape[0], -1),
        dash_mem=getattr(spec, "dash_mem" + suffix).astype(np.int64),
        threshold=getattr(spec, "threshold" + suffix).astype(np.int64),
        bias=getattr(spec, "bias" + suffix).astype(np.int64),
        cap=cap,
    )


def _alias_plan(
    aliases: list[list[int]], n_hidden: int
) -> tuple[np.ndarray, tuple[AliasEdges, ...], AliasEdges | None]:
    forward = [(s, t) for s, ts in enumerate(aliases) for t in ts if s < t]
    late = [(s, t) for s, ts in enumerate(aliases) for t in ts if s >= t]
    wave = np.zeros(n_hidden, np.int64)
    for s, t in sorted(forward, key=lambda e: e[1]):  # sources fire before their targets
        wave[t] = max(wave[t], wave[s] + 1)
    waves = tuple(
        _edges([e for e in forward if wave[e[1]] == w]) for w in range(1, int(wave.max()) + 1)
    )
    return np.flatnonzero(wave == 0), waves, (_edges(late) if late else None)


def _edges(edges: list[tuple[int, int]]) -> AliasEdges:
    sources = np.unique([s for s, _ in edges])
    targets = np.unique([t for _, t in edges])
    matrix = np.zeros((sources.size, targets.size), np.int64)
    for s, t in edges:
        matrix[np.searchsorted(sources, s), np.searchsorted(targets, t)] += 1
    return AliasEdges(sources, targets, matrix)
