r"""Export and import snnqat networks as NIR graphs (Neuromorphic Intermediate Representation).

* :func:`to_nir` turns a float network (``Sequential``/``Residual`` of ``LinearTorch``,
  ``LIFTorch``, ``ExpSynTorch`` and plain ``torch.nn.Linear``, also patched with
  ``TWrapper``) into a :class:`nir.NIRGraph`;
* :func:`from_nir` turns a graph (or a file written with :func:`nir.write`) back into an
  snnqat network: exactly for graphs written by :func:`to_nir`, and by the documented
  mapping for graphs from other tools (e.g. snnTorch);
* :func:`spec_to_nir` / :func:`nir_to_spec` carry an integer
  :class:`~snnqat.devices.xylo.XyloSpec` through NIR with integer arrays.

NIR neurons are continuous-time ODEs. snnqat reads them in discrete time with step ``dt``
and the input held over the step ("zoh")::

    tau * dx/dt = (v_leak - x) + g * u    ->    x_t = d * x_{t-1} + (1 - d) * (v_leak + g * u_t)

with ``d = exp(-dt / tau)`` (``discretization="zoh"``, snnqat's own convention) or
``d = 1 - dt / tau`` (``"euler"``, what snnTorch and Norse use). A ``LIFTorch`` with decays
``alpha`` (membrane) and ``beta`` (synapse) becomes ``CubaLIF(tau_mem, tau_syn,
r = 1/(1-alpha), w_in = beta/(1-beta), v_leak = bias/(1-alpha), v_threshold)``, which the
zoh reading maps back exactly onto ``isyn_t = beta (isyn + x_t)``,
``v_t = alpha v + isyn_t + bias``. Facts NIR cannot express (``dt``, leak mode, subtractive
reset, multi-spike counts, surrogate) travel in node metadata; ``docs/nir.md`` documents the
whole convention.

Example:
    >>> import torch
    >>> from snnqat.nn.modules import LinearTorch, LIFTorch
    >>> from snnqat.nn.combinators import Sequential
    >>> net = Sequential(LinearTorch((2, 3)), LIFTorch(3, bias=0.1, dt=5e-4))
    >>> graph = to_nir(net)
    >>> sorted(graph.nodes)
    ['0_LinearTorch', '1_LIFTorch', 'input', 'output']
    >>> lif = graph.nodes["1_LIFTorch"]
    >>> type(lif).__name__, float(lif.metadata["dt"])
    ('CubaLIF', 0.0005)
    >>> copy = from_nir(graph)
    >>> x = (torch.rand(1, 50, 2) < 0.3).float() * 3
    >>> torch.equal(net(x)[0], copy(x)[0])
    True
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from snnqat.nn.combinators import Sequential, TorchResidual, TorchSequential
from snnqat.nn.combinators.sequential import evolve_child
from snnqat.nn.modules import ExpSynTorch, LIFTorch, LinearTorch, TorchModule
from snnqat.nn.modules.lif_torch import LEAK_MODES, THRESHOLD_MIN
from snnqat.transform._wrappers import ActWrapper, TWrapper, _identity, _raw_attr, is_wrapper

if TYPE_CHECKING:  # pragma: no cover
    import nir as nir_types

    from snnqat.devices.xylo import XyloLimits, XyloSpec

__all__ = [
    "to_nir",
    "from_nir",
    "spec_to_nir",
    "nir_to_spec",
    "NIRGraphNetwork",
    "FORMAT",
    "FORMAT_VERSION",
]

FORMAT = "snnqat.nir"
"""Value of the ``snnqat_format`` metadata entry of graphs written by this module."""

FORMAT_VERSION = 1
"""Version of snnqat's NIR convention (``snnqat_format_version`` metadata entry)."""

SYNAPSE_PASS_DECAY = 2.0**-30
"""Synaptic decay used to import a NIR ``LIF`` (no synaptic filter) as a ``LIFTorch``.

The input is scaled by ``2**30`` (an exact power of two), so the synapse passes each step's
input on within that step and keeps a residue of ``2**-30`` (about 1e-9) of it one step later.
"""

_DISCRETIZATIONS = ("zoh", "euler")
_MODULE_KEY = "snnqat_module"
_SCALE_RTOL = 1e-9
_TAU_RTOL = 1e-9


# ---------------------------------------------------------------------------------- helpers
def _nir() -> Any:
    """Import the ``nir`` package lazily, with an install hint when it is missing."""
    try:
        import nir
    except ImportError as error:
        raise ImportError(
            "snnqat.nir needs the `nir` package (Neuromorphic Intermediate Representation). "
            "Install it with `pip install snnqat[nir]` (or `pip install nir`)."
        ) from error
    return nir


def _np(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _f64(value: Any, shape: tuple | None = None) -> np.ndarray:
    out = np.asarray(_np(value), dtype=np.float64)
    return np.array(np.broadcast_to(out, shape)) if shape is not None else out


def _tensor(value: Any) -> torch.Tensor:
    return torch.tensor(np.array(value, dtype=np.float64), dtype=torch.get_default_dtype())


def _meta_array(value: Any) -> Any:
    """A metadata value ``nir.write`` can store: 0-d arrays become Python scalars."""
    array = _np(value)
    return array.item() if array.ndim == 0 else array.copy()


def _meta(node: Any) -> dict:
    meta = getattr(node, "metadata", None)
    return dict(meta) if isinstance(meta, dict) else {}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decay_from_tau(tau: Any, dt: float, method: str, what: str) -> np.ndarray:
    """Per-step decay of a time constant: ``exp(-dt/tau)`` (zoh) or ``1 - dt/tau`` (euler)."""
    tau = _f64(tau)
    if not np.all(np.isfinite(tau)) or np.any(tau < 0):
        raise ValueError(f"{what}: expected finite time constants >= 0, got {tau.tolist()}.")
    with np.errstate(divide="ignore"):
        decay = np.exp(-dt / tau) if method == "zoh" else 1.0 - dt / tau
    if np.any(decay < 0):
        raise ValueError(
            f"{what}: forward-Euler decay 1 - dt/tau is negative for tau < dt "
            f"(dt = {dt}, tau = {tau.tolist()}). Use discretization='zoh' or a smaller dt."
        )
    return decay


def _tau_from_decay(decay: np.ndarray, dt: float, what: str) -> np.ndarray:
    """The time constant with ``exp(-dt/tau) == decay``; a decay of 0 gives ``tau = 0``."""
    if not np.all(np.isfinite(decay)) or np.any((decay < 0) | (decay >= 1)):
        raise ValueError(
            f"{what}: expected per-step decay factors in [0, 1) (a decay of 1, i.e. no leak, "
            f"has no finite NIR time constant), got {decay.tolist()}."
        )
    safe = np.where(decay > 0, decay, 0.5)
    return np.where(decay > 0, -dt / np.log(safe), 0.0)


def _native_decay(mode: str, value: np.ndarray, dt: float) -> np.ndarray:
    """Float64 decay factor of a native leak parameter of ``leak_mode``."""
    value = _f64(value)
    if mode == "taus":
        return np.exp(-dt / value)
    if mode == "decays":
        return value
    return 1.0 - np.power(2.0, -value)


def _native_tau(mode: str, value: np.ndarray, dt: float, what: str) -> np.ndarray:
    if mode == "taus":
        return _f64(value)
    return _tau_from_decay(_native_decay(mode, value, dt), dt, what)


def _unique_name(name: str, taken: set) -> str:
    name = name.replace(".", "_").replace("/", "_") or "node"
    candidate, i = name, 0
    while candidate in taken:
        i += 1
        candidate = f"{name}_{i}"
    taken.add(candidate)
    return candidate


# ---------------------------------------------------------------------------------- export
@dataclass
class _Resolved:
    """A module with wrappers peeled off: the leaf, its effective tensors, extra metadata."""

    leaf: Any
    values: dict
    meta: dict = field(default_factory=dict)


def _resolve(mod: Any, path: str, ignore_activity_transforms: bool) -> _Resolved:
    """Peel ``TWrapper``/``ActWrapper`` layers; compute transformed tensors as forward does.

    The outermost ``TWrapper`` evaluates ``_T()`` on the raw parameters; an inner one applies
    its transforms on top (in a forward pass the outer wrapper's values are what the inner
    wrapper reads). Stochastic transforms are therefore sampled once, here.
    """
    chain = []
    while is_wrapper(mod):
        chain.append(mod)
        mod = mod._mod
    values: dict = {}
    meta: dict = {}
    for wrapper in chain:
        if isinstance(wrapper, ActWrapper):
            _check_activity(wrapper, path, ignore_activity_transforms, meta)
        elif isinstance(wrapper, TWrapper):
            with torch.no_grad():
                values.update(_apply_T(wrapper, mod, values))
            names = set(meta.get("transformed", "").split(",")) | set(wrapper._T_config)
            meta["transformed"] = ",".join(sorted(names - {""}))
    raw = {k: v for k, v in mod._parameters.items() if v is not None}
    raw.update({k: v for k, v in mod._buffers.items() if v is not None})
    raw.update(values)
    return _Resolved(mod, {k: v.detach().cpu() for k, v in raw.items()}, meta)


def _apply_T(wrapper: TWrapper, leaf: Any, current: dict) -> dict:  # noqa: N802
    if not current:
        return wrapper._T()
    out = {}
    for name, fn in wrapper._T_config.items():
        value = current.get(name, _raw_attr(leaf, name))
        out[name] = fn(value) if fn is not None else value
    return out


def _check_activity(wrapper: ActWrapper, path: str, ignore: bool, meta: dict) -> None:
    fn = wrapper._trans_Fn
    if fn is _identity:
        return
    if not ignore:
        raise NotImplementedError(
            f"to_nir: '{path}' is wrapped in an ActWrapper with the activity transform {fn!r}, "
            "which NIR cannot express. Remove it (remove_T_net) or pass "
            "ignore_activity_transforms=True to export the module without it."
        )
    meta["activity_transform_ignored"] = repr(fn)


class _Exporter:
    def __init__(self, nir: Any, ignore_activity_transforms: bool) -> None:
        self.nir = nir
        self.ignore_act = ignore_activity_transforms
        self.dts: set[float] = set()

    def node(self, mod: Any, path: str) -> Any:
        res = _resolve(mod, path, self.ignore_act)
        for cls in type(res.leaf).__mro__:
            handler = _EXPORTERS.get(cls)
            if handler is not None:
                node = handler(self, res, path)
                node.metadata.update(res.meta)
                return node
        raise NotImplementedError(
            f"to_nir: '{path}' ({type(res.leaf).__name__}) has no NIR mapping. Supported: "
            "Sequential, Residual, LinearTorch, LIFTorch, ExpSynTorch, torch.nn.Linear "
            "(also inside TWrapper)."
        )

    def graph(self, items: list, size_in: int, size_out: int, skip: bool, meta: dict) -> Any:
        nir = self.nir
        taken = {name for name, _ in items}
        inp, out = _unique_name("input", set(taken)), _unique_name("output", set(taken))
        nodes = {inp: nir.Input(input_type=np.array([size_in]))}
        nodes.update(items)
        nodes[out] = nir.Output(output_type=np.array([size_out]))
        names = list(nodes)
        edges = list(zip(names[:-1], names[1:]))
        if skip:
            edges.append((inp, out))
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def _export_sequential(ex: _Exporter, res: _Resolved, path: str) -> Any:
    seq = res.leaf
    if getattr(seq, "alias", False):
        raise NotImplementedError(
            f"to_nir: '{path}' is a residual block in hardware-faithful alias mode. Export the "
            "network's XyloSpec with spec_to_nir, or export the float network."
        )
    if len(seq) == 0:
        raise ValueError(f"to_nir: '{path}' is an empty Sequential; nothing to export.")
    items = [(name, ex.node(m, f"{path}.{name}")) for name, m in seq._modules.items()]
    meta = {_MODULE_KEY: type(seq).__name__}
    return ex.graph(items, seq.size_in, seq.size_out, isinstance(seq, TorchResidual), meta)


def _check_float(mod: Any, path: str) -> None:
    if getattr(mod, "hardware", None) is not None:
        raise NotImplementedError(
            f"to_nir: '{path}' runs hardware (integer) semantics. Export the network's "
            "XyloSpec with spec_to_nir instead, or export the float network."
        )


def _export_linear(ex: _Exporter, res: _Resolved, path: str) -> Any:
    _check_float(res.leaf, path)
    weight = _np(res.values["weight"]).T.copy()  # snnqat (Nin, Nout) -> NIR (out, in)
    meta = {_MODULE_KEY: "LinearTorch"}
    if res.leaf.bias is None:
        return ex.nir.Linear(weight=weight, metadata=meta)
    bias = np.array(np.broadcast_to(_np(res.values["bias"]), (weight.shape[0],)))
    return ex.nir.Affine(weight=weight, bias=bias, metadata=meta)


def _export_torch_linear(ex: _Exporter, res: _Resolved, path: str) -> Any:
    weight = _np(res.values["weight"]).copy()
    meta = {_MODULE_KEY: "torch.nn.Linear"}
    if res.values.get("bias") is None:
        return ex.nir.Linear(weight=weight, metadata=meta)
    return ex.nir.Affine(weight=weight, bias=_np(res.values["bias"]).copy(), metadata=meta)


def _export_exp_syn(ex: _Exporter, res: _Resolved, path: str) -> Any:
    n, dt = res.leaf.size_out, float(res.leaf.dt)
    tau = _f64(res.values["tau"], (n,))
    beta = np.exp(-dt / tau)
    _tau_from_decay(beta, dt, f"to_nir: {path}.tau")
    ex.dts.add(dt)
    meta = {_MODULE_KEY: "ExpSynTorch", "dt": dt, "discretization": "zoh"}
    meta["tau_param"] = _meta_array(res.values["tau"])
    return ex.nir.LI(tau=tau, r=beta / (1.0 - beta), v_leak=np.zeros(n), metadata=meta)


def _lif_metadata(mod: LIFTorch, res: _Resolved, dt: float) -> dict:
    mem, syn = LEAK_MODES[mod.leak_mode]
    scalars = [k for k in ("bias", "threshold") if res.values[k].dim() == 0]
    return {
        _MODULE_KEY: "LIFTorch",
        "dt": dt,
        "discretization": "zoh",
        "leak_mode": str(mod.leak_mode),
        "leak_mem": _meta_array(res.values[mem]),
        "leak_syn": _meta_array(res.values[syn]),
        "n_synapses": int(mod.n_synapses),
        "reset": "subtract",
        "spike_rule": "multi",
        "max_spikes_per_dt": float(mod.max_spikes_per_dt),
        "surrogate": str(mod._surrogate),
        "learning_window": float(mod.learning_window),
        "scalar_params": ",".join(scalars),
    }


def _export_lif(ex: _Exporter, res: _Resolved, path: str) -> Any:
    mod = res.leaf
    _check_float(mod, path)
    if float(mod.noise_std) > 0:
        raise NotImplementedError(
            f"to_nir: '{path}' has membrane noise (noise_std={float(mod.noise_std)}), which NIR "
            "cannot express. Set noise_std = 0.0 on the module before exporting."
        )
    n, k, dt, mode = mod.size_out, mod.n_synapses, float(mod.dt), mod.leak_mode
    mem, syn = LEAK_MODES[mode]
    alpha = _f64(_native_decay(mode, res.values[mem], dt), (n,))
    beta = _f64(_native_decay(mode, res.values[syn], dt), (n, k))
    tau_mem = _f64(_native_tau(mode, res.values[mem], dt, f"to_nir: {path}.{mem}"), (n,))
    tau_syn = _f64(_native_tau(mode, res.values[syn], dt, f"to_nir: {path}.{syn}"), (n, k))
    threshold = np.array(
        np.broadcast_to(_np(res.values["threshold"].clamp(min=THRESHOLD_MIN)), (n,))
    )
    bias = _f64(res.values["bias"], (n,))
    ex.dts.add(dt)
    meta = _lif_metadata(mod, res, dt)
    cuba = dict(tau_mem=tau_mem, r=1.0 / (1.0 - alpha), v_leak=bias / (1.0 - alpha))
    cuba.update(v_threshold=threshold, v_reset=np.zeros_like(threshold))
    w_in = beta / (1.0 - beta)
    w_rec = _np(res.values["w_rec"]).T.copy() if mod._has_rec else None  # (Nin, Nout) in NIR
    nir = ex.nir
    if k == 1:
        neuron = nir.CubaLIF(tau_syn=tau_syn[:, 0], w_in=w_in[:, 0], metadata=dict(meta), **cuba)
        if w_rec is None:
            return neuron
        return _recurrent_graph(nir, {"lif": neuron}, "lif", "lif", w_rec, n, meta)
    cuba["tau"] = cuba.pop("tau_mem")
    nodes = {
        "syn": nir.LI(tau=tau_syn.reshape(-1), r=w_in.reshape(-1), v_leak=np.zeros(n * k)),
        "sum": nir.Linear(weight=_synapse_sum(n, k)),
        "lif": nir.LIF(metadata=dict(meta), **cuba),
    }
    return _recurrent_graph(nir, nodes, "syn", "lif", w_rec, n * k, meta, n_out=n)


def _synapse_sum(n: int, k: int, dtype: Any = np.float32) -> np.ndarray:
    """``(N, N*k)`` ones: neuron ``i`` sums its synapses ``i*k .. i*k + k - 1``."""
    return np.kron(np.eye(n, dtype=dtype), np.ones((1, k), dtype=dtype))


def _recurrent_graph(
    nir: Any,
    core: dict,
    first: str,
    last: str,
    w_rec: np.ndarray | None,
    n_in: int,
    meta: dict,
    n_out: int | None = None,
) -> Any:
    """``input -> first -> ... -> last -> output`` plus ``last -> w_rec -> first``."""
    nodes = {"input": nir.Input(input_type=np.array([n_in]))}
    nodes.update(core)
    names = list(nodes)
    edges = list(zip(names[:-1], names[1:]))
    if w_rec is not None:
        nodes["w_rec"] = nir.Linear(weight=w_rec)
        edges += [(last, "w_rec"), ("w_rec", first)]
    nodes["output"] = nir.Output(output_type=np.array([n_out or n_in]))
    edges.append((last, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(meta))


_EXPORTERS: dict[type, Callable[[_Exporter, _Resolved, str], Any]] = {
    TorchSequential: _export_sequential,
    LIFTorch: _export_lif,
    ExpSynTorch: _export_exp_syn,
    LinearTorch: _export_linear,
    nn.Linear: _export_torch_linear,
}


def to_nir(
    net: Any,
    sample_data: Any = None,
    model_name: str = "snnqat",
    *,
    ignore_activity_transforms: bool = False,
) -> nir_types.NIRGraph:
    """Export a float snnqat network as a NIR graph.

    The graph is built from the network's structure (no tracing): each sub-module of a
    ``Sequential`` becomes a node named like the sub-module (``'0_LinearTorch'``), a nested
    ``Sequential``/``Residual`` a sub-graph (a ``Residual`` adds the edge
    ``input -> output``), a recurrent or multi-synapse ``LIFTorch`` a sub-graph with the
    feedback ``lif -> w_rec -> first node``. See ``docs/nir.md`` for the mapping table and
    the metadata convention.

    Patched networks export what their forward pass uses: the ``TWrapper`` transforms are
    evaluated once (a stochastic transform is sampled once, for this export).

    Args:
        net: the network (``Sequential``, ``Residual`` or a single supported module).
        sample_data: optional input; only its last dimension is checked against the
            network's input size (the export does not run the network).
        model_name: stored as the graph's ``model_name`` metadata.
        ignore_activity_transforms: export modules wrapped in an ``ActWrapper`` without their
            activity transform (NIR cannot express it); recorded in the node's metadata.

    Returns:
        A :class:`nir.NIRGraph` with one ``Input`` and one ``Output`` node.

    Raises:
        NotImplementedError: a module NIR cannot express (naming it): unknown module types,
            membrane noise, hardware-faithful (integer) modules, activity transforms.
        ValueError: ``sample_data`` of the wrong size, or leak factors without a time
            constant (a decay of 1).
        ImportError: the ``nir`` package is missing (``pip install snnqat[nir]``).

    Example:
        >>> from snnqat.nn.modules import LIFTorch
        >>> g = to_nir(LIFTorch(2, has_rec=True, dt=1e-3))
        >>> sorted(g.nodes["LIFTorch"].nodes)
        ['input', 'lif', 'output', 'w_rec']
    """
    nir = _nir()
    _check_sample(net, sample_data)
    ex = _Exporter(nir, ignore_activity_transforms)
    leaf = net
    while is_wrapper(leaf):
        leaf = leaf._mod
    name = net._name if getattr(net, "_name", None) else type(leaf).__name__
    node = ex.node(net, str(name))
    meta = {_MODULE_KEY: type(leaf).__name__}
    if isinstance(leaf, TorchSequential) and isinstance(node, nir.NIRGraph):
        graph = node
    else:
        graph = ex.graph([(name, node)], leaf.size_in, leaf.size_out, False, meta)
    graph.metadata.update(meta)
    graph.metadata.update(snnqat_format=FORMAT, snnqat_format_version=FORMAT_VERSION)
    graph.metadata["model_name"] = str(model_name)
    if len(ex.dts) == 1:
        graph.metadata["dt"] = ex.dts.pop()
    return graph


def _check_sample(net: Any, sample: Any) -> None:
    if sample is None:
        return
    size = getattr(net, "size_in", None)
    n = np.shape(_np(sample))[-1] if np.ndim(_np(sample)) else None
    if size is not None and n not in (size, 1):
        raise ValueError(
            f"to_nir: sample_data has {n} channels in its last dimension, but the network "
            f"expects {size}."
        )


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
