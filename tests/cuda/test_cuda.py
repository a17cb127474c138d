"""snnqat on an accelerator: what runs on the device equals the same computation on the CPU.

Every test takes the ``device`` fixture and compares a run there with the same run on the
CPU (float64 where the result must be exact or nearly so, spike counts always exactly).

* By default the device is ``torch.device("cuda")`` and the whole module is **skipped** when
  ``torch.cuda.is_available()`` is false (CI has no GPU).
* The environment variable ``SNNQAT_TEST_DEVICE`` overrides that: the tests then run on the
  device it names, available or not, e.g. ``SNNQAT_TEST_DEVICE=cpu pytest tests/cuda`` (the
  comparisons then hold trivially; this checks the tests themselves) or
  ``SNNQAT_TEST_DEVICE=cuda:1``.

No test depends on timing. The module runs in well under a minute on a CPU.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import os

import numpy as np
import pytest
import torch
from lif_inputs import make_inputs, make_integer_inputs
from rounding_cases import ROUNDINGS
from torch import nn

import snnqat.transform.torch_transform as tt
from snnqat.devices.xylo import XyloSim, export, hardware_faithful
from snnqat.kernels import (
    IntegerSemantics,
    LIFConfig,
    PeriodicExponential,
    StepPWL,
    bitshift_decay,
    delivery_bounds,
    exp_syn_scan,
    lif_scan,
)
from snnqat.kernels import _graphs as graphs
from snnqat.nn.combinators import Residual, Sequential
from snnqat.nn.modules import ExpSynTorch, LIFTorch, LinearTorch

_ENV_DEVICE = os.environ.get("SNNQAT_TEST_DEVICE", "").strip()
if not _ENV_DEVICE and not torch.cuda.is_available():
    pytest.skip(
        "CUDA is not available (set SNNQAT_TEST_DEVICE=cpu to run these tests on the CPU)",
        allow_module_level=True,
    )
DEVICE = torch.device(_ENV_DEVICE or "cuda")

CPU = torch.device("cpu")
F64 = torch.float64
TRACES = ("spikes", "vmem", "isyn", "irec")
KERNEL_INPUTS = (
    "x", "vmem0", "isyn0", "spikes0", "alpha", "beta", "bias", "threshold", "w_rec", "noise",
)  # fmt: skip
LEAKS = {
    "taus": dict(leak_mode="taus", tau_mem=0.01, tau_syn=0.005),
    "decays": dict(leak_mode="decays", alpha=0.8, beta=0.6),
    "bitshifts": dict(leak_mode="bitshifts", dash_mem=2.0, dash_syn=1.5),
}


@pytest.fixture(scope="module")
def device() -> torch.device:
    """The device under test (see the module docstring)."""
    return DEVICE


# --------------------------------------------------------------------------- helpers
def is_on(t: torch.Tensor, device: torch.device) -> bool:
    """Whether ``t`` lives on ``device`` (``cuda`` matches any ``cuda:i``)."""
    return t.device.type == device.type and (device.index is None or t.device.index == device.index)


def assert_on(t: torch.Tensor, device: torch.device, what: str) -> None:
    assert isinstance(t, torch.Tensor), f"{what}: expected a tensor, got {type(t).__name__}"
    assert is_on(t, device), f"{what}: expected it on {device}, found it on {t.device}"


def assert_close(got: torch.Tensor, want: torch.Tensor, what: str, rtol=1e-9, exact=False):
    """``got`` (on the device) equals ``want`` (on the CPU) exactly or within ``rtol``."""
    assert got is not None, f"{what}: missing on the device (CPU has {tuple(want.shape)})"
    got = got.detach().cpu()
    want = want.detach()
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    if exact:
        mismatch = got != want
        count = int(mismatch.sum())
        if count:
            first = tuple(mismatch.nonzero()[0].tolist())
            pytest.fail(
                f"{what}: device and CPU differ at {count} of {got.numel()} places, first at "
                f"{first}: {got[first].item()!r} (device) vs {want[first].item()!r} (CPU)"
            )
        return
    scale = max(want.abs().max().item(), 1.0) if want.numel() else 1.0
    torch.testing.assert_close(
        got,
        want,
        rtol=rtol,
        atol=rtol * scale,
        msg=lambda m: f"{what}: device and CPU differ beyond rtol={rtol}: {m}",
    )


def tensor_leaves(tree, path=()):
    """``(path, tensor)`` for every tensor in a nested dict."""
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from tensor_leaves(value, (*path, key))
        elif isinstance(value, torch.Tensor):
            yield "/".join((*path, key)), value


def assert_tree_close(got: dict, want: dict, what: str, rtol=1e-9) -> None:
    """Records/states: spike counts exactly equal, everything else within ``rtol``."""
    got_leaves, want_leaves = dict(tensor_leaves(got)), dict(tensor_leaves(want))
    assert set(got_leaves) == set(want_leaves), (
        f"{what}: keys differ: {sorted(set(got_leaves) ^ set(want_leaves))}"
    )
    for key, value in want_leaves.items():
        exact = key.endswith("spikes") or key.endswith("LIFTorch_output")
        assert_close(got_leaves[key], value, f"{what}[{key}]", rtol=rtol, exact=exact)


def param_grads(net: nn.Module) -> dict[str, torch.Tensor | None]:
    return {k: p.grad for k, p in nn.Module.named_parameters(net)}


def assert_grads_close(net_dev, net_cpu, device, what, rtol=1e-9) -> None:
    got, want = param_grads(net_dev), param_grads(net_cpu)
    assert set(got) == set(want), f"{what}: parameter names differ"
    assert any(g is not None and g.abs().sum() > 0 for g in want.values()), (
        f"{what}: the CPU run has no non-zero gradient: the case tests nothing"
    )
    for name, g in want.items():
        if g is None:
            assert got[name] is None, f"{what}: {name} has a gradient on the device only"
            continue
        assert_on(got[name], device, f"{what}: grad of {name}")
        assert torch.isfinite(got[name]).all(), f"{what}: grad of {name} is not finite"
        assert_close(got[name], g, f"{what}: grad of {name}", rtol=rtol)


def assert_state_on(net, device, what) -> None:
    leaves = list(tensor_leaves(net.state()))
    assert leaves, f"{what}: the network has no state"
    for key, value in leaves:
        assert_on(value, device, f"{what}: state {key}")
    for key, value in nn.Module.named_buffers(net):
        assert_on(value, device, f"{what}: buffer {key}")
    for key, value in nn.Module.named_parameters(net):
        assert_on(value, device, f"{what}: parameter {key}")


def seed_net(nin=4, h=6, nout=3, **lif_kwargs) -> nn.Module:
    """The seed network: Linear, LIF, Residual(Linear, recurrent LIF), Linear, LIF."""
    return Sequential(
        LinearTorch((nin, h)),
        LIFTorch(h, **lif_kwargs),
        Residual(LinearTorch((h, h)), LIFTorch(h, has_rec=True, **lif_kwargs)),
        LinearTorch((h, nout)),
        LIFTorch(nout, **lif_kwargs),
    )


def twins(net: nn.Module, device: torch.device) -> tuple[nn.Module, nn.Module]:
    """``(net on the CPU, an identical copy on the device)``."""
    return net, copy.deepcopy(net).to(device)


def loss_of(out: torch.Tensor, rec: dict, weights: torch.Tensor) -> torch.Tensor:
    """Weighted output spikes plus every recorded membrane trace (gradients through all)."""
    loss = (out * weights).sum()
    for key, value in tensor_leaves(rec):
        if key.endswith("vmem"):
            loss = loss + 0.1 * (value**2).mean()
    return loss


# --------------------------------------------------------------------------- 1. the kernel
def kernel_inputs(b, t, n, s, *, rec, noise, seed):
    """Random float64 inputs (CPU) that make many spikes and multi-spikes."""
    return make_inputs(b, t, n, s, rec=rec, noise=noise, seed=seed, grad=False)


def run_scan(p, device, config, record, grad_names, weights):
    """``lif_scan`` on ``device``; returns the result and the gradients of a weighted loss."""
    leaves = {
        k: v.detach().to(device).requires_grad_(k in grad_names)
        for k, v in p.items()
        if v is not None
    }
    res = lif_scan(**{k: leaves.get(k) for k in KERNEL_INPUTS}, config=config, record=record)
    keys = TRACES if record else ("spikes",)
    loss = sum((getattr(res, k) * weights[k].to(device)).sum() for k in keys)
    names = [k for k in grad_names if k in leaves]
    grads = torch.autograd.grad(loss, [leaves[k] for k in names], allow_unused=True)
    return res, dict(zip(names, grads))


def compare_scans(p, config_dev, configs_cpu, record, device, *, exact_traces=False):
    """Run ``lif_scan`` on the device and (per config) on the CPU; compare everything."""
    gen = torch.Generator().manual_seed(99)
    b, t, n, s = p["x"].shape
    shapes = {"spikes": (b, t, n), "vmem": (b, t, n), "isyn": (b, t, n, s), "irec": (b, t, n, s)}
    weights = {k: torch.randn(shape, generator=gen, dtype=F64) for k, shape in shapes.items()}
    grad_names = [k for k in KERNEL_INPUTS if p.get(k) is not None]
    res_dev, g_dev = run_scan(p, device, config_dev, record, grad_names, weights)
    for field in ("spikes", "vmem_last", "isyn_last", "spikes_last"):
        assert_on(getattr(res_dev, field), device, f"lif_scan output {field}")
    for label, config_cpu in configs_cpu.items():
        res_cpu, g_cpu = run_scan(p, CPU, config_cpu, record, grad_names, weights)
        what = f"lif_scan vs CPU ({label})"
        assert_close(res_dev.spikes, res_cpu.spikes, f"{what}: spikes", exact=True)
        assert_close(res_dev.spikes_last, res_cpu.spikes_last, f"{what}: spikes_last", exact=True)
        for field in ("vmem_last", "isyn_last"):
            assert_close(
                getattr(res_dev, field), getattr(res_cpu, field), f"{what}: {field}",
                rtol=1e-10, exact=exact_traces,
            )  # fmt: skip
        for k in ("vmem", "isyn", "irec"):
            got, want = getattr(res_dev, k), getattr(res_cpu, k)
            if not record:
                assert got is None and want is None, f"{what}: {k} recorded without record=True"
                continue
            assert_on(got, device, f"lif_scan trace {k}")
            assert_close(got, want, f"{what}: {k}", rtol=1e-10, exact=exact_traces)
        for name, want in g_cpu.items():
            got = g_dev[name]
            if want is None:
                assert got is None or not got.any(), f"{what}: grad of {name} on the device only"
                continue
            assert_on(got, device, f"lif_scan grad of {name}")
            assert_close(got, want, f"{what}: grad of {name}", rtol=1e-9)
    return res_dev


@pytest.mark.parametrize("max_spikes", [3.0, 2.0**16], ids=["max3", "maxdef"])
@pytest.mark.parametrize("surrogate", ["step_pwl", "periodic_exponential"])
@pytest.mark.parametrize("record", [False, True], ids=["norec", "record"])
@pytest.mark.parametrize("s", [1, 2], ids=["S1", "S2"])
@pytest.mark.parametrize("rec", [False, True], ids=["ff", "rec"])
def test_lif_scan_float_matches_cpu(device, rec, s, record, surrogate, max_spikes):
    p = kernel_inputs(3, 12, 5, s, rec=rec, noise=record, seed=17 * s + 5 * rec + record)
    for k in ("vmem0", "isyn0", "spikes0"):  # gradients reach the initial states too
        p[k] = p[k].clone()
    cfg = dict(max_spikes_per_dt=max_spikes, surrogate=surrogate)
    res = compare_scans(
        p,
        LIFConfig(**cfg, backend="auto"),
        {"torch": LIFConfig(**cfg, backend="torch"), "auto": LIFConfig(**cfg, backend="auto")},
        record,
        device,
    )
    spikes = res.spikes.detach().cpu()
    assert (spikes > 0).float().mean() > 0.2, "the case makes too few spikes to test anything"
    assert (spikes >= 2).any(), "the case makes no multi-spikes"
    assert max_spikes > 3 or (spikes == max_spikes).any(), "the spike cap is never reached"


@pytest.mark.parametrize("record", [False, True], ids=["norec", "record"])
@pytest.mark.parametrize("rec", [False, True], ids=["ff", "rec"])
def test_cuda_graph_replays_equal_launched_kernels(device, rec, record):
    """On a GPU the float loops run as replayed CUDA graphs from the second call of a call
    structure on: three calls of one structure with different data, each equal (bitwise) to
    the same call with the graphs off, and each equal to the CPU."""
    graphs.clear()
    gen = torch.Generator().manual_seed(7)
    weights = {k: torch.randn(shape, generator=gen, dtype=F64) for k, shape in (
        ("spikes", (3, 12, 5)), ("vmem", (3, 12, 5)), ("isyn", (3, 12, 5, 2)),
        ("irec", (3, 12, 5, 2)))}  # fmt: skip
    on, off = LIFConfig(max_spikes_per_dt=3.0), LIFConfig(max_spikes_per_dt=3.0, cuda_graphs=False)
    for seed in range(3):
        p = kernel_inputs(3, 12, 5, 2, rec=rec, noise=True, seed=seed)
        names = [k for k in KERNEL_INPUTS if p.get(k) is not None]
        res_on, g_on = run_scan(p, device, on, record, names, weights)
        res_off, g_off = run_scan(p, device, off, record, names, weights)
        res_cpu, _ = run_scan(p, CPU, LIFConfig(max_spikes_per_dt=3.0), record, names, weights)
        assert torch.equal(res_on.spikes.cpu(), res_cpu.spikes)
        for k in (*TRACES, "vmem_last", "isyn_last", "spikes_last"):
            a, b = getattr(res_on, k), getattr(res_off, k)
            assert (a is None) == (b is None), k
            assert a is None or torch.equal(a, b), f"call {seed}: {k}"
        for k in names:
            assert (g_on[k] is None) == (g_off[k] is None), k
            assert g_on[k] is None or torch.equal(g_on[k], g_off[k]), f"call {seed}: grad {k}"
    if device.type == "cuda":  # forward and backward captured (at the second call)
        assert {key[0] for key in graphs._CACHE} == {"forward", "backward"}


def test_lif_scan_float32_matches_cpu(device):
    p = {k: None if v is None else v.float() for k, v in kernel_inputs(
        4, 20, 6, 2, rec=True, noise=True, seed=3).items()}  # fmt: skip
    cfg = LIFConfig(max_spikes_per_dt=3)
    res_dev = lif_scan(**{k: None if v is None else v.to(device) for k, v in p.items()},
                       config=cfg, record=True)  # fmt: skip
    res_cpu = lif_scan(**p, config=LIFConfig(max_spikes_per_dt=3, backend="torch"), record=True)
    assert res_dev.spikes.dtype == torch.float32 and res_dev.vmem.dtype == torch.float32
    # float32: a spike may flip where the membrane is within rounding of a threshold
    flips = (res_dev.spikes.cpu() != res_cpu.spikes).float().mean().item()
    assert flips < 0.01, f"float32 lif_scan: {flips:.2%} of the spike counts differ from the CPU"
    if flips == 0:
        assert_close(res_dev.vmem, res_cpu.vmem, "float32 lif_scan: vmem", rtol=1e-4)


def int_kernel_inputs(b, t, n, s, *, rec, seed):
    """Integer-valued float64 inputs for the integer mode (with saturation)."""
    return make_integer_inputs(b, t, n, s, rec=rec, seed=seed)


@pytest.mark.parametrize("bounds", [False, True], ids=["plain", "bounds+offset"])
@pytest.mark.parametrize("max_spikes", [1, 31])
@pytest.mark.parametrize("s", [1, 2], ids=["S1", "S2"])
@pytest.mark.parametrize("rec", [False, True], ids=["ff", "rec"])
def test_lif_scan_integer_mode_matches_cpu(device, rec, s, max_spikes, bounds):
    b, t, n = 2, 12, 4
    p, dash_mem, dash_syn = int_kernel_inputs(b, t, n, s, rec=rec, seed=7 * s + rec)
    extra = {}
    if bounds:  # the delivery bounds and aliased spikes of the hardware-faithful path
        gen = torch.Generator().manual_seed(5)
        counts = torch.randint(0, 4, (b, t, 3), generator=gen).to(F64)
        weight = torch.randint(-9000, 9000, (3, n * s), generator=gen).to(F64)
        lo, hi = delivery_bounds(counts, weight, -32768.0, 32767.0)
        p["x"] = counts @ weight
        p["x"] = p["x"].view(b, t, n, s)
        extra = dict(
            x_lo=lo.view(b, t, n, s),
            x_hi=hi.view(b, t, n, s),
            spike_offset=torch.randint(0, 2, (b, t, n), generator=gen).to(F64),
        )

    def config(where):
        sem = IntegerSemantics(
            dash_mem.to(where),
            dash_syn.to(where),
            **{k: v.to(where) for k, v in extra.items()},
        )
        return LIFConfig(max_spikes_per_dt=max_spikes, integer=sem)

    res = compare_scans(p, config(device), {"integer": config(CPU)}, True, device,
                        exact_traces=True)  # fmt: skip
    for k in TRACES:
        got = getattr(res, k).detach()
        assert torch.equal(got, got.round()), f"integer mode: {k} is not integer-valued on {device}"
    assert (res.isyn.detach().abs() > 16000).any(), "the saturating inputs took no effect"


def test_bitshift_decay_exp_syn_and_surrogates_on_device(device):
    v = torch.tensor([5.0, 1.0, -1.0, -5.0, 0.0, 32767.0])
    dash = torch.tensor([1, 4, 4, 1, 4, 15])
    got = bitshift_decay(v.to(device), dash.to(device))
    assert_on(got, device, "bitshift_decay")
    assert got.cpu().tolist() == [3.0, 0.0, 0.0, -2.0, 0.0, 32766.0]

    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 9, 4, generator=gen, dtype=F64)
    isyn0 = torch.randn(2, 4, generator=gen, dtype=F64)
    beta = torch.rand(4, generator=gen, dtype=F64)
    results = []
    for where in (device, CPU):
        leaves = [t.to(where).requires_grad_() for t in (x, isyn0, beta)]
        trace = exp_syn_scan(*leaves)
        grads = torch.autograd.grad((trace * trace).sum(), leaves)
        results.append((trace, grads))
    (trace_d, grads_d), (trace_c, grads_c) = results
    assert_on(trace_d, device, "exp_syn_scan output")
    assert_close(trace_d, trace_c, "exp_syn_scan trace", rtol=1e-12)
    for name, g_d, g_c in zip(("x", "isyn0", "beta"), grads_d, grads_c):
        assert_close(g_d, g_c, f"exp_syn_scan grad of {name}", rtol=1e-10)

    u = torch.linspace(-1.0, 4.0, 23, dtype=F64)
    for fn in (StepPWL, PeriodicExponential):
        outs = []
        for where in (device, CPU):
            uu = u.to(where).requires_grad_()
            thr = torch.tensor(1.3, dtype=F64, device=where, requires_grad=True)
            s = fn.apply(uu, thr, 0.5, 3.0)
            outs.append((s, *torch.autograd.grad((s * s).sum(), (uu, thr))))
        for name, got, want in zip(("spikes", "grad u", "grad threshold"), *outs):
            assert_close(got, want, f"{fn.__name__}: {name}", rtol=1e-12, exact=name == "spikes")


def test_numba_backend_refuses_device_tensors(device):
    if device.type == "cpu":
        pytest.skip("the numba backend runs on the CPU")
    p = kernel_inputs(1, 3, 2, 1, rec=False, noise=False, seed=0)
    with pytest.raises(ValueError, match="backend='numba' cannot run with tensors on"):
        lif_scan(**{k: None if v is None else v.to(device) for k, v in p.items()},
                 config=LIFConfig(backend="numba"))  # fmt: skip


# --------------------------------------------------------------------------- 2. the modules
@pytest.mark.parametrize("surrogate", [StepPWL, PeriodicExponential], ids=lambda f: f.__name__)
@pytest.mark.parametrize("shape", [(3, 3), (6, 3)], ids=["S1", "S2"])
@pytest.mark.parametrize("has_rec", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("leak", list(LEAKS))
def test_lif_module_matches_cpu(device, leak, has_rec, shape, surrogate):
    torch.manual_seed(3)
    lif = LIFTorch(
        shape,
        has_rec=has_rec,
        bias=torch.rand(shape[1]) * 0.1,
        threshold=torch.rand(shape[1]) + 0.5,
        spike_generation_fn=surrogate,
        max_spikes_per_dt=4,
        **LEAKS[leak],
    ).double()
    lif_cpu, lif_dev = twins(lif, device)
    gen = torch.Generator().manual_seed(4)
    x = torch.rand(2, 20, shape[0], generator=gen, dtype=F64) * 1.5
    weights = torch.rand(2, 20, shape[1], generator=gen, dtype=F64)
    for name in ("alpha", "beta", "tau_mem", "tau_syn", "dash_mem", "dash_syn"):
        got = getattr(lif_dev, name)
        assert_on(got, device, f"LIFTorch({leak}).{name}")
        assert_close(got, getattr(lif_cpu, name), f"LIFTorch({leak}).{name}", rtol=1e-12)
    outs = {}
    for tag, mod, where in (("dev", lif_dev, device), ("cpu", lif_cpu, CPU)):
        for _ in range(2):  # the second call starts from the first call's (batched) state
            spikes, state, rec = mod(x.to(where), record=True)
        (spikes * weights.to(where)).sum().add(rec["vmem"].sum()).backward()
        outs[tag] = (spikes, state, rec)
    assert outs["cpu"][0].sum() > 5, "the case makes too few spikes to test anything"
    assert_close(outs["dev"][0], outs["cpu"][0], "LIFTorch spikes", exact=True)
    assert_tree_close(outs["dev"][2], outs["cpu"][2], "LIFTorch record", rtol=1e-10)
    assert_tree_close(outs["dev"][1], outs["cpu"][1], "LIFTorch state", rtol=1e-10)
    assert_grads_close(lif_dev, lif_cpu, device, f"LIFTorch({leak})")
    assert_state_on(lif_dev, device, "LIFTorch after a call")
    lif_dev.reset_state()
    assert_state_on(lif_dev, device, "LIFTorch after reset_state()")
    assert all(not v.any() for _, v in tensor_leaves(lif_dev.state())), "reset_state left values"


def test_lif_module_noise_and_float32_on_device(device):
    lif = LIFTorch((4, 2), noise_std=0.5, has_rec=True).to(device)
    x = torch.rand(3, 10, 4, device=device)
    out, state, rec = lif(x, record=True)
    assert_on(out, device, "noisy LIFTorch output")
    assert out.dtype == torch.float32 and torch.isfinite(rec["vmem"]).all()
    out.sum().backward()
    assert_state_on(lif, device, "noisy LIFTorch")
    for name, p in nn.Module.named_parameters(lif):
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"grad of {name}"


@pytest.mark.parametrize("leak", list(LEAKS))
def test_seed_network_matches_cpu(device, leak):
    torch.manual_seed(11)
    net_cpu, net_dev = twins(seed_net(**LEAKS[leak]).double(), device)
    gen = torch.Generator().manual_seed(12)
    x = torch.rand(3, 15, 4, generator=gen, dtype=F64) * 2.0
    weights = torch.randn(3, 15, 3, generator=gen, dtype=F64)
    results = {}
    for tag, net, where in (("dev", net_dev, device), ("cpu", net_cpu, CPU)):
        net(x.to(where))  # a first call: the second one starts from batched states
        out, state, rec = net(x.to(where), record=True)
        loss_of(out, rec, weights.to(where)).backward()
        results[tag] = (out, state, rec)
    out_d, state_d, rec_d = results["dev"]
    out_c, state_c, rec_c = results["cpu"]
    assert out_c.sum() > 0 and rec_c["1_LIFTorch"]["spikes"].sum() > 5, "too few spikes"
    assert_on(out_d, device, "seed network output")
    assert_close(out_d, out_c, "seed network output", exact=True)
    assert_tree_close(rec_d, rec_c, "seed network record", rtol=1e-10)
    assert_tree_close(state_d, state_c, "seed network state", rtol=1e-10)
    assert_grads_close(net_dev, net_cpu, device, f"seed network ({leak})")
    assert_state_on(net_dev, device, "seed network after a call")
    net_dev.reset_state()
    assert_state_on(net_dev, device, "seed network after reset_state()")
    net_cpu.reset_state()
    out_d2, _, _ = net_dev(x.to(device))
    out_c2, _, _ = net_cpu(x)
    assert_close(out_d2, out_c2, "seed network output after reset_state()", exact=True)


def test_seed_network_torch_api_float32_on_device(device):
    torch.manual_seed(2)
    net = seed_net().to(device).to_torch()
    x = torch.rand(2, 10, 4, device=device) * 2
    out = net(x)
    assert_on(out, device, "to_torch() output")
    out.sum().backward()
    assert all(p.grad is not None and is_on(p.grad, device) for p in net.parameters())


def test_exp_syn_module_matches_cpu(device):
    torch.manual_seed(5)
    net = Sequential(LinearTorch((4, 5)), ExpSynTorch(5, tau=[0.002, 0.005, 0.01, 0.02, 0.05]))
    net_cpu, net_dev = twins(net.double(), device)
    x = torch.rand(2, 12, 4, dtype=F64)
    results = {}
    for tag, mod, where in (("dev", net_dev, device), ("cpu", net_cpu, CPU)):
        mod(x.to(where))
        out, state, rec = mod(x.to(where), record=True)
        (out * out).sum().backward()
        results[tag] = (out, state, rec)
    assert_close(results["dev"][0], results["cpu"][0], "ExpSynTorch output", rtol=1e-12)
    assert_tree_close(results["dev"][2], results["cpu"][2], "ExpSynTorch record", rtol=1e-12)
    assert_grads_close(net_dev, net_cpu, device, "ExpSynTorch network", rtol=1e-10)
    assert_state_on(net_dev, device, "ExpSynTorch after a call")
    net_dev.reset_state()
    assert_state_on(net_dev, device, "ExpSynTorch after reset_state()")


def test_assigned_values_stay_on_device(device):
    """Assigning plain numbers to a device module keeps its parameters on the device."""
    lif = LIFTorch(3, has_rec=True).to(device)
    lif.threshold = 2.0
    lif.bias = 0.1
    lif.alpha = 0.9  # a derived leak name: converted into tau_mem
    for name in ("threshold", "bias", "tau_mem"):
        assert_on(getattr(lif, name), device, f"LIFTorch.{name} after assigning a float")
    out, _, _ = lif(torch.ones(1, 4, 3, device=device))
    assert_on(out, device, "output after assigning floats")


def test_load_state_dict_with_batched_states_keeps_them_on_device(device):
    """A checkpoint is loaded with ``map_location="cpu"``; its states may be batched."""
    torch.manual_seed(6)
    net = seed_net().to(device)
    x = torch.rand(3, 8, 4, device=device) * 2
    expected, _, _ = net(x)  # leaves batched (3, N) states
    saved = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    fresh = seed_net().to(device)
    fresh.load_state_dict(saved)
    assert_state_on(fresh, device, "network after load_state_dict of CPU tensors")
    fresh.reset_state()
    net.reset_state()
    assert_close(fresh(x)[0], net(x)[0].cpu(), "loaded network output", exact=True)


# --------------------------------------------------------------------------- 3. transforms
def test_deterministic_transforms_match_cpu(device):
    torch.manual_seed(21)
    net = seed_net().double()
    quant = functools.partial(tt.deterministic_rounding, num_levels=16)
    tnet = tt.make_param_T_network(net, tt.make_param_T_config(net, quant, "weights"))
    tnet = tt.make_param_T_network(
        tnet, tt.make_param_T_config(tnet, tt.round_passthrough, "thresholds"), inplace=True
    )
    anet = tt.make_act_T_network(tnet, tt.make_act_T_config(tnet, tt.round_passthrough,
                                                             LinearTorch))  # fmt: skip
    x = torch.rand(2, 12, 4, dtype=F64) * 2
    weights = torch.randn(2, 12, 3, dtype=F64)
    for label, model in (("param transforms", tnet), ("param + activity transforms", anet)):
        m_cpu, m_dev = twins(model, device)
        outs = {}
        for tag, m, where in (("dev", m_dev, device), ("cpu", m_cpu, CPU)):
            out, _, rec = m(x.to(where), record=True)
            loss_of(out, rec, weights.to(where)).backward()
            outs[tag] = (out, rec)
        assert_on(outs["dev"][0], device, f"{label}: output")
        assert_close(outs["dev"][0], outs["cpu"][0], f"{label}: output", exact=True)
        assert_tree_close(outs["dev"][1], outs["cpu"][1], f"{label}: record", rtol=1e-10)
        assert_grads_close(m_dev, m_cpu, device, label)

    # burn in and unpatch on the device: same outputs, integer-grid weights, on the device
    t_dev = copy.deepcopy(tnet).to(device)
    t_dev.reset_state()
    before, _, _ = t_dev(x.to(device))
    plain = tt.remove_T_net(tt.apply_T(t_dev))
    plain.reset_state()
    after, _, _ = plain(x.to(device))
    assert_close(after, before.cpu(), "output after apply_T + remove_T_net", exact=True)
    assert "TWrapper" not in repr(plain)
    for key, w in tensor_leaves(plain.parameters("weights")):
        assert_on(w, device, f"burned-in weight {key}")
        assert w.unique().numel() <= 16, f"burned-in weight {key} has more than 16 levels"


@pytest.mark.parametrize("name", list(ROUNDINGS))
def test_quantizer_graph_replays_equal_launched_kernels(device, name):
    """On a GPU the rounding quantizers run as replayed CUDA graphs from the second call of a
    structure on: four calls with different data, each equal (bitwise, values and gradients)
    to the same call with the graphs off, and none overwritten by a later replay."""
    graphs.clear()
    fn = ROUNDINGS[name]
    gen = torch.Generator().manual_seed(3)

    def call(value, grad, seed):
        v = value.to(device).requires_grad_()
        torch.manual_seed(seed)
        y = fn(v)
        y.backward(grad.to(device))
        return y.detach(), v.grad

    kept = []
    for seed, scale in enumerate((1.0, 0.3, 2.5, 0.01)):
        value, grad = torch.randn(64, 40, generator=gen) * scale, torch.randn(64, 40, generator=gen)
        got = call(value, grad, seed)
        previous = tt.set_quantizer_cuda_graphs(False)
        try:
            want = call(value, grad, seed)
        finally:
            tt.set_quantizer_cuda_graphs(previous)
        assert torch.equal(got[0], want[0]), f"call {seed}: values"
        assert torch.equal(got[1], want[1]), f"call {seed}: gradient"
        kept.append((got, want))
    for got, want in kept:
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    if device.type == "cuda":
        assert {key[0] for key in graphs._CACHE} == {"round", "round-grad"}


def test_stochastic_rounding_with_a_device_generator(device):
    torch.manual_seed(22)
    net = seed_net().to(device)
    gen = torch.Generator(device=device)
    quant = functools.partial(tt.stochastic_rounding, num_levels=16, generator=gen)
    tnet = tt.make_param_T_network(net, tt.make_param_T_config(net, quant, "weights"))
    x = torch.rand(2, 12, 4, device=device) * 2

    def forward(seed):
        gen.manual_seed(seed)
        tnet.reset_state()
        tnet.zero_grad()
        out, _, _ = tnet(x)
        out.sum().add(sum(v.sum() for _, v in tensor_leaves(tnet.state()))).backward()
        return out.detach(), {k: g.clone() for k, g in param_grads(tnet).items() if g is not None}

    out1, grads1 = forward(0)
    out2, grads2 = forward(0)
    assert_on(out1, device, "stochastically rounded network output")
    assert torch.equal(out1, out2), "the same generator seed gave different outputs"
    assert grads1 and all(torch.isfinite(g).all() and is_on(g, device) for g in grads1.values())
    for k in grads1:
        assert torch.equal(grads1[k], grads2[k]), f"grad of {k} not reproducible"
    values = {}
    for seed in (0, 1):
        gen.manual_seed(seed)
        values[seed] = {k: tt.stochastic_rounding(w, num_levels=16, generator=gen)
                        for k, w in tensor_leaves(net.parameters("weights"))}  # fmt: skip
    for k, q in values[0].items():
        assert_on(q, device, f"stochastic_rounding of {k}")
        assert q.unique().numel() <= 16, f"stochastic_rounding of {k}: more than 16 levels"
    assert any(not torch.equal(values[0][k], values[1][k]) for k in values[0]), (
        "two generator seeds gave the same rounding everywhere"
    )
    burned = tt.remove_T_net(tt.apply_T(tnet, inplace=True))
    for k, w in tensor_leaves(burned.parameters("weights")):
        assert_on(w, device, f"burned-in stochastic weight {k}")
    if device.type != "cpu":
        with pytest.raises(TypeError, match="generator must be a torch.Generator on the device"):
            tt.stochastic_rounding(x, generator=torch.Generator())


TRANSFORMS = {
    "deterministic_rounding": lambda p, g: tt.deterministic_rounding(p, num_levels=8),
    "stochastic_rounding": lambda p, g: tt.stochastic_rounding(p, num_levels=8, generator=g),
    "stochastic_channel_rounding": lambda p, g: tt.stochastic_channel_rounding(
        p, output_range=[-7, 7], num_levels=15, generator=g
    ),
    "int_quant": lambda p, g: tt.int_quant(p, n_bits=4, map_to_max=True),
    "dropout": lambda p, g: tt.dropout(p, 0.3, generator=g),
    "gaussian_mismatch": lambda p, g: tt.gaussian_mismatch(p, 10.0, generator=g),
    "magnitude_prune": lambda p, g: tt.magnitude_prune(p, 0.5),
    "t_decay": lambda p, g: tt.t_decay(p.sigmoid()),
    "round_bitshift": lambda p, g: tt.round_bitshift(p * 5),
    "lsq": lambda p, g: tt.LSQQuantizer(n_bits=4).to(p.device)(p),
    "chain": lambda p, g: tt.chain(tt.round_passthrough, tt.floor_passthrough)(p * 3),
}
DETERMINISTIC = {"deterministic_rounding", "int_quant", "magnitude_prune", "t_decay",
                 "round_bitshift", "lsq", "chain"}  # fmt: skip


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_transform_functions_on_device(device, name):
    value = torch.randn(6, 5, dtype=F64, generator=torch.Generator().manual_seed(8))
    results = []
    for where in (device, CPU):
        p = value.to(where).requires_grad_()
        gen = torch.Generator(device=where).manual_seed(0)
        out = TRANSFORMS[name](p, gen)
        (grad,) = torch.autograd.grad((out * torch.arange(30.0, dtype=F64,
                                       device=where).view(6, 5)).sum(), p)  # fmt: skip
        results.append((out, grad))
    (out_d, grad_d), (out_c, grad_c) = results
    assert_on(out_d, device, f"{name} output")
    assert_on(grad_d, device, f"{name} gradient")
    assert out_d.shape == value.shape and torch.isfinite(grad_d).all(), f"{name}: bad gradient"
    if name in DETERMINISTIC:  # (not bitwise: LSQ's initial step is a mean, reduced anyhow)
        assert_close(out_d, out_c, f"{name} output", rtol=1e-12)
        assert_close(grad_d, grad_c, f"{name} gradient", rtol=1e-12)


def test_lsq_quantizer_in_a_twrapper_moves_with_the_network(device):
    torch.manual_seed(23)
    lin = LinearTorch((4, 3))
    tnet = tt.TWrapper(lin, {"weight": tt.LSQQuantizer(n_bits=4)}).double()
    t_cpu, t_dev = twins(tnet, device)
    x = torch.rand(2, 5, 4, dtype=F64)
    outs = []
    for m, where in ((t_dev, device), (t_cpu, CPU)):
        out, _, _ = m(x.to(where))
        (out**2).sum().backward()
        outs.append(out)
    assert_close(outs[0], outs[1], "LSQ-quantized LinearTorch output", rtol=1e-12)
    assert_grads_close(t_dev, t_cpu, device, "LSQ-quantized LinearTorch", rtol=1e-10)
    assert_on(t_dev._T_modules["weight"].scale, device, "LSQQuantizer.scale")


# --------------------------------------------------------------------------- 4. hardware path
def deployable_net(seed: int, *, residual: bool, n_syn: int, leak_mode: str) -> nn.Module:
    """A small network that maps onto a Xylo core (recurrent hidden layers, 2 populations+)."""
    gen = torch.Generator().manual_seed(seed)
    nin, h, nout = 5, 6, 3

    def lin(a, b):
        return LinearTorch((a, b), weight=torch.randn(a, b, generator=gen))

    def lif(n, syn=1, rec=False):
        leak = {
            "taus": dict(tau_mem=0.02, tau_syn=0.01),
            "decays": dict(alpha=0.9, beta=0.7),
            "bitshifts": dict(dash_mem=torch.randint(1, 6, (n,), generator=gen).float(),
                              dash_syn=torch.randint(1, 5, (n, syn), generator=gen).float()),
        }[leak_mode]  # fmt: skip
        return LIFTorch(
            (n * syn, n),
            leak_mode=leak_mode,
            threshold=torch.rand(n, generator=gen) * 1.5 + 0.3,
            bias=torch.randn(n, generator=gen) * 0.1,
            has_rec=rec,
            w_rec=torch.randn(n, n * syn, generator=gen) * 0.5 if rec else None,
            **leak,
        )

    layers = [lin(nin, h * n_syn), lif(h, n_syn, rec=True)]
    if residual:
        layers.append(Residual(lin(h, h), lif(h, rec=True)))
    layers += [lin(h, nout), lif(nout)]
    return Sequential(*layers)


def raster(seed: int, b: int, t: int, nin: int, max_count: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, max_count + 1, (b, t, nin), generator=gen)
    return (counts * (torch.rand(b, t, nin, generator=gen) < 0.4)).float()


HW_CASES = [
    ("ff-taus-global", dict(residual=False, n_syn=1, leak_mode="taus"), "global"),
    ("syn2-bitshifts-channel", dict(residual=False, n_syn=2, leak_mode="bitshifts"), "channel"),
    ("residual-decays-global", dict(residual=True, n_syn=1, leak_mode="decays"), "global"),
    ("residual-bitshifts-channel", dict(residual=True, n_syn=2, leak_mode="bitshifts"), "channel"),
]


@pytest.mark.parametrize(("kind", "method"), [(c[1], c[2]) for c in HW_CASES],
                         ids=[c[0] for c in HW_CASES])  # fmt: skip
def test_hardware_faithful_on_device_matches_cpu_and_simulator(device, kind, method):
    net = deployable_net(31, **kind)
    hf_cpu = hardware_faithful(net, method=method)
    hf_dev = hardware_faithful(copy.deepcopy(net).to(device), method=method)
    x = raster(32, 2, 40, 5, 20)  # counts above 15 are capped
    out_c, _, rec_c = hf_cpu(x, record=True)
    out_d, _, rec_d = hf_dev(x.to(device), record=True)
    assert_on(out_d, device, "hardware-faithful output")
    assert out_c.sum() > 0, "the hardware-faithful network is silent: the case tests nothing"
    assert_close(out_d, out_c, "hardware-faithful output spikes", exact=True)
    for key, value in tensor_leaves(rec_c):  # integer states: exactly equal too
        got = dict(tensor_leaves(rec_d))[key]
        assert_close(got, value, f"hardware-faithful record {key}", exact=True)
    spec = export(hf_cpu, method=method)
    sim_out, _, _ = XyloSim.from_spec(spec)(x.int().numpy())
    np.testing.assert_array_equal(
        out_d.detach().cpu().int().numpy(),
        sim_out,
        err_msg="hardware-faithful output on the device differs from XyloSim of the export",
    )
    assert_state_on(hf_dev, device, "hardware-faithful network after a call")


def test_export_reads_a_device_network(device):
    net = deployable_net(33, residual=True, n_syn=2, leak_mode="bitshifts")
    hf = hardware_faithful(net)
    hf_dev = copy.deepcopy(hf).to(device)
    assert export(hf_dev) == export(hf), "export of the device copy differs (hardware-faithful)"
    assert export(copy.deepcopy(net).to(device)) == export(net), "PTQ export differs on device"


def test_hardware_faithful_gradients_and_burn_in_on_device(device):
    net = deployable_net(34, residual=True, n_syn=1, leak_mode="bitshifts")
    hf_cpu, hf_dev = twins(hardware_faithful(net).double(), device)
    x = raster(35, 3, 30, 5, 4).double()
    weights = torch.randn(3, 30, 3, dtype=F64, generator=torch.Generator().manual_seed(36))
    outs = {}
    for tag, m, where in (("dev", hf_dev, device), ("cpu", hf_cpu, CPU)):
        out, _, rec = m(x.to(where), record=True)
        loss_of(out, rec, weights.to(where)).backward()
        outs[tag] = out
    assert_close(outs["dev"], outs["cpu"], "hardware-faithful float64 output", exact=True)
    assert_grads_close(hf_dev, hf_cpu, device, "hardware-faithful network")

    hf_dev.reset_state()
    before, _, _ = hf_dev(x.to(device))
    burned = tt.apply_T(hf_dev)
    burned.reset_state()
    after, _, _ = burned(x.to(device))
    assert_close(after, before.cpu(), "hardware-faithful output after apply_T", exact=True)
    plain = tt.remove_T_net(burned)
    for key, w in tensor_leaves(plain.parameters("weights")):
        assert_on(w, device, f"burned-in weight {key}")
        assert torch.equal(w, w.round()), f"burned-in weight {key} is not integer-valued"


# --------------------------------------------------------------------------- 5. training
def test_sgd_steps_on_device_follow_the_cpu_trajectory(device):
    torch.manual_seed(41)
    net_cpu, net_dev = twins(seed_net(4, 8, 3).double(), device)
    gen = torch.Generator().manual_seed(42)
    x = torch.rand(4, 16, 4, generator=gen, dtype=F64) * 2
    target = torch.rand(4, 3, generator=gen, dtype=F64) * 4
    losses = {}
    for tag, net, where in (("dev", net_dev, device), ("cpu", net_cpu, CPU)):
        opt = torch.optim.SGD(nn.Module.parameters(net), lr=0.02)
        xs, ts = x.to(where), target.to(where)
        losses[tag] = []
        for _ in range(6):
            opt.zero_grad()
            net.reset_state()
            out, _, rec = net(xs, record=True)
            loss = ((out.sum(1) - ts) ** 2).mean() + 0.01 * (rec["1_LIFTorch"]["vmem"] ** 2).mean()
            loss.backward()
            opt.step()
            assert loss.device.type == where.type
            losses[tag].append(loss.item())
    dev, cpu = np.array(losses["dev"]), np.array(losses["cpu"])
    assert np.isfinite(cpu).all() and cpu[0] > 0, f"bad CPU losses {cpu}"
    assert len(set(cpu.round(12))) > 1, f"the loss never changed: {cpu}"
    np.testing.assert_allclose(dev, cpu, rtol=1e-8, err_msg="loss trajectory device vs CPU")
    for (name, p_d), (_, p_c) in zip(nn.Module.named_parameters(net_dev),
                                     nn.Module.named_parameters(net_cpu)):  # fmt: skip
        assert_on(p_d, device, f"trained parameter {name}")
        assert_close(p_d, p_c, f"trained parameter {name}", rtol=1e-8)


# --------------------------------------------------------------------------- 6. the CLI job
# The whole pipeline (float -> hardware-faithful QAT -> export -> XyloSim) in its tiny mode:
# a few seconds on a CPU. It needs scikit-learn (the digits) and tqdm.
def _tiny(device: torch.device):
    pytest.importorskip("sklearn")
    pytest.importorskip("tqdm")
    from snnqat.training import tiny_config

    return tiny_config(seed=1).replace(device=device.type)


def test_training_pipeline_runs_on_device(device, tmp_path):
    from snnqat.training import run

    out = tmp_path / "run"
    report = run(_tiny(device), out, plots=False)
    assert report["device"].startswith(device.type), f"ran on {report['device']}"
    saved = json.loads((out / "report.json").read_text())
    assert saved["device"] == report["device"]
    for key in ("float_test_accuracy", "qat_test_accuracy", "integer_sim_test_accuracy"):
        assert 0.0 <= saved[key] <= 1.0, f"{key} = {saved[key]}"
    assert saved["spike_agreement"] == 1.0, "the burned-in network and XyloSim disagree"
    for name in ("report.md", "xylo_spec.npz", "checkpoints/final.pt", "checkpoints/latest.pt"):
        assert (out / name).is_file(), f"{name} was not written"


def test_training_pipeline_resumes_on_device(device, tmp_path, monkeypatch):
    """Interrupted after its first checkpoint and resumed: same report as in one go."""
    from snnqat.training import pipeline, run

    cfg = _tiny(device)
    run(cfg, tmp_path / "whole", plots=False)

    class Interrupted(Exception):
        pass

    original = pipeline._Run._checkpoint

    def interrupt_after_first(self, stage, epoch, *args):
        original(self, stage, epoch, *args)
        if (stage, epoch) == ("float", 1):
            raise Interrupted

    monkeypatch.setattr(pipeline._Run, "_checkpoint", interrupt_after_first)
    with pytest.raises(Interrupted):
        run(cfg, tmp_path / "split", plots=False)
    monkeypatch.setattr(pipeline._Run, "_checkpoint", original)
    resumed = run(cfg, tmp_path / "split", resume=True, plots=False)
    assert resumed["device"].startswith(device.type), f"resumed on {resumed['device']}"

    def strip(folder):
        report = json.loads((tmp_path / folder / "report.json").read_text())
        for stage in ("float", "qat"):
            for entry in report["history"][stage]:
                entry.pop("seconds")
        return {k: v for k, v in report.items() if not k.startswith("wall_s")}

    whole_report, resumed_report = strip("whole"), strip("split")
    assert whole_report["history"]["float"], "the report has no float-stage history"
    for key in sorted(set(whole_report) | set(resumed_report)):
        assert resumed_report.get(key) == whole_report.get(key), (
            f"the resumed run ended differently at {key!r}: "
            f"{resumed_report.get(key)!r} != {whole_report.get(key)!r}"
        )
    assert math.isfinite(resumed["float_test_accuracy"])
