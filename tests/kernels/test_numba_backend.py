"""The numba backend of ``lif_scan`` against the torch backend and the plain-autograd reference.

Recurrent layers are tested in all of the numba backend's modes: the recurrent product as
sparse loops inside the compiled kernels (``rec-loops``) and as one BLAS product per time step
(``rec-blas``), selected with ``BLAS_STEP_MIN_MACS``; the BLAS products called from the compiled
time loop (``rec-blas``, torch's own ``?gemm``) or, where torch exports none, from Python between
compiled steps (``rec-blas-py``, no ``?gemm`` routine for the compiled loops).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("numba")

from lif_inputs import make_inputs as shared_inputs  # noqa: E402
from lif_reference import lif_reference  # noqa: E402

import snnqat.kernels.lif as lif_module  # noqa: E402
from snnqat.kernels import (  # noqa: E402
    IntegerSemantics,
    LIFConfig,
    lif_scan,
    periodic_exponential_grads,
    spike_count,
    step_pwl_grads,
)
from snnqat.kernels import _numba_lif as nb  # noqa: E402

F64, F32 = torch.float64, torch.float32
TRACES = ("spikes", "vmem", "isyn", "irec")
INPUTS = ("x", "vmem0", "isyn0", "spikes0", "alpha", "beta", "bias", "threshold", "w_rec", "noise")
LEAKS = {"fast": (0.05, 0.3), "mid": (0.5, 0.95), "slow": (0.97, 0.999)}
REC_MODES = ("ff", "rec-loops", "rec-blas", "rec-blas-py")


@pytest.fixture
def rec_mode(request, monkeypatch):
    """Select how the numba backend forms the recurrent product (see the module docstring)."""
    mode = request.param
    blas = mode.startswith("rec-blas")
    monkeypatch.setattr(nb, "BLAS_STEP_MIN_MACS", 0 if blas else 2**62)
    monkeypatch.setattr(nb, "PY_BLAS_STEP_MIN_MACS", 0 if blas else 2**62)
    if mode == "rec-blas-py":
        monkeypatch.setattr(nb, "_gemm_routine", lambda dt: None)
    return mode


def make_inputs(b, t, n, s, *, rec, noise, leak="mid", dtype=F64, seed=0, grad=True):
    """Random inputs that make many spikes and multi-spikes; both decays from ``LEAKS[leak]``."""
    return shared_inputs(
        b, t, n, s, rec=rec, noise=noise, alpha=LEAKS[leak], beta=LEAKS[leak], dtype=dtype,
        seed=seed, grad=grad,
    )  # fmt: skip


def loss_weights(shapes, dtype, seed=123):
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=gen, dtype=dtype) for k, shape in shapes.items()}


def run(p, config, record, weights):
    """Traces and the gradients of a weighted loss on them (spikes, plus traces if recorded)."""
    res = lif_scan(**p, config=config, record=record)
    traces = {k: getattr(res, k) for k in TRACES}
    keys = TRACES if record else ("spikes",)
    loss = sum((traces[k] * weights[k]).sum() for k in keys)
    names = [k for k in INPUTS if p[k] is not None and p[k].requires_grad]
    grads = torch.autograd.grad(loss, [p[k] for k in names], allow_unused=True)
    return res, traces, dict(zip(names, grads))


def run_reference(p, max_spikes, surrogate, record, weights):
    ref = lif_reference(**p, max_spikes=max_spikes, surrogate=surrogate)
    keys = TRACES if record else ("spikes",)
    loss = sum((ref[k] * weights[k]).sum() for k in keys)
    names = [k for k in INPUTS if p[k] is not None and p[k].requires_grad]
    grads = torch.autograd.grad(loss, [p[k] for k in names], allow_unused=True)
    return ref, dict(zip(names, grads))


def assert_grads_close(got, expected, rtol, atol_scale=1e-3):
    assert got.keys() == expected.keys()
    for name, exp in expected.items():
        g = got[name]
        if exp is None or not exp.any():
            assert g is None or not g.any(), name
            continue
        assert g is not None, name
        scale = max(exp.abs().max().item(), 1.0)
        torch.testing.assert_close(
            g, exp, rtol=rtol, atol=rtol * atol_scale * scale, msg=lambda m, n=name: f"{n}: {m}"
        )


def both_backends(p, max_spikes, surrogate, record):
    shapes = {k: p["x"].shape if k in ("isyn", "irec") else p["x"].shape[:3] for k in TRACES}
    weights = loss_weights(shapes, p["x"].dtype)
    out = {}
    for backend in ("numba", "torch"):
        cfg = LIFConfig(max_spikes_per_dt=max_spikes, surrogate=surrogate, backend=backend)
        out[backend] = run(p, cfg, record, weights)
    return out, weights


# --------------------------------------------------------------------------- the grid
@pytest.mark.parametrize("record", [False, True], ids=["norec", "record"])
@pytest.mark.parametrize("surrogate", ["step_pwl", "periodic_exponential"])
@pytest.mark.parametrize("max_spikes", [3.0, 2.0**16], ids=["max3", "maxdef"])
@pytest.mark.parametrize("t", [1, 37], ids=lambda v: f"T{v}")
@pytest.mark.parametrize("b", [1, 3], ids=lambda v: f"B{v}")
@pytest.mark.parametrize("s", [1, 2], ids=lambda v: f"S{v}")
@pytest.mark.parametrize("rec_mode", REC_MODES, indirect=True)
def test_numba_matches_torch_and_reference_float64(
    rec_mode, s, b, t, max_spikes, surrogate, record
):
    noise = (s + b + t) % 2 == 0 or record
    leak = ("fast", "mid", "slow")[(s + b + t + int(record)) % 3]
    p = make_inputs(b, t, 5, s, rec=rec_mode != "ff", noise=noise, leak=leak, seed=s + 7 * b + t)
    out, weights = both_backends(p, max_spikes, surrogate, record)
    (res, got, g_nb), (_, want, g_torch) = out["numba"], out["torch"]
    ref, g_ref = run_reference(p, max_spikes, surrogate, record, weights)

    assert torch.equal(got["spikes"], want["spikes"])
    assert torch.equal(got["spikes"], ref["spikes"])
    if record:
        for k in ("vmem", "isyn", "irec"):
            torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-6)
            torch.testing.assert_close(got[k], ref[k], rtol=0, atol=1e-6)
    else:
        assert got["vmem"] is None and got["isyn"] is None and got["irec"] is None
    torch.testing.assert_close(res.vmem_last, ref["vmem"][:, -1], rtol=0, atol=1e-6)
    torch.testing.assert_close(res.isyn_last, ref["isyn"][:, -1], rtol=0, atol=1e-6)
    assert torch.equal(res.spikes_last, ref["spikes"][:, -1])
    assert_grads_close(g_nb, g_torch, rtol=1e-5)
    assert_grads_close(g_nb, g_ref, rtol=1e-5)


@pytest.mark.parametrize("leak", list(LEAKS))
@pytest.mark.parametrize("rec_mode", REC_MODES, indirect=True)
def test_numba_across_leak_factors(rec_mode, leak):
    p = make_inputs(3, 40, 6, 2, rec=rec_mode != "ff", noise=True, leak=leak, seed=11)
    out, _ = both_backends(p, 2.0**16, "step_pwl", True)
    (_, got, g_nb), (_, want, g_torch) = out["numba"], out["torch"]
    assert torch.equal(got["spikes"], want["spikes"])
    assert (got["spikes"] > 0).any()
    for k in ("vmem", "isyn", "irec"):
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-6)
    assert_grads_close(g_nb, g_torch, rtol=1e-5)


@pytest.mark.parametrize("record", [False, True], ids=["norec", "record"])
@pytest.mark.parametrize("surrogate", ["step_pwl", "periodic_exponential"])
@pytest.mark.parametrize("rec_mode", REC_MODES, indirect=True)
def test_numba_float32(rec_mode, surrogate, record):
    p = make_inputs(3, 37, 6, 2, rec=rec_mode != "ff", noise=True, dtype=F32, seed=5)
    out, weights = both_backends(p, 3.0, surrogate, record)
    (_, got, g_nb), (_, want, g_torch) = out["numba"], out["torch"]
    assert got["spikes"].dtype == F32
    assert torch.equal(got["spikes"], want["spikes"])  # these inputs: no spike flips
    if record:
        for k in ("vmem", "isyn", "irec"):
            torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-5)
    assert_grads_close(g_nb, g_torch, rtol=1e-4, atol_scale=1e-2)  # float32 cancellation
    if rec_mode == "ff":  # same operations in the same order: bitwise equal to the reference
        ref, _ = run_reference(p, 3.0, surrogate, record, weights)
        keys = TRACES[:3] if record else ("spikes",)
        for k in keys:
            assert torch.equal(got[k], ref[k]), k


# --------------------------------------------------------------------------- gradient needs
@pytest.mark.parametrize("rec_mode", REC_MODES[1:], indirect=True)
@pytest.mark.parametrize(
    "wanted", [("x",), ("w_rec",), ("alpha", "threshold"), ("beta",), ("spikes0", "bias")]
)
def test_gradient_only_where_required(rec_mode, wanted):
    p = make_inputs(2, 9, 4, 2, rec=True, noise=False, grad=False)
    for k in wanted:
        p[k].requires_grad_()
    out, _ = both_backends(p, 2.0**16, "step_pwl", False)
    (_, _, g_nb), (_, _, g_torch) = out["numba"], out["torch"]
    assert set(g_nb) == set(wanted)
    assert_grads_close(g_nb, g_torch, rtol=1e-5)


def test_no_input_requires_grad_and_inference_mode():
    p = make_inputs(2, 6, 4, 1, rec=True, noise=True, grad=False)
    res = lif_scan(**p, config=LIFConfig(backend="numba"), record=True)
    assert not res.spikes.requires_grad
    with torch.inference_mode():
        again = lif_scan(**p, config=LIFConfig(backend="numba"), record=True)
    assert torch.equal(res.spikes, again.spikes)
    assert all(getattr(res, k).is_contiguous() for k in TRACES)


def test_zero_length_sequence_with_numba():
    p = make_inputs(2, 0, 3, 2, rec=True, noise=False)
    res = lif_scan(**p, config=LIFConfig(backend="numba"))
    assert res.spikes.shape == (2, 0, 3)
    assert torch.equal(res.vmem_last, p["vmem0"].detach())


@pytest.mark.parametrize("rec_mode", REC_MODES, indirect=True)
def test_thread_chunks_give_the_same_results(rec_mode, monkeypatch):
    """Several batch chunks (threads) give the spikes and gradients of one chunk."""
    monkeypatch.setattr(nb, "MIN_WORK_PER_THREAD", 1)  # threads even for this tiny layer
    p = make_inputs(9, 20, 5, 2, rec=rec_mode != "ff", noise=True, seed=3)
    weights = loss_weights({k: p["x"].shape[:3] for k in TRACES}, F64)
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 3):
            torch.set_num_threads(n)
            results.append(run(p, LIFConfig(backend="numba"), False, weights))
    finally:
        torch.set_num_threads(threads)
    (_, one, g_one), (_, many, g_many) = results
    assert torch.equal(one["spikes"], many["spikes"])
    assert_grads_close(g_many, g_one, rtol=1e-12)


def test_small_calls_run_on_fewer_threads():
    """Threads only for calls with at least MIN_WORK_PER_THREAD neuron-steps per thread."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        assert nb._chunks(16, nb.MIN_WORK_PER_THREAD - 1) == [(0, 16)]
        assert nb._chunks(16, 2 * nb.MIN_WORK_PER_THREAD) == [(0, 8), (8, 16)]
        assert len(nb._chunks(16, 100 * nb.MIN_WORK_PER_THREAD)) == 4
        assert len(nb._chunks(3, 100 * nb.MIN_WORK_PER_THREAD)) == 3  # at most one per block
    finally:
        torch.set_num_threads(threads)


def test_w_rec_gradient_equals_the_sum_over_steps():
    """``Σ_b Σ_t s_{t-1}ᵀ λr_t`` (with ``s_{-1} = spikes0``) against the plain loop, and the
    gradient buffer it borrows comes back bitwise unchanged; one step and one row included."""
    gen = torch.Generator().manual_seed(3)
    for b, t in ((3, 7), (1, 5), (4, 1), (1, 1)):
        spikes = torch.randint(0, 3, (b, t, 5), generator=gen).double()
        spikes0 = torch.randint(0, 3, (b, 5), generator=gen).double()
        lam = torch.randn(b, t, 10, dtype=torch.float64, generator=gen)
        before = lam.clone()
        want = spikes0.t() @ lam[:, 0]
        for step in range(1, t):
            want = want + spikes[:, step - 1].t() @ lam[:, step]
        got = nb._w_rec_grad(spikes0, spikes, lam)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        assert torch.equal(lam, before)


# --------------------------------------------------------------------------- surrogates
def _surrogate_inputs(dtype):
    thr = torch.tensor([0.3, 1.0, 1.7], dtype=dtype)
    base = torch.linspace(-3.0, 6.0, 181, dtype=dtype)
    u = torch.cat([base, thr, 2 * thr, thr - 0.5, torch.tensor([0.0, -0.0, 1e-30], dtype=dtype)])
    return u[:, None].expand(-1, 3).reshape(-1), thr.repeat(u.numel())


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("max_spikes", [1.0, 3.0, 2.0**16])
def test_scalar_surrogates_match_the_torch_formulas(dtype, max_spikes):
    u, thr = _surrogate_inputs(dtype)
    scalar = np.float32 if dtype == F32 else np.float64
    window = 0.5
    want_s = spike_count(u, thr, max_spikes)
    want_pwl = step_pwl_grads(u, thr, window)
    want_pe = periodic_exponential_grads(u, thr, window, max_spikes)
    got_s, got_pwl, got_pe = [], ([], []), ([], [])
    for ui, ti in zip(u.tolist(), thr.tolist()):
        ui, ti = scalar(ui), scalar(ti)
        got_s.append(nb.spike_count_scalar(ui, ti, scalar(max_spikes)))
        for out, vals in (
            (got_pwl, nb.step_pwl_grads_scalar(ui, ti, scalar(window))),
            (
                got_pe,
                nb.periodic_exponential_grads_scalar(ui, ti, scalar(window), scalar(max_spikes)),
            ),
        ):
            out[0].append(vals[0])
            out[1].append(vals[1])
    assert torch.equal(torch.tensor(got_s, dtype=dtype), want_s)
    for got, want in ((got_pwl, want_pwl), (got_pe, want_pe)):
        for g, w in zip(got, want):
            torch.testing.assert_close(torch.tensor(g, dtype=dtype), w, rtol=2e-6, atol=0)


# --------------------------------------------------------------------------- dispatch
def _spy(monkeypatch):
    calls = []
    real = nb.forward

    def forward(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(nb, "forward", forward)
    return calls


def test_auto_uses_numba_for_float_cpu(monkeypatch):
    calls = _spy(monkeypatch)
    p = make_inputs(2, 4, 3, 1, rec=True, noise=False)
    lif_scan(**p, config=LIFConfig())
    assert calls == [1]
    lif_scan(**p, config=LIFConfig(backend="torch"))
    assert calls == [1]


def test_auto_keeps_the_integer_mode_on_torch(monkeypatch):
    calls = _spy(monkeypatch)
    p = make_inputs(1, 4, 3, 1, rec=False, noise=False, grad=False)
    p["x"] = p["x"].round()
    sem = IntegerSemantics(torch.ones(3, dtype=torch.long), torch.ones(3, 1, dtype=torch.long))
    lif_scan(**p, config=LIFConfig(integer=sem))
    assert calls == []
    with pytest.raises(ValueError, match="integer mode"):
        lif_scan(**p, config=LIFConfig(integer=sem, backend="numba"))


def test_backend_selection_rules(monkeypatch):
    x = torch.zeros(1, 2, 3, 1)
    assert lif_module._use_numba(LIFConfig(), x)
    assert not lif_module._use_numba(LIFConfig(backend="torch"), x)
    assert not lif_module._use_numba(LIFConfig(), x.to(torch.float16))
    assert not lif_module._use_numba(LIFConfig(), torch.zeros(1, 2, 3, 1, device="meta"))
    with pytest.raises(ValueError, match="float32 and float64"):
        lif_module._use_numba(LIFConfig(backend="numba"), x.to(torch.bfloat16))
    with pytest.raises(ValueError, match="CPU only"):
        lif_module._use_numba(LIFConfig(backend="numba"), x.to("meta"))
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert not lif_module._use_numba(LIFConfig(), x)
    with pytest.raises(ValueError, match="torch.compile"):
        lif_module._use_numba(LIFConfig(backend="numba"), x)


def test_missing_numba(monkeypatch):
    monkeypatch.setattr(lif_module, "_numba_module", lambda: None)
    p = make_inputs(1, 3, 2, 1, rec=False, noise=False)
    res = lif_scan(**p, config=LIFConfig())  # auto falls back to torch
    assert res.spikes.shape == (1, 3, 2)
    with pytest.raises(ValueError, match="pip install numba"):
        lif_scan(**p, config=LIFConfig(backend="numba"))


@pytest.mark.parametrize("rec_mode", REC_MODES, indirect=True)
def test_states_decaying_below_the_normal_range_are_flushed_to_zero(rec_mode):
    """Slow leaks drive silent neurons' states into float32 subnormals, where the CPU is tens
    of times slower: the compiled loops flush them to zero (the torch backend keeps them)."""
    b, t, n = 3, 120, 5
    tiny = torch.finfo(F32).tiny  # the smallest normal float32, 1.18e-38

    def inputs():
        return {
            "x": torch.zeros(b, t, n, 1, requires_grad=True),
            "vmem0": torch.full((b, n), 1e-30),
            "isyn0": torch.full((b, n, 1), 1e-30),
            "spikes0": torch.zeros(b, n),
            "alpha": torch.full((n,), 0.5, requires_grad=True),
            "beta": torch.full((n, 1), 0.5, requires_grad=True),
            "bias": torch.zeros(n, requires_grad=True),
            "threshold": torch.ones(n, requires_grad=True),
            "w_rec": None if rec_mode == "ff" else torch.zeros(n, n, requires_grad=True),
            "noise": None,
        }

    results = {}
    for backend in ("torch", "numba"):
        p = inputs()
        res = lif_scan(**p, config=LIFConfig(backend=backend), record=True)
        (res.vmem.sum() + res.isyn.sum() + res.spikes.sum()).backward()
        results[backend] = (res, p["x"].grad, p["alpha"].grad)
    (ref, gx_ref, ga_ref), (got, gx, ga) = results["torch"], results["numba"]

    def subnormal(v):
        return (v != 0) & (v.abs() < tiny)

    assert subnormal(ref.vmem).any() and subnormal(ref.isyn).any()  # the case is exercised
    assert not subnormal(got.vmem).any() and not subnormal(got.isyn).any()
    assert (got.vmem[:, -1] == 0).all() and (got.vmem[:, :5] > 1e-32).all()
    assert torch.equal(got.spikes, ref.spikes)
    torch.testing.assert_close(got.vmem, ref.vmem, rtol=0, atol=tiny)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-5, atol=1e-30)
    torch.testing.assert_close(ga, ga_ref, rtol=1e-5, atol=1e-30)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prefetch_hints_leave_data_unchanged_even_past_the_end(dtype):
    """The prefetch intrinsic compiles for both float types and is only a hint: the data and
    the results do not change, and hints past the end of the array do not fault."""
    from numba import njit

    @njit
    def touch(a):
        total = 0.0
        for i in range(a.size):
            nb._prefetch_row(a, i + 64, 16, False)
            nb._prefetch_row(a, i + 64, 16, True)
            total += a.flat[i]
        return total

    a = np.arange(40, dtype=dtype).reshape(2, 4, 5)
    before = a.copy()
    assert touch(a) == float(before.sum())
    np.testing.assert_array_equal(a, before)


def test_recurrent_product_mode_thresholds(monkeypatch):
    """Compiled per-step products from ``BLAS_STEP_MIN_MACS`` multiply-adds per step; where
    torch exports no ``?gemm`` (Python loop of ``torch.mm``) from ``PY_BLAS_STEP_MIN_MACS``."""
    w = torch.zeros(64, 64)
    assert nb._rec_mode(None, 32, torch.float32) == 0
    small, large = nb.BLAS_STEP_MIN_MACS // w.numel(), nb.PY_BLAS_STEP_MIN_MACS // w.numel()
    if nb._gemm_routine(torch.float32) is not None:
        assert nb._rec_mode(w, small, torch.float32) == 2
        assert nb._rec_mode(w, small - 1, torch.float32) == 1
    monkeypatch.setattr(nb, "_gemm_routine", lambda dt: None)
    assert nb._rec_mode(w, large - 1, torch.float32) == 1
    assert nb._rec_mode(w, large, torch.float32) == 2
