"""Export: snnqat networks -> NIR graphs (:func:`to_nir`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from snnqat.nir._common import (
    _MODULE_KEY,
    FORMAT,
    FORMAT_VERSION,
    _f64,
    _meta_array,
    _native_decay,
    _native_tau,
    _nir,
    _np,
    _synapse_sum,
    _tau_from_decay,
    _unique_name,
)
from snnqat.nn.combinators import TorchResidual, TorchSequential
from snnqat.nn.modules import ExpSynTorch, LIFTorch, LinearTorch
from snnqat.nn.modules.lif_torch import LEAK_MODES, THRESHOLD_MIN
from snnqat.transform._wrappers import ActWrapper, TWrapper, _identity, _raw_attr, is_wrapper

if TYPE_CHECKING:  # pragma: no cover
    import nir as nir_types


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
