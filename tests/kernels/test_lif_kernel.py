"""The fused LIF kernel against the plain-autograd reference (tests/kernels/lif_reference.py)."""

from __future__ import annotations

import importlib
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from lif_inputs import make_inputs
from lif_inputs import make_integer_inputs as _int_inputs
from lif_reference import (
    exp_syn_reference,
    lif_integer_reference,
    lif_reference,
)

import snnqat.kernels as kernels
from snnqat.kernels import (
    IntegerSemantics,
    LIFConfig,
    LIFResult,
    bitshift_decay,
    exp_syn_scan,
    lif_scan,
)

F64 = torch.float64
TRACES = ("spikes", "vmem", "isyn", "irec")
INPUTS = ("x", "vmem0", "isyn0", "spikes0", "alpha", "beta", "bias", "threshold", "w_rec", "noise")


def weighted_loss(traces, weights, record):
    """A loss on the spikes, and on the recorded vmem/isyn/irec traces when recording."""
    keys = TRACES if record else ("spikes",)
    return sum((traces[k] * weights[k]).sum() for k in keys)


def run_both(p, config, record, ref_kwargs):
    res = lif_scan(**p, config=config, record=record)
    ref = lif_reference(**p, **ref_kwargs)
    gen = torch.Generator().manual_seed(123)
    weights = {k: torch.randn(ref[k].shape, generator=gen, dtype=ref[k].dtype) for k in TRACES}
    got = {k: getattr(res, k) for k in TRACES}
    names = [k for k in INPUTS if p[k] is not None and p[k].requires_grad]
    leaves = [p[k] for k in names]
    g_res = torch.autograd.grad(weighted_loss(got, weights, record), leaves, allow_unused=True)
    g_ref = torch.autograd.grad(weighted_loss(ref, weights, record), leaves, allow_unused=True)
    return res, ref, dict(zip(names, g_res)), dict(zip(names, g_ref))


def assert_grads_close(g_res, g_ref, rtol=1e-5):
    for name, expected in g_ref.items():
        got = g_res[name]
        if expected is None:
            assert got is None or not got.any(), name
            continue
        assert got is not None, name
        scale = expected.abs().max().item()
        torch.testing.assert_close(
            got,
            expected,
            rtol=rtol,
            atol=rtol * 1e-3 * max(scale, 1.0),
            msg=lambda m, name=name: f"{name}: {m}",
        )


# --------------------------------------------------------------------------- the grid
@pytest.mark.parametrize("record", [False, True], ids=["norec", "record"])
@pytest.mark.parametrize("surrogate", ["step_pwl", "periodic_exponential"])
@pytest.mark.parametrize("max_spikes", [1.0, 3.0, 2.0**16], ids=["max1", "max3", "maxdef"])
@pytest.mark.parametrize("t", [1, 7, 50], ids=lambda v: f"T{v}")
@pytest.mark.parametrize("b", [1, 4], ids=lambda v: f"B{v}")
@pytest.mark.parametrize("s", [1, 2, 3], ids=lambda v: f"S{v}")
@pytest.mark.parametrize("rec", [False, True], ids=["ff", "rec"])
def test_fused_matches_reference(rec, s, b, t, max_spikes, surrogate, record):
    n = 5
    p = make_inputs(b, t, n, s, rec=rec, noise=record, seed=hash((rec, s, b, t)) % 2**31)
    cfg = LIFConfig(max_spikes_per_dt=max_spikes, surrogate=surrogate)
    ref_kwargs = {"max_spikes": max_spikes, "surrogate": surrogate}
    res, ref, g_res, g_ref = run_both(p, cfg, record, ref_kwargs)

    assert torch.equal(res.spikes, ref["spikes"])
    assert res.spikes.max() <= max_spikes
    if b * t >= 28:  # the inputs make many spikes, multi-spikes, and hit the cap
        assert (res.spikes > 0).float().mean() > 0.2
        assert (res.spikes >= min(2.0, max_spikes)).any()
        assert max_spikes > 3 or (res.spikes == max_spikes).any()
    if record:
        for k in ("vmem", "isyn", "irec"):
            torch.testing.assert_close(getattr(res, k), ref[k], rtol=0, atol=1e-6)
    else:
        assert res.vmem is None and res.isyn is None and res.irec is None
    torch.testing.assert_close(res.vmem_last, ref["vmem"][:, -1], rtol=0, atol=1e-6)
    torch.testing.assert_close(res.isyn_last, ref["isyn"][:, -1], rtol=0, atol=1e-6)
    assert torch.equal(res.spikes_last, ref["spikes"][:, -1])
    assert_grads_close(g_res, g_ref)


def test_float32_forward_is_bitwise_equal_to_reference():
    p = make_inputs(4, 30, 6, 2, dtype=torch.float32, seed=3)
    cfg = LIFConfig(max_spikes_per_dt=3)
    res, ref, g_res, g_ref = run_both(p, cfg, True, {"max_spikes": 3.0})
    assert res.spikes.dtype == torch.float32 and res.vmem.dtype == torch.float32
    for k in TRACES:  # same operations in the same order: bitwise equal
        assert torch.equal(getattr(res, k), ref[k]), k
    assert_grads_close(g_res, g_ref, rtol=1e-4)


def test_results_shapes_and_detached_last_states():
    p = make_inputs(3, 4, 5, 2)
    res = lif_scan(**p, config=LIFConfig(), record=True)
    assert isinstance(res, LIFResult)
    assert res.spikes.shape == res.vmem.shape == (3, 4, 5)
    assert res.isyn.shape == res.irec.shape == (3, 4, 5, 2)
    assert res.vmem_last.shape == res.spikes_last.shape == (3, 5)
    assert res.isyn_last.shape == (3, 5, 2)
    for last in (res.vmem_last, res.isyn_last, res.spikes_last):
        assert not last.requires_grad
    # the last states are independent tensors: updating them in place breaks nothing
    res.spikes_last.add_(1)
    res.vmem_last.zero_()
    for trace in (res.spikes, res.vmem, res.isyn, res.irec):
        assert trace.is_contiguous() and trace._base is None
    res.irec.mul_(1.0)  # in-place use of a recorded trace is allowed
    (res.spikes.sum() + res.irec.sum()).backward()
    assert p["x"].grad is not None


@pytest.mark.parametrize("backend", ["torch", "numba"])
@pytest.mark.parametrize("rec", [False, True])
def test_grad_last_sends_gradients_through_the_final_states(backend, rec):
    """With ``grad_last`` the final states are the traces' last steps, differentiable: a loss
    on them has the gradients of the same loss on the recorded traces' last steps."""
    if backend == "numba":
        pytest.importorskip("numba")
    p = make_inputs(3, 9, 4, 2, rec=rec)
    gen = torch.Generator().manual_seed(7)
    w_v, w_i, w_s = (torch.randn(*shape, generator=gen, dtype=F64) for shape in
                     ((3, 4), (3, 2, 4), (3, 4)))  # fmt: skip
    w_i = w_i.transpose(1, 2)  # (3, 4, 2), not contiguous: the kernels must copy it
    leaves = [p[k] for k in INPUTS if p[k] is not None and p[k].requires_grad]

    def grads(res, last):
        v, i, s = last
        loss = (v * w_v).sum() + (i * w_i).sum() + (s * w_s).sum() + res.spikes.sum()
        return torch.autograd.grad(loss, leaves, allow_unused=True)

    res = lif_scan(**p, config=LIFConfig(backend=backend, grad_last=True), record=False)
    got = grads(res, (res.vmem_last, res.isyn_last, res.spikes_last))
    ref = lif_scan(**p, config=LIFConfig(backend=backend), record=True)
    want = grads(ref, (ref.vmem[:, -1], ref.isyn[:, -1], ref.spikes[:, -1]))
    assert torch.equal(res.spikes, ref.spikes)
    for g, r in zip(got, want, strict=True):
        if r is None:
            assert g is None or not g.any()
        else:
            torch.testing.assert_close(g, r, rtol=1e-12, atol=1e-12)
    assert any(r is not None and r.any() for r in want)


def test_no_recurrence_equals_zero_recurrent_weights():
    p = make_inputs(2, 20, 4, 2, rec=False)
    zeros = torch.zeros(4, 8, dtype=F64)
    a = lif_scan(**p, config=LIFConfig(), record=True)
    b = lif_scan(**{**p, "w_rec": zeros}, config=LIFConfig(), record=True)
    for k in TRACES:
        assert torch.equal(getattr(a, k), getattr(b, k))
    assert not a.irec.any()


def test_gradient_only_where_required():
    p = make_inputs(2, 10, 4, 2, grad=False)
    p["x"].requires_grad_()
    p["threshold"].requires_grad_()
    res = lif_scan(**p, config=LIFConfig(), record=True)
    (res.spikes.sum() + res.vmem.sum()).backward()
    assert p["x"].grad is not None and p["threshold"].grad is not None
    for k in ("vmem0", "isyn0", "spikes0", "alpha", "beta", "bias", "w_rec", "noise"):
        assert p[k].grad is None


def test_no_input_requires_grad():
    p = make_inputs(2, 5, 3, 1, grad=False)
    res = lif_scan(**p, config=LIFConfig(), record=True)
    assert not res.spikes.requires_grad and not res.vmem.requires_grad


def test_zero_length_sequence_passes_the_state_through():
    p = make_inputs(2, 0, 3, 2)
    res = lif_scan(**p, config=LIFConfig(), record=True)
    assert res.spikes.shape == (2, 0, 3) and res.isyn.shape == (2, 0, 3, 2)
    assert torch.equal(res.vmem_last, p["vmem0"].detach())
    assert torch.equal(res.isyn_last, p["isyn0"].detach())


def test_threshold_is_kept_positive_straight_through():
    p = make_inputs(2, 10, 3, 1)
    with torch.no_grad():
        p["threshold"][0] = 0.0
        p["threshold"][1] = -1.0
    res = lif_scan(**p, config=LIFConfig(max_spikes_per_dt=31), record=True)
    assert torch.isfinite(res.vmem).all()
    assert ((res.spikes >= 0) & (res.spikes <= 31)).all()
    res.spikes.sum().backward()
    assert torch.isfinite(p["threshold"].grad).all()


# --------------------------------------------------------------------------- hand-computed
def test_hand_computed_traces():
    alpha, beta = math.exp(-1 / 20), math.exp(-1 / 10)
    x = torch.zeros(1, 2, 1, 1, dtype=F64)
    x[0, 0] = 1.0
    z = torch.zeros(1, 1, dtype=F64)
    res = lif_scan(
        x, z, z.view(1, 1, 1), z, torch.tensor([alpha], dtype=F64),
        torch.tensor([[beta]], dtype=F64), torch.zeros(1, dtype=F64),
        torch.tensor([1e6], dtype=F64), None, None, LIFConfig(), record=True,
    )  # fmt: skip
    e = math.exp
    torch.testing.assert_close(res.isyn.flatten(), torch.tensor([e(-0.1), e(-0.2)], dtype=F64))
    expected_v = torch.tensor([e(-0.1), e(-0.05) * e(-0.1) + e(-0.2)], dtype=F64)
    torch.testing.assert_close(res.vmem.flatten(), expected_v)
    assert not res.spikes.any()


@pytest.mark.parametrize("max_spikes, spikes, vmem", [(2.0**16, 9, 0.5123), (3, 3, 6.5123)])
def test_multi_spike_subtractive_reset(max_spikes, spikes, vmem):
    decay = torch.tensor([math.exp(-0.05)], dtype=F64)
    x = torch.full((1, 1, 1, 1), 10.0, dtype=F64)
    z = torch.zeros(1, 1, dtype=F64)
    res = lif_scan(
        x, z, z.view(1, 1, 1), z, decay, decay.view(1, 1), torch.zeros(1, dtype=F64),
        torch.ones(1, dtype=F64), None, None, LIFConfig(max_spikes_per_dt=max_spikes),
        record=True,
    )  # fmt: skip
    assert res.spikes.item() == spikes
    assert res.vmem.item() == pytest.approx(vmem, abs=1e-4)


def test_negative_membrane_is_not_clamped():
    z = torch.zeros(1, 1, dtype=F64)
    res = lif_scan(
        torch.zeros(1, 1, 1, 1, dtype=F64), torch.full((1, 1), -2.0, dtype=F64),
        z.view(1, 1, 1), z, torch.tensor([math.exp(-0.05)], dtype=F64),
        torch.ones(1, 1, dtype=F64), torch.zeros(1, dtype=F64), torch.ones(1, dtype=F64),
        None, None, LIFConfig(), record=True,
    )  # fmt: skip
    assert res.vmem.item() == pytest.approx(-1.9025, abs=1e-4)


# --------------------------------------------------------------------------- integer mode


@pytest.mark.parametrize("max_spikes", [1, 31])
@pytest.mark.parametrize("s", [1, 2])
@pytest.mark.parametrize("rec", [False, True], ids=["ff", "rec"])
def test_integer_mode_matches_python_int_reference(rec, s, max_spikes):
    p, dash_mem, dash_syn = _int_inputs(2, 12, 4, s, rec=rec, seed=7 * s + rec)
    cfg = LIFConfig(max_spikes_per_dt=max_spikes, integer=IntegerSemantics(dash_mem, dash_syn))
    res = lif_scan(**p, config=cfg, record=True)
    ref = lif_integer_reference(
        p["x"], p["vmem0"], p["isyn0"], p["spikes0"], dash_mem, dash_syn, p["bias"],
        p["threshold"], p["w_rec"], max_spikes=max_spikes,
    )  # fmt: skip
    for k in TRACES:
        got = getattr(res, k)
        assert torch.equal(got, got.round()), f"{k} is not integer-valued"
        assert torch.equal(got, ref[k]), k
    assert (res.isyn.abs() > 16000).any()  # the saturating inputs took effect
    assert res.vmem.max() <= 32767 and res.vmem.min() >= -32768


@pytest.mark.parametrize("rec", [False, True], ids=["ff", "rec"])
def test_integer_mode_gradients_are_the_straight_through_float_ones(rec):
    p, dash_mem, dash_syn = _int_inputs(2, 15, 3, 2, rec=rec, seed=11)
    for k in ("x", "alpha", "beta", "bias", "threshold", "w_rec"):
        if p[k] is not None:
            p[k].requires_grad_()
    sem = IntegerSemantics(dash_mem, dash_syn)
    integer = (dash_mem.to(F64), dash_syn.to(F64), sem.state_min, sem.state_max)
    res, ref, g_res, g_ref = run_both(
        p,
        LIFConfig(max_spikes_per_dt=31, integer=sem),
        True,
        {"max_spikes": 31.0, "integer": integer},
    )
    for k in TRACES:
        assert torch.equal(getattr(res, k), ref[k]), k
    assert_grads_close(g_res, g_ref)


def _one_int_step(vmem0, x, dash_mem, dash_syn, threshold=40000.0):
    n = len(vmem0)
    tensor = lambda v: torch.tensor(v, dtype=F64)
    dm, ds = torch.tensor(dash_mem), torch.tensor(dash_syn).view(n, 1)
    return lif_scan(
        tensor(x).view(1, 1, n, 1), tensor(vmem0).view(1, n), torch.zeros(1, n, 1, dtype=F64),
        torch.zeros(1, n, dtype=F64), 1 - 2.0 ** -dm.to(F64), 1 - 2.0 ** -ds.to(F64),
        torch.zeros(n, dtype=F64), torch.full((n,), threshold, dtype=F64), None, None,
        LIFConfig(integer=IntegerSemantics(dm, ds)), record=True,
    )  # fmt: skip


def test_integer_bitshift_decay_hand_computed():
    res = _one_int_step([5.0, 1.0, -1.0, -5.0, 0.0], [0.0] * 5, [1, 4, 4, 1, 3], [0] * 5)
    assert res.vmem.flatten().tolist() == [3.0, 0.0, 0.0, -2.0, 0.0]


def test_integer_saturation_hand_computed():
    res = _one_int_step([1000.0, -1000.0], [40000.0, -40000.0], [4, 4], [15, 15])
    # isyn: sat(±40000) = 32767 / -32768, then one decay step of minimum size 1
    assert res.isyn.flatten().tolist() == [32766.0, -32767.0]
    # dv = -dec(±1000, 4) + isyn = -62 + 32766 / 63 - 32767; u = sat(vmem + dv)
    assert res.vmem.flatten().tolist() == [32767.0, -32768.0]
    spiking = _one_int_step([1000.0], [40000.0], [4], [15], threshold=32767.0)
    assert spiking.spikes.item() == 1 and spiking.vmem.item() == 0


def test_bitshift_decay_examples():
    v = torch.tensor([5.0, 1.0, -1.0, -5.0, 0.0, 32767.0])
    dash = torch.tensor([1, 4, 4, 1, 4, 15])
    assert bitshift_decay(v, dash).tolist() == [3.0, 0.0, 0.0, -2.0, 0.0, 32766.0]
    assert bitshift_decay(torch.tensor([5, -5]), 1).tolist() == [3, -2]


@settings(max_examples=300, deadline=None)
@given(v=st.integers(-32768, 32767), dash=st.integers(0, 15))
def test_bitshift_decay_equals_integer_shift(v, dash):
    step = v >> dash
    if step == 0 and v != 0:
        step = 1 if v > 0 else -1
    got = bitshift_decay(torch.tensor([float(v)], dtype=F64), torch.tensor([dash]))
    assert got.item() == v - step


# --------------------------------------------------------------------------- config & errors
def test_config_validates_and_is_hashable():
    cfg = LIFConfig(max_spikes_per_dt=torch.tensor(31.0), learning_window=torch.tensor(0.25))
    assert cfg.max_spikes_per_dt == 31.0 and isinstance(cfg.max_spikes_per_dt, float)
    assert hash(cfg) == hash(LIFConfig(max_spikes_per_dt=31, learning_window=0.25))
    sem = IntegerSemantics(torch.zeros(2), torch.zeros(2, 1))
    assert hash(LIFConfig(integer=sem)) == hash(LIFConfig(integer=sem))
    for bad in ({"surrogate": "sigmoid"}, {"backend": "cuda"}, {"max_spikes_per_dt": 0}):
        with pytest.raises(ValueError, match="expected"):
            LIFConfig(**bad)
    with pytest.raises(ValueError, match="state_min < state_max"):
        IntegerSemantics(torch.zeros(2), torch.zeros(2, 1), state_min=5, state_max=5)


@pytest.mark.parametrize(
    "name, bad",
    [
        ("alpha", torch.ones(3)),
        ("beta", torch.ones(4)),
        ("threshold", torch.ones(1, 4)),
        ("w_rec", torch.ones(4, 4)),
        ("noise", torch.ones(2, 5, 4, 1)),
        ("vmem0", torch.ones(4)),
        ("isyn0", torch.ones(2, 4)),
    ],
)
def test_shape_mismatch_raises_with_expected_and_got(name, bad):
    p = make_inputs(2, 5, 4, 2, grad=False)
    p[name] = bad.to(F64)
    with pytest.raises(ValueError, match=rf"`{name}`[\s\S]*expected[\s\S]*got"):
        lif_scan(**p, config=LIFConfig())


def test_input_must_be_four_dimensional():
    p = make_inputs(2, 5, 4, 1, grad=False)
    p["x"] = p["x"][..., 0]
    with pytest.raises(ValueError, match=r"\(B, T, N, S\)[\s\S]*got"):
        lif_scan(**p, config=LIFConfig())


def test_integer_dash_shapes_are_checked():
    p = make_inputs(2, 5, 4, 2, grad=False)
    sem = IntegerSemantics(torch.zeros(4), torch.zeros(4, 1))
    with pytest.raises(ValueError, match="dash_syn"):
        lif_scan(**p, config=LIFConfig(integer=sem))


# --------------------------------------------------------------------------- exp synapse
@pytest.mark.parametrize("t", [1, 9, 40])
def test_exp_syn_matches_reference(t):
    gen = torch.Generator().manual_seed(t)
    x = torch.randn(3, t, 5, generator=gen, dtype=F64, requires_grad=True)
    i0 = torch.randn(3, 5, generator=gen, dtype=F64, requires_grad=True)
    beta = torch.rand(5, generator=gen, dtype=F64).requires_grad_()
    w = torch.randn(3, t, 5, generator=gen, dtype=F64)
    got, ref = exp_syn_scan(x, i0, beta), exp_syn_reference(x, i0, beta)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)
    g_got = torch.autograd.grad((got * w).sum(), (x, i0, beta))
    g_ref = torch.autograd.grad((ref * w).sum(), (x, i0, beta))
    for a, b in zip(g_got, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_exp_syn_hand_computed_and_errors():
    x = torch.zeros(1, 3, 1, dtype=F64)
    x[0, 0] = 1.0
    out = exp_syn_scan(x, torch.zeros(1, 1, dtype=F64), torch.tensor([math.exp(-0.1)], dtype=F64))
    expected = torch.tensor([math.exp(-0.1 * k) for k in (1, 2, 3)], dtype=F64)
    torch.testing.assert_close(out.flatten(), expected)
    with pytest.raises(ValueError, match=r"`beta`[\s\S]*expected[\s\S]*got"):
        exp_syn_scan(x, torch.zeros(1, 1), torch.ones(2))
    with pytest.raises(ValueError, match="B, T, N"):
        exp_syn_scan(x[0], torch.zeros(1, 1), torch.ones(1))


def test_public_names():
    for name in kernels.__all__:
        assert getattr(kernels, name) is not None


# --------------------------------------------------------------------------- torch backend
@pytest.mark.parametrize("record", [False, True], ids=["norec", "record"])
@pytest.mark.parametrize("s", [1, 2], ids=lambda v: f"S{v}")
@pytest.mark.parametrize("rec", [False, True], ids=["ff", "rec"])
def test_torch_backend_sums_in_time_chunks(rec, s, record, monkeypatch):
    """The parameter sums after the reverse loop, split into many uneven time chunks, give
    the reference's gradients (every trace's gradient reaches the loss when recording)."""
    lif_module = importlib.import_module("snnqat.kernels.lif")
    p = make_inputs(3, 23, 4, s, rec=rec, noise=True, seed=11 + s)
    monkeypatch.setattr(lif_module, "_CHUNK_ELEMENTS", 3 * 4 * s * 5)  # 5 steps per chunk
    monkeypatch.setattr(lif_module, "_MAX_CHUNKS", 100)
    assert lif_module._time_chunks(23, 3 * 4 * s) == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 23)]
    cfg = LIFConfig(max_spikes_per_dt=3.0, backend="torch")
    res, ref, g_res, g_ref = run_both(p, cfg, record, {"max_spikes": 3.0})
    assert torch.equal(res.spikes, ref["spikes"])
    assert set(g_res) == set(INPUTS) - (set() if rec else {"w_rec"})
    assert_grads_close(g_res, g_ref)


def _peak_bytes(fn) -> int:
    """Peak of the live CPU tensor bytes that ``fn`` allocates (torch profiler records)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]"
    )
    total = peak = 0
    for _, nbytes in events:
        total += nbytes
        peak = max(peak, total)
    return peak


def test_torch_backend_backward_keeps_three_adjoints_per_step(monkeypatch):
    """The backward pass of the torch loops holds the surrogate derivative and three per-step
    adjoints of the sequence's size (λu, λs, λi -> λa) and then small time chunks: about
    4 "units" of ``B·T·N`` values (it held 12 before the chunked sums). The chunks are set to
    32 steps here (8 chunks); by default they hold 2^20 values."""
    lif_module = importlib.import_module("snnqat.kernels.lif")
    b, t, n = 16, 256, 64
    monkeypatch.setattr(lif_module, "_CHUNK_ELEMENTS", b * n * 32)
    p = make_inputs(b, t, n, 1, rec=False, noise=False, dtype=torch.float32)
    res = lif_scan(**p, config=LIFConfig(max_spikes_per_dt=3.0, backend="torch"))
    g = torch.randn(b, t, n)
    unit = b * t * n * 4
    peak = _peak_bytes(lambda: res.spikes.backward(g))
    assert 3 * unit < peak <= 4.25 * unit, peak / unit
    assert p["threshold"].grad is not None and p["beta"].grad is not None
