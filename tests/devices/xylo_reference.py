"""A slow, obviously correct reference for the Xylo integer semantics.

One Python ``int`` at a time, one neuron object per neuron, the step written in the order of
``docs/dev/xylo_semantics.md``: no vectorisation, no fast paths, nothing clever. The tests hold
:class:`snnqat.devices.xylo.XyloSim` against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from snnqat.devices.xylo import XyloLimits, XyloSpec


def safe_add(x: int, y: int, lo: int, hi: int) -> int:
    """Saturate at the limit ``y`` points to when ``|limit - x| <= |y|``."""
    limit = lo if y < 0 else hi
    return limit if abs(limit - x) <= abs(y) else x + y


def decay(v: int, dash: int) -> int:
    """``v >> dash`` (Python's ``>>`` floors), at least ``sign(v)`` in size."""
    dv = v >> dash
    if dv == 0 and v > 0:
        dv = 1
    if dv == 0 and v < 0:
        dv = -1
    return dv


def wrap(x: int, bits: int) -> int:
    """Two's-complement wrap of ``x`` into ``bits`` bits (what a C cast to int16 does)."""
    x = x % (2**bits)
    return x - 2**bits if x >= 2 ** (bits - 1) else x


@dataclass
class Neuron:
    dash_mem: int
    dash_syn: list[int]
    threshold: int
    bias: int
    limits: XyloLimits
    vmem: int = 0
    isyn: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.isyn = [0] * len(self.dash_syn)

    def receive(self, weight: int, synapse: int) -> None:
        lim = self.limits
        self.isyn[synapse] = safe_add(self.isyn[synapse], weight, lim.state_min, lim.state_max)

    def evolve(self, spikes: int, cap: int) -> int:
        lo, hi = self.limits.state_min, self.limits.state_max
        for k in range(len(self.isyn)):
            self.isyn[k] = self.isyn[k] - decay(self.isyn[k], self.dash_syn[k])
        total = sum(self.isyn)
        dv = wrap(-decay(self.vmem, self.dash_mem), self.limits.state_bits)
        dv = safe_add(dv, total, lo, hi)
        dv = safe_add(dv, self.bias, lo, hi)
        self.vmem = safe_add(self.vmem, dv, lo, hi)
        while self.vmem >= self.threshold and spikes < cap:
            spikes += 1
            self.vmem -= self.threshold
        return spikes


class ReferenceXylo:
    """Reference simulator of one spec; keeps its state between :meth:`run` calls."""

    def __init__(self, spec: XyloSpec, limits: XyloLimits | None = None) -> None:
        self.spec = spec
        self.limits = limits or XyloLimits()
        lim = self.limits
        self.hidden = [
            Neuron(
                int(spec.dash_mem[j]),
                [int(d) for d in spec.dash_syn[j]],
                int(spec.threshold[j]),
                int(spec.bias[j]),
                lim,
            )
            for j in range(spec.n_hidden)
        ]
        self.outputs = [
            Neuron(
                int(spec.dash_mem_out[o]),
                [int(spec.dash_syn_out[o])],
                int(spec.threshold_out[o]),
                int(spec.bias_out[o]),
                lim,
            )
            for o in range(spec.n_outputs)
        ]
        self.buffer = [0] * spec.n_hidden

    def _deliver_inputs(self, counts: list[int]) -> None:
        spec = self.spec
        for c, count in enumerate(counts):
            n = min(int(count), self.limits.max_input_spikes)
            for j in range(spec.n_hidden):
                for k in range(spec.n_synapses):
                    w = int(spec.weights_in[c, j, k]) << spec.weight_shift_in
                    for _ in range(n):
                        self.hidden[j].receive(w, k)

    def _deliver_recurrent(self) -> None:
        spec = self.spec
        for i, count in enumerate(self.buffer):
            n = min(count, self.limits.max_hidden_spikes)
            for j in range(spec.n_hidden):
                for k in range(spec.n_synapses):
                    w = int(spec.weights_rec[i, j, k]) << spec.weight_shift_rec
                    for _ in range(n):
                        self.hidden[j].receive(w, k)
            for o in range(spec.n_outputs):
                w = int(spec.weights_out[i, o]) << spec.weight_shift_out
                for _ in range(n):
                    self.outputs[o].receive(w, 0)

    def _evolve_hidden(self) -> None:
        cap = self.limits.max_hidden_spikes
        for j, neuron in enumerate(self.hidden):
            n = neuron.evolve(self.buffer[j], cap)
            self.buffer[j] = n
            for target in self.spec.aliases[j]:
                self.buffer[target] = min(self.buffer[target] + n, cap)

    def step(self, counts: list[int]) -> list[int]:
        self._deliver_inputs(counts)
        self._deliver_recurrent()
        self.buffer = [0] * self.spec.n_hidden
        self._evolve_hidden()
        cap = self.limits.max_output_spikes
        return [neuron.evolve(0, cap) for neuron in self.outputs]

    def run(self, raster: list[list[int]]) -> dict[str, list]:
        """Run ``raster`` ``(T, Nin)``; return output spikes and traces as nested lists."""
        rec: dict[str, list] = {k: [] for k in ("out", "Vmem", "Isyn", "Spikes")}
        rec.update({"Vmem_out": [], "Isyn_out": []})
        for counts in raster:
            rec["out"].append(self.step(list(counts)))
            rec["Vmem"].append([n.vmem for n in self.hidden])
            rec["Isyn"].append([list(n.isyn) for n in self.hidden])
            rec["Spikes"].append(list(self.buffer))
            rec["Vmem_out"].append([n.vmem for n in self.outputs])
            rec["Isyn_out"].append([n.isyn[0] for n in self.outputs])
        return rec
