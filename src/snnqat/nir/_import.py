"""Import: NIR graphs -> snnqat networks (:func:`from_nir`)."""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from snnqat.nir._common import (
    _DISCRETIZATIONS,
    _MODULE_KEY,
    _SCALE_RTOL,
    _TAU_RTOL,
    SYNAPSE_PASS_DECAY,
    _decay_from_tau,
    _f64,
    _meta,
    _native_decay,
    _native_tau,
    _nir,
    _synapse_sum,
    _tau_from_decay,
    _tensor,
    _text,
    _unique_name,
)
from snnqat.nn.combinators import Sequential, TorchResidual
from snnqat.nn.combinators.sequential import evolve_child
from snnqat.nn.modules import ExpSynTorch, LIFTorch, LinearTorch, TorchModule
from snnqat.nn.modules.lif_torch import LEAK_MODES


# ---------------------------------------------------------------------------------- import
class _NotSeriesParallel(Exception):
    """The graph is not a chain with residual blocks; the caller falls back to an executor."""


@dataclass
class _Prepared:
    nodes: dict
    succ: dict
    pred: dict
    rec: dict
    input: str
    output: str


@dataclass
class _Scale:
    """A per-channel input map ``x -> s * x + c`` that an imported neuron needs in front."""

    s: np.ndarray
    c: np.ndarray | None = None

    def module(self) -> LinearTorch:
        n = self.s.shape[0]
        bias = None if self.c is None else _tensor(self.c)
        return LinearTorch((n, n), weight=_tensor(np.diag(self.s)), bias=bias)


def _make_scale(s: np.ndarray | None, c: np.ndarray | None) -> _Scale | None:
    if s is not None and np.allclose(s, 1.0, rtol=_SCALE_RTOL, atol=0.0):
        s = None
    if c is not None and not np.any(c):
        c = None
    if s is None and c is None:
        return None
    if s is None:
        s = np.ones(c.shape[0])
    return _Scale(s, c)


class _Importer:
    def __init__(self, nir: Any, dt: float, method: str) -> None:
        self.nir = nir
        self.dt = dt
        self.method = method

    # ------------------------------------------------------------------ graphs
    def graph(self, graph: Any, top: bool = False) -> tuple[Any, _Scale | None]:
        meta = _meta(graph)
        kind = _text(meta.get(_MODULE_KEY, ""))
        if kind == "XyloSpec":
            raise ValueError(
                "from_nir: this graph holds an integer XyloSpec (written by spec_to_nir); "
                "read it with snnqat.nir.nir_to_spec."
            )
        if kind == "LIFTorch" and any(isinstance(n, self.nir.LI) for n in graph.nodes.values()):
            return self.multi_synapse_lif(graph, meta)
        prep = self.prepare(graph)
        used: set = set()
        try:
            items = self.chain(prep, prep.input, prep.output, used)
            if used != set(prep.nodes) - {prep.input, prep.output}:
                raise _NotSeriesParallel
        except _NotSeriesParallel:
            return self.executor(prep), None
        return _build(items, kind, top)

    def prepare(self, graph: Any) -> _Prepared:
        nir = self.nir
        nodes = dict(graph.nodes)
        edges = list(dict.fromkeys((str(a), str(b)) for a, b in graph.edges))
        ins = [k for k, v in nodes.items() if isinstance(v, nir.Input)]
        outs = [k for k, v in nodes.items() if isinstance(v, nir.Output)]
        if len(ins) != 1 or len(outs) != 1:
            raise NotImplementedError(
                f"from_nir: expected a graph with one Input and one Output node, got inputs "
                f"{ins} and outputs {outs}."
            )
        rec = _recurrent_pairs(nir, nodes, edges)
        for lif, w in rec.items():
            edges.remove((lif, w))
            edges.remove((w, lif))
            del nodes[w]
        rec = {lif: graph.nodes[w] for lif, w in rec.items()}
        succ: dict = {k: [] for k in nodes}
        pred: dict = {k: [] for k in nodes}
        for a, b in edges:
            if a not in nodes or b not in nodes:
                raise ValueError(f"from_nir: edge ({a!r}, {b!r}) names a node that is missing.")
            succ[a].append(b)
            pred[b].append(a)
        _check_acyclic(nodes, succ)
        return _Prepared(nodes, succ, pred, rec, ins[0], outs[0])

    def chain(self, g: _Prepared, cur: str, join: str, used: set) -> list:
        """Modules mapping the output of ``cur`` to the input of ``join`` (one chain)."""
        items: list = []
        while True:
            succ = g.succ[cur]
            if succ == [join]:
                return items
            if len(succ) == 1 and g.pred[succ[0]] == [cur]:
                cur = succ[0]
                self.append(items, g, cur, used)
                continue
            if len(succ) == 2:
                joint, branch = _residual_split(g, cur, succ)
                if len(g.pred[branch]) != 1:
                    raise _NotSeriesParallel
                block: list = []
                self.append(block, g, branch, used)
                block += self.chain(g, branch, joint, used)
                items.append((f"residual_{branch}", ("residual", block)))
                if joint == join:
                    return items
                cur = joint
                self.append(items, g, cur, used)
                continue
            raise _NotSeriesParallel

    def append(self, items: list, g: _Prepared, name: str, used: set) -> None:
        if name in used:
            raise _NotSeriesParallel
        used.add(name)
        module, scale = self.node(name, g.nodes[name], g.rec.get(name))
        if scale is not None:
            prev = items[-1][1] if items else None
            if isinstance(prev, LinearTorch):
                items[-1] = (items[-1][0], _fold(prev, scale))
            else:
                items.append((f"{name}_input_scale", scale.module()))
        items.append((name, module))

    def executor(self, g: _Prepared) -> NIRGraphNetwork:
        order = [n for n in _topological(g.nodes, g.succ) if n not in (g.input, g.output)]
        taken, names, modules = {g.input}, {g.input: g.input}, {}
        for name in order:
            if not g.pred[name]:
                raise NotImplementedError(f"from_nir: node {name!r} has no input edge.")
            module, scale = self.node(name, g.nodes[name], g.rec.get(name))
            if scale is not None:
                module = Sequential(OrderedDict(input_scale=scale.module(), node=module))
            names[name] = _unique_name(name, taken)
            modules[names[name]] = module
        inputs = {names[n]: [names[p] for p in g.pred[n]] for n in order}
        size_in = int(np.prod(g.nodes[g.input].input_type["input"]))
        size_out = int(np.prod(g.nodes[g.output].output_type["output"]))
        outputs = [names[p] for p in g.pred[g.output]]
        return NIRGraphNetwork(modules, inputs, outputs, g.input, size_in, size_out)

    # ------------------------------------------------------------------ nodes
    def node(self, name: str, node: Any, w_rec: Any) -> tuple[Any, _Scale | None]:
        nir = self.nir
        if w_rec is not None and not isinstance(node, (nir.CubaLIF, nir.LIF)):
            raise NotImplementedError(f"from_nir: recurrent weights onto {name!r} are unsupported.")
        if isinstance(node, nir.NIRGraph):
            return self.graph(node)
        for cls, method in _NODE_IMPORTERS.items():
            if isinstance(node, getattr(nir, cls)):
                return getattr(self, method)(name, node, w_rec)
        raise NotImplementedError(
            f"from_nir: node {name!r} of type {type(node).__name__} has no snnqat mapping. "
            f"Supported: {sorted(_NODE_IMPORTERS)}, Input, Output and sub-graphs."
        )

    def linear(self, name: str, node: Any, w_rec: Any) -> tuple[Any, None]:
        weight = _f64(node.weight)
        if weight.ndim != 2:
            raise NotImplementedError(f"from_nir: {name!r} has a {weight.ndim}-D weight.")
        bias = _f64(node.bias) if hasattr(node, "bias") else None
        if _text(_meta(node).get(_MODULE_KEY, "")) == "torch.nn.Linear":
            lin = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
            with torch.no_grad():
                lin.weight.copy_(_tensor(weight))
                if bias is not None:
                    lin.bias.copy_(_tensor(bias))
            return lin, None
        shape = (weight.shape[1], weight.shape[0])
        b = None if bias is None else _tensor(np.broadcast_to(bias, (shape[1],)))
        return LinearTorch(shape, weight=_tensor(weight.T), bias=b), None

    def scale(self, name: str, node: Any, w_rec: Any) -> tuple[Any, None]:
        return _Scale(_f64(node.scale).reshape(-1)).module(), None

    def settings(self, meta: dict, kind: str) -> tuple[bool, float, str]:
        own = _text(meta.get(_MODULE_KEY, "")) == kind
        dt = float(meta["dt"]) if own and "dt" in meta else self.dt
        method = _text(meta.get("discretization", "zoh")) if own else self.method
        return own, dt, method

    def li(self, name: str, node: Any, w_rec: Any) -> tuple[Any, _Scale | None]:
        own, dt, method = self.settings(_meta(node), "ExpSynTorch")
        tau = _f64(node.tau).reshape(-1)
        n = tau.shape[0]
        beta = _decay_from_tau(tau, dt, method, f"from_nir: {name}.tau")
        native = self._exp_syn_tau(name, _meta(node), own, tau, beta, dt, method)
        syn = ExpSynTorch(n, tau=native, dt=dt)
        gain = (1.0 - beta) * _f64(node.r, (n,)) / beta
        offset = (1.0 - beta) * _f64(node.v_leak, (n,)) / beta
        return syn, _make_scale(gain, offset)

    def _exp_syn_tau(self, name, meta, own, tau, beta, dt, method) -> torch.Tensor:
        if own and "tau_param" in meta:
            native = _f64(meta["tau_param"])
            if np.allclose(np.broadcast_to(native, tau.shape), tau, rtol=_TAU_RTOL, atol=0):
                return _tensor(native)
        if np.any((beta <= 0) | (beta >= 1)):
            raise ValueError(f"from_nir: {name}: expected 0 < decay < 1, got {beta.tolist()}.")
        return _tensor(tau if method == "zoh" else _tau_from_decay(beta, dt, name))

    def cuba_li(self, name: str, node: Any, w_rec: Any) -> tuple[Any, _Scale | None]:
        tau_syn = _f64(node.tau_syn).reshape(-1)
        n = tau_syn.shape[0]
        syn, scale = self.li(name, _LI(tau_syn, _f64(node.w_in, (n,)), np.zeros(n)), None)
        tau_mem = _f64(node.tau_mem, (n,))
        alpha = _decay_from_tau(tau_mem, self.dt, self.method, f"from_nir: {name}.tau_mem")
        if np.any(alpha <= 0):
            raise ValueError(f"from_nir: {name}: tau_mem = 0 is not supported for CubaLI.")
        mem, _ = self.li(name, _LI(tau_mem, np.ones(n), np.zeros(n)), None)
        gain = (1.0 - alpha) * _f64(node.r, (n,)) / alpha
        offset = (1.0 - alpha) * _f64(node.v_leak, (n,)) / alpha
        mid = _Scale(gain, offset if np.any(offset) else None).module()
        return Sequential(OrderedDict(syn=syn, mem_input=mid, mem=mem)), scale

    def cuba_lif(self, name: str, node: Any, w_rec: Any) -> tuple[Any, _Scale | None]:
        n = np.size(node.v_threshold)
        parts = _LIFParts(
            tau_mem=_f64(node.tau_mem, (n,)),
            r=_f64(node.r, (n,)),
            v_leak=_f64(node.v_leak, (n,)),
            v_threshold=_f64(node.v_threshold, (n,)),
            tau_syn=_f64(node.tau_syn, (n,))[:, None],
            w_in=_f64(node.w_in, (n,))[:, None],
        )
        return self.lif_from_parts(name, parts, _meta(node), w_rec)

    def lif(self, name: str, node: Any, w_rec: Any) -> tuple[Any, _Scale | None]:
        n = np.size(node.v_threshold)
        parts = _LIFParts(
            tau_mem=_f64(node.tau, (n,)),
            r=_f64(node.r, (n,)),
            v_leak=_f64(node.v_leak, (n,)),
            v_threshold=_f64(node.v_threshold, (n,)),
        )
        return self.lif_from_parts(name, parts, _meta(node), w_rec)

    def multi_synapse_lif(self, graph: Any, meta: dict) -> tuple[Any, _Scale | None]:
        nodes = graph.nodes
        missing = [k for k in ("syn", "sum", "lif") if k not in nodes]
        if missing:
            raise ValueError(f"from_nir: multi-synapse LIFTorch sub-graph lacks nodes {missing}.")
        lif, syn = nodes["lif"], nodes["syn"]
        n = np.size(lif.v_threshold)
        k = np.size(syn.tau) // n
        if not np.array_equal(_f64(nodes["sum"].weight), _synapse_sum(n, k)) or np.any(
            _f64(syn.v_leak)
        ):
            raise ValueError(
                "from_nir: a multi-synapse LIFTorch sub-graph no longer has snnqat's form "
                "(synapse sum of ones, v_leak = 0 on the synapses); it cannot be imported."
            )
        parts = _LIFParts(
            tau_mem=_f64(lif.tau, (n,)),
            r=_f64(lif.r, (n,)),
            v_leak=_f64(lif.v_leak, (n,)),
            v_threshold=_f64(lif.v_threshold, (n,)),
            tau_syn=_f64(syn.tau).reshape(n, k),
            w_in=_f64(syn.r).reshape(n, k),
        )
        w_rec = nodes.get("w_rec")
        return self.lif_from_parts("lif", parts, {**meta, **_meta(lif)}, w_rec)

    def lif_from_parts(
        self, name: str, p: _LIFParts, meta: dict, w_rec: Any
    ) -> tuple[LIFTorch, _Scale | None]:
        own, dt, method = self.settings(meta, "LIFTorch")
        n = p.v_threshold.shape[0]
        alpha = _decay_from_tau(p.tau_mem, dt, method, f"from_nir: {name}.tau_mem")
        if p.tau_syn is None:
            beta, c_syn = np.full((n, 1), SYNAPSE_PASS_DECAY), np.ones((n, 1))
        else:
            beta = _decay_from_tau(p.tau_syn, dt, method, f"from_nir: {name}.tau_syn")
            c_syn = (1.0 - beta) * p.w_in
        leak = _own_leak(meta, p, dt) if own else None
        if leak is None:
            leak = _foreign_leak(name, p, alpha, beta, dt, method)
        else:
            alpha, beta = leak.alpha, leak.beta
        k = beta.shape[1]
        c_mem = (1.0 - alpha) * p.r
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(beta > 0, c_mem[:, None] * c_syn / np.where(beta > 0, beta, 1), 1.0)
        if np.any((beta == 0) & (c_syn != 0)):
            raise ValueError(
                f"from_nir: {name}: a synapse with tau_syn = 0 and non-zero gain cannot be "
                "expressed by LIFTorch (its synapse decays after the input is added)."
            )
        s = s.reshape(-1)
        if np.allclose(s, 1.0, rtol=_SCALE_RTOL, atol=0.0):
            s = np.ones_like(s)  # snnqat's own convention: no input scaling
        kwargs = dict(leak.kwargs)
        scalars = _text(meta.get("scalar_params", "")).split(",") if own else []
        kwargs["bias"] = _maybe_scalar((1.0 - alpha) * p.v_leak, "bias" in scalars)
        kwargs["threshold"] = _maybe_scalar(p.v_threshold, "threshold" in scalars)
        if own:
            kwargs["max_spikes_per_dt"] = float(meta.get("max_spikes_per_dt", 2.0**16))
            kwargs["spike_generation_fn"] = _text(meta.get("surrogate", "step_pwl"))
            kwargs["learning_window"] = float(meta.get("learning_window", 0.5))
        else:
            kwargs["max_spikes_per_dt"] = 1.0  # NIR neurons emit at most one spike per step
        offset = None
        if w_rec is not None:
            weight = _f64(w_rec.weight)  # (Nin, Nout) in NIR orientation
            kwargs["has_rec"] = True
            kwargs["w_rec"] = _tensor(weight.T * s[None, :])
            if hasattr(w_rec, "bias"):
                offset = _f64(w_rec.bias, (n * k,)) * s
        shape = n if k == 1 else (n * k, n)
        return LIFTorch(shape, dt=dt, **kwargs), _make_scale(s, offset)


@dataclass
class _LI:
    tau: np.ndarray
    r: np.ndarray
    v_leak: np.ndarray
    metadata: dict = field(default_factory=dict)


@dataclass
class _LIFParts:
    tau_mem: np.ndarray
    r: np.ndarray
    v_leak: np.ndarray
    v_threshold: np.ndarray
    tau_syn: np.ndarray | None = None
    w_in: np.ndarray | None = None


@dataclass
class _Leak:
    kwargs: dict
    alpha: np.ndarray
    beta: np.ndarray


def _own_leak(meta: dict, p: _LIFParts, dt: float) -> _Leak | None:
    """The native leak parameters recorded by :func:`to_nir`, if they still match the node."""
    mode = _text(meta.get("leak_mode", ""))
    if mode not in LEAK_MODES or "leak_mem" not in meta or "leak_syn" not in meta:
        return None
    n = p.v_threshold.shape[0]
    mem, syn = _f64(meta["leak_mem"]), _f64(meta["leak_syn"])
    k = int(meta.get("n_synapses", 1))
    try:
        tau_mem = _f64(_native_tau(mode, mem, dt, "leak_mem"), (n,))
        tau_syn = _f64(_native_tau(mode, syn, dt, "leak_syn"), (n, k))
    except ValueError:
        return None
    same_mem = np.allclose(tau_mem, p.tau_mem, rtol=_TAU_RTOL, atol=0)
    same_syn = p.tau_syn is not None and p.tau_syn.shape == (n, k)
    same_syn = same_syn and np.allclose(tau_syn, p.tau_syn, rtol=_TAU_RTOL, atol=0)
    if not (same_mem and same_syn):
        return None
    names = LEAK_MODES[mode]
    kwargs = {"leak_mode": mode, names[0]: _tensor(meta["leak_mem"])}
    kwargs[names[1]] = _tensor(meta["leak_syn"])
    alpha = _f64(_native_decay(mode, mem, dt), (n,))
    beta = _f64(_native_decay(mode, syn, dt), (n, k))
    return _Leak(kwargs, alpha, beta)


def _foreign_leak(name, p, alpha, beta, dt, method) -> _Leak:
    if p.tau_syn is not None and method == "zoh" and np.all(p.tau_mem > 0):
        if np.all(p.tau_syn > 0):
            kwargs = {"leak_mode": "taus", "tau_mem": _tensor(p.tau_mem)}
            kwargs["tau_syn"] = _tensor(p.tau_syn)
            return _Leak(kwargs, alpha, beta)
    for what, d in (("membrane", alpha), ("synaptic", beta)):
        if np.any((d <= 0) | (d >= 1)):
            raise ValueError(
                f"from_nir: {name}: {what} decay factors must lie in (0, 1) for LIFTorch, got "
                f"{d.tolist()} (check tau and dt = {dt})."
            )
    kwargs = {"leak_mode": "decays", "alpha": _tensor(alpha), "beta": _tensor(beta)}
    return _Leak(kwargs, alpha, beta)


def _maybe_scalar(values: np.ndarray, scalar: bool) -> torch.Tensor:
    """A tensor of ``values``; 0-d when it was a scalar parameter and all values agree."""
    tensor = _tensor(values)
    if scalar and tensor.numel() and bool((tensor == tensor.flatten()[0]).all()):
        return tensor.flatten()[0].clone()
    return tensor


def _fold(lin: LinearTorch, scale: _Scale) -> LinearTorch:
    """``x -> s * (x @ W + b) + c`` as one ``LinearTorch`` (a freshly imported one)."""
    weight = _f64(lin.weight) * scale.s[None, :]
    bias = None if lin.bias is None else _f64(lin.bias) * scale.s
    if scale.c is not None:
        bias = scale.c if bias is None else bias + scale.c
    b = None if bias is None else _tensor(bias)
    return LinearTorch(tuple(lin.shape), weight=_tensor(weight), bias=b)


_NODE_IMPORTERS = {
    "Affine": "linear",
    "Linear": "linear",
    "Scale": "scale",
    "CubaLIF": "cuba_lif",
    "LIF": "lif",
    "CubaLI": "cuba_li",
    "LI": "li",
}


def _recurrent_pairs(nir: Any, nodes: dict, edges: list) -> dict:
    """``{neuron: weight}`` for 2-cycles neuron -> Linear/Affine -> neuron (recurrence)."""
    pairs = {}
    for a, b in edges:
        if (b, a) not in edges or a not in nodes or b not in nodes:
            continue
        if not isinstance(nodes[a], (nir.CubaLIF, nir.LIF)):
            continue
        if not isinstance(nodes[b], (nir.Linear, nir.Affine)):
            continue
        if {e for e in edges if b in e} == {(a, b), (b, a)}:
            pairs[a] = b
    return pairs


def _check_acyclic(nodes: dict, succ: dict) -> None:
    order = _topological(nodes, succ)
    if len(order) != len(nodes):
        cyclic = sorted(set(nodes) - set(order))
        raise NotImplementedError(
            f"from_nir: the graph has a cycle through {cyclic} that is not a recurrent LIF "
            "(neuron -> Linear/Affine -> same neuron); such graphs cannot be imported."
        )


def _topological(nodes: dict, succ: dict) -> list:
    indegree = {k: 0 for k in nodes}
    for a in nodes:
        for b in succ[a]:
            indegree[b] += 1
    ready = [k for k in nodes if indegree[k] == 0]
    order = []
    while ready:
        k = ready.pop(0)
        order.append(k)
        for b in succ[k]:
            indegree[b] -= 1
            if indegree[b] == 0:
                ready.append(b)
    return order


def _reaches(g: _Prepared, start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        k = todo.pop()
        if k == goal:
            return True
        if k not in seen:
            seen.add(k)
            todo.extend(g.succ[k])
    return False


def _residual_split(g: _Prepared, cur: str, succ: list) -> tuple[str, str]:
    """``(join, branch)`` when ``cur`` feeds ``branch -> ... -> join`` and ``join`` directly."""
    for joint, branch in ((succ[0], succ[1]), (succ[1], succ[0])):
        preds = g.pred[joint]
        if len(preds) == 2 and cur in preds and _reaches(g, branch, joint):
            return joint, branch
    raise _NotSeriesParallel


def _build(items: list, kind: str, top: bool) -> tuple[Any, None]:
    """Turn parsed items into modules: ``Sequential``, ``Residual`` or a single module."""
    if not items:
        raise ValueError("from_nir: the graph connects its input directly to its output.")
    mods = _named_modules(items)
    if kind == "TorchResidual" and len(items) == 1 and isinstance(items[0][1], tuple):
        return TorchResidual(_named_modules(items[0][1][1])), None
    if kind == "TorchSequential" or (top and not kind) or len(mods) != 1:
        return Sequential(mods), None
    return next(iter(mods.values())), None


def _named_modules(items: list) -> OrderedDict:
    taken: set = set()
    out: OrderedDict = OrderedDict()
    for name, obj in items:
        if isinstance(obj, tuple):
            obj = TorchResidual(_named_modules(obj[1]))
        out[_unique_name(name, taken)] = obj
    return out


class NIRGraphNetwork(TorchModule):
    """A network imported from a NIR graph that is not a chain with residual blocks.

    Nodes run in topological order, each on the sum of its predecessors' outputs over the
    whole sequence (NIR sums the edges that enter a node). Cycles other than a recurrent LIF
    are refused at import, so no node waits for a later one.

    Args:
        modules: ``{name: module}`` in topological order.
        inputs: ``{name: [predecessor names]}``; the graph input is ``input_name``.
        outputs: the nodes whose sum is the network output.
        input_name: the name of the graph's input.
        size_in: input channels.
        size_out: output channels.

    Calls return ``(output, state, record)`` like ``Sequential``: the record holds each
    node's record and its output under ``'<name>_output'``.
    """

    def __init__(
        self,
        modules: dict,
        inputs: dict,
        outputs: list,
        input_name: str,
        size_in: int,
        size_out: int,
    ) -> None:
        super().__init__(shape=(size_in, size_out))
        self._node_inputs = {k: list(v) for k, v in inputs.items()}
        self._graph_outputs = list(outputs)
        self._input_name = input_name
        for name, module in modules.items():
            setattr(self, name, module)

    def evolve(self, input_data: Any, record: bool = False) -> tuple:
        """Run the nodes in order; returns ``(output, state, record)``."""
        data, _ = self._auto_batch(input_data)
        values = {self._input_name: data}
        state, rec = self._make_tree(), {}
        for name, module in self._modules.items():
            out, s, r = evolve_child(module, _sum(values, self._node_inputs[name]), record)
            values[name], state[name], rec[name] = out, s, r
            rec[f"{name}_output"] = out
        return _sum(values, self._graph_outputs), state, rec

    def forward(self, input_data: Any) -> torch.Tensor:
        """The torch API: the output only."""
        return self.evolve(input_data, record=self._record)[0]


def _sum(values: dict, names: list) -> torch.Tensor:
    total = values[names[0]]
    for name in names[1:]:
        total = total + values[name]
    return total


def _load(source: Any) -> Any:
    nir = _nir()
    if isinstance(source, (str, os.PathLike)):
        return nir.read(os.fspath(source))
    if not isinstance(source, nir.NIRGraph):
        raise TypeError(
            f"expected a nir.NIRGraph, a str or a pathlib.Path, got {type(source).__name__}."
        )
    return source


def from_nir(source: Any, *, dt: float | None = None, discretization: str = "zoh") -> TorchModule:
    """Build an snnqat network from a NIR graph or a NIR file.

    Graphs written by :func:`to_nir` come back exactly (same structure, names, parameters,
    ``dt`` and neuron settings). Other graphs are read with the mapping of ``docs/nir.md``:
    a chain becomes a ``Sequential``, the pattern ``x -> block -> join`` plus ``x -> join``
    a ``Residual``, a ``CubaLIF``/``LIF`` with a ``Linear``/``Affine`` feedback loop a
    recurrent ``LIFTorch``; other acyclic graphs become a :class:`NIRGraphNetwork`.

    NIR neurons emit at most one spike per step, so imported foreign neurons get
    ``max_spikes_per_dt = 1``. snnqat resets by subtracting the threshold (NIR: to
    ``v_reset``) and fires at ``v >= v_threshold`` (NIR: ``v > v_threshold``).

    Args:
        source: a :class:`nir.NIRGraph`, or a path (``str`` or ``os.PathLike``) to a file
            written by :func:`nir.write`.
        dt: time step in seconds for nodes without snnqat metadata (graphs from other
            tools). Default: the graph's ``dt`` metadata if present, else 1e-3. snnTorch's
            exporter assumes 1e-4.
        discretization: how nodes without snnqat metadata are discretised: ``"zoh"``
            (``decay = exp(-dt/tau)``) or ``"euler"`` (``decay = 1 - dt/tau``, the reading
            of snnTorch and Norse).

    Returns:
        A ``Sequential`` for foreign graphs; for graphs from :func:`to_nir`, the exported
        module type (``Sequential``, ``Residual`` or a single module).

    Raises:
        NotImplementedError: nodes or structures without an snnqat mapping (naming them).
        ValueError: parameters outside what snnqat modules accept (e.g. a non-positive
            threshold) or a graph written by :func:`spec_to_nir`.
        TypeError: ``source`` has an unsupported type.
        ImportError: the ``nir`` package is missing (``pip install snnqat[nir]``).

    Example:
        >>> import nir, numpy as np
        >>> g = nir.NIRGraph.from_list(
        ...     nir.Linear(weight=np.ones((2, 3))),
        ...     nir.LIF(tau=np.full(2, 1e-3), r=np.full(2, 10.0), v_leak=np.zeros(2),
        ...             v_threshold=np.ones(2)),
        ... )
        >>> from_nir(g, dt=1e-4, discretization="euler")
        TorchSequential  with shape (3, 2) {
            LinearTorch 'linear' with shape (3, 2)
            LIFTorch 'lif' with shape (2, 2)
        }
    """
    if discretization not in _DISCRETIZATIONS:
        raise ValueError(
            f"discretization: expected one of {list(_DISCRETIZATIONS)}, got {discretization!r}."
        )
    graph = _load(source)
    if dt is None:
        dt = float(_meta(graph).get("dt", 1e-3))
    if not isinstance(dt, (int, float)) or not dt > 0:
        raise ValueError(f"dt: expected a number of seconds > 0, got {dt!r}.")
    module, _ = _Importer(_nir(), float(dt), discretization).graph(graph, top=True)
    return module
