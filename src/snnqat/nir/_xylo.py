"""XyloSpec <-> NIR with integer arrays (:func:`spec_to_nir`, :func:`nir_to_spec`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from snnqat.nir._common import (
    _MODULE_KEY,
    FORMAT,
    FORMAT_VERSION,
    _meta,
    _nir,
    _synapse_sum,
    _tau_from_decay,
    _text,
)
from snnqat.nir._import import _load

if TYPE_CHECKING:  # pragma: no cover
    import nir as nir_types

    from snnqat.devices.xylo import XyloLimits, XyloSpec

# ---------------------------------------------------------------------------------- XyloSpec
_INT_DTYPES = (np.int8, np.int16, np.int32, np.int64)


def _int_array(values: Any, bits: int) -> np.ndarray:
    """The values in the signed integer dtype of width ``bits`` (wider if they do not fit)."""
    values = np.asarray(values)
    lo, hi = (int(values.min()), int(values.max())) if values.size else (0, 0)
    for dtype in _INT_DTYPES:
        info = np.iinfo(dtype)
        if info.bits >= bits and info.min <= lo and hi <= info.max:
            return values.astype(dtype)
    return values.astype(np.int64)


def _as_int(name: str, values: Any) -> np.ndarray:
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.integer):
        return values.astype(np.int64)
    if np.issubdtype(values.dtype, np.floating) and np.all(values == np.round(values)):
        return values.astype(np.int64)
    raise ValueError(f"nir_to_spec: {name}: expected integer values, got dtype {values.dtype}.")


def _xylo_population(nir: Any, p: dict, dt: float, limits: XyloLimits, cap: int) -> dict:
    """``{suffix: node}`` for one population, in the float reading of the integer core.

    ``p`` holds the integer arrays ``dash_mem (N,)``, ``dash_syn (N, k)``, ``bias (N,)`` and
    ``threshold (N,)``.
    """
    dash_mem, dash_syn = p["dash_mem"].astype(np.float64), p["dash_syn"].astype(np.float64)
    n, k = dash_syn.shape
    r = np.power(2.0, dash_mem)
    tau_mem = _tau_from_decay(1.0 - 1.0 / r, dt, "dash_mem")
    tau_syn = _tau_from_decay(1.0 - np.power(2.0, -dash_syn), dt, "dash_syn")
    w_in = np.power(2.0, dash_syn) - 1.0
    thr = _int_array(p["threshold"], limits.threshold_bits)
    meta = {
        "dash_mem": _int_array(p["dash_mem"], 8),
        "dash_syn": _int_array(p["dash_syn"], 8),
        "bias": _int_array(p["bias"], limits.state_bits),
        "max_spikes_per_dt": int(cap),
    }
    common = dict(r=r, v_leak=p["bias"] * r, v_threshold=thr, v_reset=np.zeros_like(thr))
    if k == 1:
        cuba = nir.CubaLIF(tau_mem=tau_mem, tau_syn=tau_syn[:, 0], w_in=w_in[:, 0], **common)
        cuba.metadata.update(meta)
        return {"": cuba}
    lif = nir.LIF(tau=tau_mem, metadata=meta, **common)
    return {
        "_syn": nir.LI(tau=tau_syn.reshape(-1), r=w_in.reshape(-1), v_leak=np.zeros(n * k)),
        "_sum": nir.Linear(weight=_synapse_sum(n, k, np.int8)),
        "": lif,
    }


def spec_to_nir(spec: XyloSpec, limits: XyloLimits | None = None) -> nir_types.NIRGraph:
    """Write an integer :class:`~snnqat.devices.xylo.XyloSpec` as a NIR graph.

    Weights, thresholds, dashes and biases are stored as integer arrays of the core's widths
    (``int8`` weights, ``int16`` thresholds and biases for Xylo; wider only if a value does
    not fit). The float fields (``tau``, ``r``, ``w_in``, ``v_leak``) give the float
    reading of the integer core (``decay = 1 - 2**-dash``); the integer semantics, which NIR
    cannot express, are recorded in metadata (bit-shift leak with floor and a minimum step
    of 1, saturation, spike caps, one step of delay per hidden hop, aliases, weight shifts,
    ``dt``). Graph layout and keys: ``docs/nir.md``.

    Args:
        spec: the integer network; :meth:`~XyloSpec.check_structure` must pass.
        limits: the core whose widths and caps are recorded (default ``XyloLimits()``).

    Returns:
        A :class:`nir.NIRGraph`; :func:`nir_to_spec` reads it back.

    Raises:
        ValueError: the spec is structurally broken.

    Example:
        >>> from snnqat.devices.xylo import XyloSpec
        >>> spec = XyloSpec.zeros(2, 3, 1, threshold=[100] * 3, dash_mem=[4] * 3)
        >>> g = spec_to_nir(spec)
        >>> g.nodes["weights_in"].weight.dtype, g.nodes["hidden"].v_threshold.dtype
        (dtype('int8'), dtype('int16'))
        >>> nir_to_spec(g) == spec
        True
    """
    nir = _nir()
    from snnqat.devices.xylo import XyloLimits

    spec.check_structure()
    limits = XyloLimits() if limits is None else limits
    nin, nhid, nout, nsyn = spec.n_inputs, spec.n_hidden, spec.n_outputs, spec.n_synapses
    dt = float(spec.dt)
    hidden = dict(dash_mem=spec.dash_mem, dash_syn=spec.dash_syn, bias=spec.bias)
    hidden["threshold"] = spec.threshold
    readout = dict(dash_mem=spec.dash_mem_out, dash_syn=spec.dash_syn_out[:, None])
    readout.update(bias=spec.bias_out, threshold=spec.threshold_out)
    nodes: dict = {"input": nir.Input(input_type=np.array([nin]))}
    edges: list = []
    population = _xylo_population(nir, hidden, dt, limits, limits.max_hidden_spikes)
    nodes.update({f"hidden{k}": v for k, v in population.items()})
    entry = "hidden_syn" if nsyn > 1 else "hidden"
    if nsyn > 1:
        edges += [("hidden_syn", "hidden_sum"), ("hidden_sum", "hidden")]
    weights = _XyloWeights(nir, nodes, edges, limits.weight_bits)
    weights.add("in", "input", entry, spec.weights_in.reshape(nin, -1).T, spec.weight_shift_in)
    w_rec = spec.weights_rec.reshape(nhid, -1).T
    weights.add("rec", "hidden", entry, w_rec, spec.weight_shift_rec)
    nodes["delay_out"] = nir.Delay(delay=np.full(nhid, dt))
    edges.append(("hidden", "delay_out"))
    weights.add("out", "delay_out", "readout", spec.weights_out.T, spec.weight_shift_out)
    nodes["readout"] = _xylo_population(nir, readout, dt, limits, limits.max_output_spikes)[""]
    nodes["output"] = nir.Output(output_type=np.array([nout]))
    edges.append(("readout", "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=_xylo_metadata(spec, limits))


@dataclass
class _XyloWeights:
    """Adds ``weights_<which>`` (and ``scale_<which> = 2**shift`` if shifted) to a graph."""

    nir: Any
    nodes: dict
    edges: list
    bits: int

    def add(self, which: str, source: str, target: str, weight: np.ndarray, shift: int) -> None:
        name, scale = f"weights_{which}", f"scale_{which}"
        self.nodes[name] = self.nir.Linear(weight=_int_array(weight, self.bits))
        self.edges.append((source, name))
        if not shift:
            self.edges.append((name, target))
            return
        self.nodes[scale] = self.nir.Scale(scale=np.full(weight.shape[0], 2**shift, np.int64))
        self.edges += [(name, scale), (scale, target)]


def _xylo_metadata(spec: XyloSpec, limits: XyloLimits) -> dict:
    aliases = [[int(t) for t in a] for a in spec.aliases]
    meta = {
        _MODULE_KEY: "XyloSpec",
        "snnqat_format": FORMAT,
        "snnqat_format_version": FORMAT_VERSION,
        "dt": float(spec.dt),
        "weight_shift_in": int(spec.weight_shift_in),
        "weight_shift_rec": int(spec.weight_shift_rec),
        "weight_shift_out": int(spec.weight_shift_out),
        "alias_offsets": np.cumsum([0] + [len(a) for a in aliases]).astype(np.int64),
        "alias_targets": np.array([t for a in aliases for t in a], dtype=np.int64),
        "leak": "v -= v >> dash (arithmetic shift, floor; a step of at least 1 while v != 0)",
        "reset": "subtract",
        "saturation": "every state update saturates to [state_min, state_max]",
        "hop_delay_steps": 1,
        "max_dash": int(limits.max_dash),
        "max_input_spikes": int(limits.max_input_spikes),
        "max_hidden_spikes": int(limits.max_hidden_spikes),
        "max_output_spikes": int(limits.max_output_spikes),
        "weight_bits": int(limits.weight_bits),
        "state_bits": int(limits.state_bits),
        "threshold_bits": int(limits.threshold_bits),
        "state_min": int(limits.state_min),
        "state_max": int(limits.state_max),
    }
    return meta


def nir_to_spec(source: Any) -> XyloSpec:
    """Read a graph written by :func:`spec_to_nir` back into a :class:`XyloSpec`.

    Weights and thresholds come from the node arrays, dashes, biases, weight shifts,
    aliases and ``dt`` from the metadata. Arrays come back as ``int64``.

    Args:
        source: a :class:`nir.NIRGraph` or a path to a NIR file.

    Raises:
        ValueError: the graph was not written by :func:`spec_to_nir`, or holds non-integer
            values where integers are expected.

    Example:
        >>> import tempfile, pathlib, nir
        >>> from snnqat.devices.xylo import XyloSpec
        >>> spec = XyloSpec.zeros(2, 3, 1, n_synapses=2, aliases=[[2], [], []], dt=2e-3)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     path = pathlib.Path(d) / "spec.nir"
        ...     nir.write(path, spec_to_nir(spec))
        ...     nir_to_spec(path) == spec
        True
    """
    from snnqat.devices.xylo import XyloSpec

    graph = _load(source)
    meta = _meta(graph)
    if _text(meta.get(_MODULE_KEY, "")) != "XyloSpec":
        raise ValueError(
            "nir_to_spec: expected a graph written by spec_to_nir (metadata "
            f"{_MODULE_KEY}='XyloSpec'), got {meta.get(_MODULE_KEY)!r}. Use from_nir for "
            "float networks."
        )
    nodes = graph.nodes
    hid, out = _meta(nodes["hidden"]), _meta(nodes["readout"])
    dash_syn = _as_int("dash_syn", hid["dash_syn"])
    nhid, nsyn = dash_syn.shape
    w_in = _as_int("weights_in", nodes["weights_in"].weight)
    w_rec = _as_int("weights_rec", nodes["weights_rec"].weight)
    offsets = _as_int("alias_offsets", meta["alias_offsets"])
    targets = _as_int("alias_targets", meta["alias_targets"])
    return XyloSpec(
        weights_in=w_in.T.reshape(-1, nhid, nsyn),
        weights_rec=w_rec.T.reshape(nhid, nhid, nsyn),
        weights_out=_as_int("weights_out", nodes["weights_out"].weight).T,
        dash_mem=_as_int("dash_mem", hid["dash_mem"]),
        dash_syn=dash_syn,
        dash_mem_out=_as_int("dash_mem_out", out["dash_mem"]),
        dash_syn_out=_as_int("dash_syn_out", out["dash_syn"]).reshape(-1),
        threshold=_as_int("threshold", nodes["hidden"].v_threshold),
        threshold_out=_as_int("threshold_out", nodes["readout"].v_threshold),
        bias=_as_int("bias", hid["bias"]),
        bias_out=_as_int("bias_out", out["bias"]),
        weight_shift_in=int(meta["weight_shift_in"]),
        weight_shift_rec=int(meta["weight_shift_rec"]),
        weight_shift_out=int(meta["weight_shift_out"]),
        aliases=[targets[a:b].tolist() for a, b in zip(offsets[:-1], offsets[1:])],
        dt=float(meta["dt"]),
    )
