"""LIFTorch: hand-computed numbers (api.md 3.5), gradients of every family, validation."""

import math

import pytest
import torch

from snnqat.kernels.surrogates import PeriodicExponential, StepPWL
from snnqat.nn.modules import ExpSynTorch, LIFTorch

E = math.exp


def impulse(n_in, t=3, value=1.0, channel=0):
    x = torch.zeros(1, t, n_in)
    x[0, 0, channel] = value
    return x


def run(lif, x):
    return lif(x, record=True)


@pytest.mark.parametrize(
    ("kwargs", "isyn", "vmem"),
    [
        (dict(tau_mem=0.02, tau_syn=0.01), [E(-0.1), E(-0.2)], [E(-0.1), E(-0.05 - 0.1) + E(-0.2)]),
        (dict(leak_mode="decays", alpha=0.5, beta=0.25), [0.25, 0.0625], [0.25, 0.1875]),
        (dict(leak_mode="bitshifts", dash_mem=1.0, dash_syn=2.0), [0.75, 0.5625], [0.75, 0.9375]),
    ],
)
def test_hand_computed_leak_modes(kwargs, isyn, vmem):
    lif = LIFTorch(1, threshold=100.0, **kwargs)
    _, _, rec = run(lif, impulse(1))
    assert rec["isyn"][0, :2, 0, 0].tolist() == pytest.approx(isyn, rel=1e-6)
    assert rec["vmem"][0, :2, 0].tolist() == pytest.approx(vmem, rel=1e-6)


def test_multi_spike_and_subtractive_reset():
    lif = LIFTorch(1, tau_mem=0.02, tau_syn=0.02)
    spikes, _, rec = run(lif, impulse(1, t=1, value=10.0))
    assert spikes.item() == 9.0  # vmem = 10 e^-0.05 = 9.512 -> 9 spikes
    assert rec["vmem"].item() == pytest.approx(10 * E(-0.05) - 9, rel=1e-5)


def test_max_spikes_per_dt_caps_and_is_not_shared():
    a, b = LIFTorch(1, max_spikes_per_dt=3), LIFTorch(1)
    spikes, _, _ = a(impulse(1, t=1, value=10.0))
    assert spikes.item() == 3.0
    assert a.max_spikes_per_dt == 3.0 and b.max_spikes_per_dt == 2.0**16


def test_recurrence_hand_computed():
    w_rec = torch.tensor([[0.0, 2.0], [0.0, 0.0]])
    lif = LIFTorch(2, leak_mode="decays", alpha=0.5, beta=0.5, has_rec=True, w_rec=w_rec)
    spikes, _, rec = run(lif, impulse(2, t=2, value=4.0))
    assert spikes[0].tolist() == [[2.0, 0.0], [1.0, 2.0]]
    assert rec["irec"][0, 1, :, 0].tolist() == [0.0, 4.0]
    assert rec["isyn"][0, 1, :, 0].tolist() == [1.0, 2.0]


def test_multiple_synapses():
    beta = torch.tensor([[0.5, 0.25], [0.5, 0.25]])
    lif = LIFTorch((4, 2), leak_mode="decays", alpha=0.5, beta=beta, threshold=10.0)
    x = torch.zeros(1, 1, 4)
    x[0, 0, :2] = 1.0  # channels 0, 1 feed synapses 0, 1 of neuron 0
    _, _, rec = run(lif, x)
    assert rec["isyn"][0, 0].tolist() == [[0.5, 0.25], [0.0, 0.0]]
    assert rec["vmem"][0, 0].tolist() == [0.75, 0.0]


def test_derived_leak_names_read_and_write():
    lif = LIFTorch(1)
    assert lif.alpha.item() == pytest.approx(E(-0.05))
    assert lif.dash_mem.item() == pytest.approx(-math.log2(1 - E(-0.05)))
    lif.alpha = torch.tensor([0.5])  # converts in the right direction: tau = -dt / ln(alpha)
    assert lif.tau_mem.item() == pytest.approx(-1e-3 / math.log(0.5))
    dec = LIFTorch(1, leak_mode="decays")
    dec.tau_mem = torch.tensor([0.02])
    assert dec.alpha.item() == pytest.approx(E(-0.05))
    bit = LIFTorch(1, leak_mode="bitshifts", dash_mem=4.0)
    assert bit.alpha.item() == pytest.approx(1 - 2**-4)
    assert "alpha" not in lif.__dict__


def reference_lif(x, lif):
    """A straightforward per-step autograd implementation of the LIF equations."""
    b, t, _ = x.shape
    n, s = lif.size_out, lif.n_synapses
    alpha, beta = lif.leak_factors()
    thr, bias = lif.threshold.expand(n), lif.bias.expand(n)
    w_rec = lif.w_rec if lif._has_rec else None
    window, cap = lif.learning_window, lif.max_spikes_per_dt
    fn = StepPWL if lif._surrogate == "step_pwl" else PeriodicExponential
    z = dict(dtype=x.dtype)
    v, i, spk = torch.zeros(b, n, **z), torch.zeros(b, n, s, **z), torch.zeros(b, n, **z)
    outs, vs = [], []
    for xt in x.reshape(b, t, n, s).unbind(1):
        i = i + xt
        if w_rec is not None:
            i = i + (spk @ w_rec).reshape(b, n, s)
        i = beta * i
        v = alpha * v + i.sum(-1) + bias
        spk = fn.apply(v, thr, window, cap)
        v = v - spk * thr
        outs.append(spk)
        vs.append(v)
    return torch.stack(outs, 1), torch.stack(vs, 1)


FAMILY_CASES = [
    dict(leak_mode="taus", tau_mem=0.01, tau_syn=0.005),
    dict(leak_mode="decays", alpha=0.8, beta=0.6),
    dict(leak_mode="bitshifts", dash_mem=2.0, dash_syn=1.5),
]


@pytest.mark.parametrize("leak", FAMILY_CASES)
@pytest.mark.parametrize("has_rec", [False, True])
@pytest.mark.parametrize("shape", [(3, 3), (6, 3)])
@pytest.mark.parametrize("surrogate", [StepPWL, PeriodicExponential])
def test_gradients_of_every_family_match_reference(leak, has_rec, shape, surrogate):
    torch.manual_seed(3)
    lif = LIFTorch(
        shape,
        has_rec=has_rec,
        bias=torch.rand(shape[1]) * 0.1,
        threshold=torch.rand(shape[1]) + 0.5,
        spike_generation_fn=surrogate,
        **leak,
    ).double()
    x = torch.rand(2, 20, shape[0], dtype=torch.float64) * 1.5
    weights = torch.rand(2, 20, shape[1], dtype=torch.float64)

    def grads(forward):
        lif.zero_grad()
        lif.reset_state()
        spikes, vmem = forward()
        ((spikes * weights).sum() + (vmem * weights).sum()).backward()
        return {k: p.grad.clone() for k, p in lif.named_parameters()}, spikes

    def fused():
        spikes, _, rec = lif(x, record=True)
        return spikes, rec["vmem"]

    got, s1 = grads(fused)
    want, s2 = grads(lambda: reference_lif(x, lif))
    assert torch.equal(s1, s2)
    assert s1.sum() > 10  # the case exercises spiking
    assert set(got) >= {"threshold", "bias"} and (not has_rec or "w_rec" in got)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-9, msg=k)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        (dict(shape=(7, 5)), ValueError, "Nin must be a multiple of Nout"),
        (dict(shape=(2, 2, 2)), ValueError, "expects N, \\(N,\\) or \\(Nin, Nout\\)"),
        (dict(shape=2, leak_mode="tau"), ValueError, "leak_mode: expected one of"),
        (dict(shape=2, alpha=torch.zeros(2)), ValueError, "do not belong to leak_mode='taus'"),
        (dict(shape=2, alpha=0.0), ValueError, "do not belong to leak_mode='taus'"),
        (dict(shape=2, w_rec=torch.zeros(2, 2)), ValueError, "has_rec=False"),
        (dict(shape=2, threshold=0.0), ValueError, "threshold: expected values > 0"),
        (dict(shape=2, tau_mem=-0.02), ValueError, "tau_mem: expected values > 0"),
        (dict(shape=2, bias=float("nan")), ValueError, "bias: expected finite values"),
        (dict(shape=2, dt=0.0), ValueError, "dt: expected a finite number > 0"),
        (dict(shape=2, noise_std=-1.0), ValueError, "noise_std: expected a float >= 0"),
        (dict(shape=2, leak_mode="decays", alpha=1.5), ValueError, "alpha: expected values in"),
        (dict(shape=2, spike_generation_fn=torch.relu), TypeError, "spike_generation_fn"),
        (dict(shape=2, bias="x"), TypeError, "bias: expected a number or a tensor"),
    ],
)
def test_lif_rejects_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        LIFTorch(**kwargs)


def test_lif_rejects_bad_shape_of_parameter_and_nothing_half_set():
    lif = LIFTorch(3)
    before = lif.threshold.clone()
    with pytest.raises(ValueError, match="must be of shape"):
        lif.threshold = torch.ones(4)
    assert torch.equal(lif.threshold, before)


def test_noise_only_when_requested():
    quiet, noisy = LIFTorch(2, threshold=100.0), LIFTorch(2, threshold=100.0, noise_std=1.0)
    x = torch.zeros(1, 5, 2)
    assert quiet(x, record=True)[2]["vmem"].abs().sum() == 0
    assert noisy(x, record=True)[2]["vmem"].abs().sum() > 0


def test_silent_input_keeps_state_finite():
    lif = LIFTorch(2)
    spikes, state, _ = lif(torch.zeros(1, 5, 2))
    assert spikes.sum() == 0 and all(torch.isfinite(v).all() for v in state.values())


def test_exp_syn_hand_computed_and_gradient():
    syn = ExpSynTorch(2, tau=torch.tensor([0.01, 0.02]))
    x = impulse(2, t=2)
    out, _, _ = syn(x)
    assert out[0, :, 0].tolist() == pytest.approx([E(-0.1), E(-0.2)], rel=1e-6)
    out.sum().backward()
    assert syn.tau.grad is not None and syn.tau.grad[0] > 0
    with pytest.raises(ValueError, match="tau: expected finite values > 0"):
        ExpSynTorch(2, tau=0.0)


def test_trained_threshold_stays_positive_decision_27():
    lif = LIFTorch(2)
    with torch.no_grad():
        lif.threshold.fill_(-1.0)  # as if an optimizer had pushed it below zero
    spikes, _, rec = lif(torch.ones(1, 4, 2), record=True)
    assert (spikes >= 0).all() and torch.isfinite(rec["vmem"]).all()


def test_no_work_that_does_not_depend_on_data_decision_29(monkeypatch):
    import snnqat.nn.modules.lif_torch as lif_mod

    seen, converts = [], []
    real_scan, real_convert = lif_mod.lif_scan, lif_mod._convert

    def spy_scan(*args, **kwargs):
        seen.append(args[8])  # w_rec
        return real_scan(*args, **kwargs)

    def spy_convert(*args, **kwargs):
        converts.append(1)
        return real_convert(*args, **kwargs)

    def no_randn(*args, **kwargs):
        raise AssertionError("noise drawn with noise_std == 0")

    monkeypatch.setattr(lif_mod, "lif_scan", spy_scan)
    monkeypatch.setattr(lif_mod, "_convert", spy_convert)
    monkeypatch.setattr(lif_mod.torch, "randn", no_randn)
    LIFTorch(3)(torch.ones(2, 100, 3))
    assert seen == [None]  # no recurrent product without recurrence
    assert len(converts) == 2  # alpha and beta, once per forward (not per step)


def test_transform_import_is_light_decision_28():
    import subprocess
    import sys

    code = (
        "import sys, snnqat.transform.torch_transform; "
        "print(sorted(m for m in ('scipy', 'sklearn', 'matplotlib', 'nir', 'pandas') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_leak_conversions_are_the_plain_formulas_bitwise(dtype):
    """``alpha = exp(-dt / tau)`` and ``tau = -dt / log(alpha)``: the values and gradients of
    the written-out formulas, bit for bit."""
    from snnqat.nn.modules import lif_torch as lif_mod

    dt = 1e-3
    gen = torch.Generator().manual_seed(0)
    tau = (torch.rand(257, generator=gen, dtype=dtype) * 0.1 + 1e-4).requires_grad_()
    got = lif_mod._convert(tau, "taus", "decay", dt)
    want = torch.exp(-dt / tau)
    assert torch.equal(got, want)
    (g_got,) = torch.autograd.grad(got.sum(), tau)
    (g_want,) = torch.autograd.grad(want.sum(), tau)
    assert torch.equal(g_got, g_want)
    decay = torch.rand(257, generator=gen, dtype=dtype) * 0.98 + 0.01
    assert torch.equal(lif_mod._convert(decay, "decays", "tau", dt), -dt / torch.log(decay))
