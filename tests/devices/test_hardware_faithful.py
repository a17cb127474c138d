"""hardware_faithful + export + XyloSim: what you train is what the chip computes."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

import snnqat.transform.torch_transform as tt
from snnqat.devices.xylo import XyloLimits, XyloSim, export, hardware_faithful
from snnqat.nn.combinators import Residual, Sequential
from snnqat.nn.modules import LIFTorch, LinearTorch


def random_lif(rng, n, *, n_syn=1, rec=False, out=False, saturating=False):
    mode = "bitshifts" if saturating else rng.choice(["taus", "decays", "bitshifts"])
    shape = (n * n_syn, n)
    kw = {}
    if mode == "taus":
        kw = dict(tau_mem=float(rng.uniform(2e-3, 5e-2)), tau_syn=float(rng.uniform(2e-3, 3e-2)))
    elif mode == "decays":
        kw = dict(alpha=float(rng.uniform(0.3, 0.99)), beta=float(rng.uniform(0.3, 0.99)))
    else:
        low = 10 if saturating else 1  # slow synapses integrate up to the rails
        kw = dict(
            dash_mem=torch.tensor(rng.integers(0, 16 if saturating else 7, n), dtype=torch.float32),
            dash_syn=torch.tensor(rng.integers(low, low + 6, (n, n_syn)), dtype=torch.float32),
        )
    thr_scale = 50.0 if saturating else 1.0
    threshold = torch.tensor(rng.uniform(0.3, 2.0, n) * thr_scale, dtype=torch.float32)
    bias = torch.tensor(rng.normal(0, 0.1, n) * thr_scale, dtype=torch.float32)
    return LIFTorch(shape, leak_mode=mode, threshold=threshold, bias=bias,
                    has_rec=rec and not out, **kw)  # fmt: skip


def random_net(rng, kind, saturating=False):
    nin, h, nout = int(rng.integers(2, 17)), int(rng.integers(3, 24)), int(rng.integers(1, 9))
    syn = int(rng.integers(1, 3))
    lin = lambda a, b: LinearTorch((a, b), weight=torch.tensor(rng.normal(0, 1, (a, b)),
                                                             dtype=torch.float32))  # fmt: skip
    layers = [lin(nin, h * syn), random_lif(rng, h, n_syn=syn, rec=kind != "ff",
                                           saturating=saturating)]  # fmt: skip
    if kind == "residual":
        layers.append(Residual(lin(h, h), random_lif(rng, h, rec=True, saturating=saturating)))
    if kind in ("deep", "residual"):
        h2 = int(rng.integers(3, 20))
        layers += [lin(h, h2), random_lif(rng, h2, saturating=saturating)]
        h = h2
    layers += [lin(h, nout), random_lif(rng, nout, out=True, saturating=saturating)]
    return Sequential(*layers), nin


def raster(rng, b, t, nin, max_count):
    counts = rng.integers(0, max_count + 1, (b, t, nin)) * (rng.random((b, t, nin)) < 0.4)
    return torch.tensor(counts, dtype=torch.float32)


CASES = [(kind, sat, seed) for kind in ("ff", "rec", "deep", "residual")
         for sat in (False, True) for seed in range(7)]  # fmt: skip


@pytest.mark.parametrize(("kind", "saturating", "seed"), CASES)
def test_hardware_faithful_equals_simulator_spike_for_spike(kind, saturating, seed):
    rng = np.random.default_rng(1000 * seed + 7 * len(kind) + saturating)
    net, nin = random_net(rng, kind, saturating)
    hf = hardware_faithful(net, method="channel" if seed % 2 else "global")
    x = raster(rng, 2, 40, nin, 20 if saturating else 4)  # counts above 15 are capped
    out, _, rec = hf(x, record=True)
    spec = export(hf, method="channel" if seed % 2 else "global")
    sim_out, _, sim_rec = XyloSim.from_spec(spec)(x.int().numpy(), record=True)
    np.testing.assert_array_equal(out.detach().int().numpy(), sim_out)
    assert out.sum() > 0 or sim_out.sum() == 0
    if saturating:  # the case reaches the int16 rails somewhere
        assert max(np.abs(sim_rec[k]).max() for k in ("Isyn", "Vmem", "Isyn_out")) >= 32767


def test_burn_in_keeps_outputs_and_unpatch_restores_classes():
    rng = np.random.default_rng(5)
    net, nin = random_net(rng, "residual")
    hf = hardware_faithful(net)
    x = raster(rng, 2, 30, nin, 3)
    before = hf(x)[0]
    burned = tt.apply_T(hf)
    burned.reset_state()
    assert torch.equal(burned(x)[0], before)
    weights = [p for p in burned.parameters("weights").astorch()]
    assert all(torch.equal(w, w.round()) for w in weights)
    assert export(burned) == export(hf)
    plain = tt.remove_T_net(burned)
    assert repr(plain).replace("TWrapper", "") == repr(plain)


def test_hardware_faithful_trains():
    torch.manual_seed(0)
    net = Sequential(LinearTorch((4, 8)), LIFTorch(8), LinearTorch((8, 2)), LIFTorch(2))
    hf = hardware_faithful(net)
    opt = torch.optim.Adam(nn.Module.parameters(hf), lr=1e-2)
    x = (torch.rand(8, 30, 4) < 0.3).float() * 2
    target = torch.zeros(8, 30, 2)
    target[:, :, 0] = 1.0
    losses = []
    for _ in range(30):
        opt.zero_grad()
        hf.reset_state()
        loss = ((hf(x)[0] - target) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses[-5:]) < losses[0]
    assert hf[0]._mod.weight.grad is not None


def test_export_of_float_network_is_ptq_and_reports():
    net = Sequential(LinearTorch((3, 4)), LIFTorch(4, bias=0.1), LinearTorch((4, 2)), LIFTorch(2))
    spec, rep = export(net, report=True)
    assert spec.weights_in.shape == (3, 4, 1) and np.abs(spec.weights_in).max() == 127
    assert set(rep.scales) == {"hidden0", "output"} and rep.bits["weights"] == 8
    assert rep.clipped["weights"] == 0
    assert spec.dash_mem.tolist() == [4] * 4  # -log2(1 - e^-0.05) = 4.36 -> 4
    assert spec.bias.min() > 0


def test_export_clips_and_reports_out_of_range_dashes():
    net = Sequential(LinearTorch((3, 4)), LIFTorch(4, leak_mode="bitshifts", dash_mem=20.0),
                     LinearTorch((4, 2)), LIFTorch(2))  # fmt: skip
    spec, rep = export(net, report=True)
    assert spec.dash_mem.tolist() == [15] * 4 and rep.clipped["dash_mem"] == 4


@pytest.mark.parametrize(
    ("net", "match"),
    [
        (lambda: Sequential(LinearTorch((20, 4)), LIFTorch(4), LinearTorch((4, 2)), LIFTorch(2)),
         "LinearTorch '0_LinearTorch': 20 inputs, but the chip has at most 16"),
        (lambda: Sequential(LinearTorch((2, 1001)), LIFTorch(1001), LinearTorch((1001, 2)),
                            LIFTorch(2)), "1001 hidden neurons, but the chip has at most 1000"),
        (lambda: Sequential(LinearTorch((2, 4)), LIFTorch(4), LinearTorch((4, 9)), LIFTorch(9)),
         "LIFTorch '3_LIFTorch': 9 outputs, but the chip has at most 8"),
        (lambda: Sequential(LinearTorch((2, 4)), LIFTorch(4), LinearTorch((4, 2)),
                            LIFTorch(2, has_rec=True)), "output neurons cannot be recurrent"),
        (lambda: Sequential(LinearTorch((2, 4)), LinearTorch((4, 4)), LIFTorch(4),
                            LinearTorch((4, 2)), LIFTorch(2)), "weight layer feeds another"),
        (lambda: Sequential(LinearTorch((2, 4)), LIFTorch(4, dt=1e-3), LinearTorch((4, 2)),
                            LIFTorch(2, dt=2e-3)), "share one dt"),
        (lambda: Sequential(LIFTorch(2), LinearTorch((2, 2)), LIFTorch(2)),
         "LIFTorch '0_LIFTorch': a neuron layer must be fed by a weight layer"),
        (lambda: Sequential(LinearTorch((2, 4), has_bias=True), LIFTorch(4),
                            LinearTorch((4, 2)), LIFTorch(2)), "weight layers have no bias"),
        (lambda: Sequential(LinearTorch((2, 4)), LIFTorch(4)), "at least two neuron layers"),
        (lambda: Sequential(LinearTorch((2, 4)), LIFTorch(4), LinearTorch((4, 2))),
         "must end with a neuron layer"),
        (lambda: Sequential(LinearTorch((2, 4)), LIFTorch(4), nn.ReLU(), LinearTorch((4, 2)),
                            LIFTorch(2)), "only LinearTorch, LIFTorch and Residual"),
    ],
)  # fmt: skip
def test_export_refuses_non_deployable_networks(net, match):
    with pytest.raises(ValueError, match=match):
        export(net())
    with pytest.raises(ValueError, match=match):
        hardware_faithful(net())


def test_hardware_faithful_rejects_bad_arguments_and_leaves_input_alone():
    net = Sequential(LinearTorch((2, 4)), LIFTorch(4), LinearTorch((4, 2)), LIFTorch(2))
    before = copy.deepcopy(net.state_dict())
    with pytest.raises(ValueError, match="method: expected one of"):
        hardware_faithful(net, method="tensor")
    with pytest.raises(TypeError, match="expected a Sequential"):
        export(LIFTorch(2))
    hardware_faithful(net, limits=XyloLimits(max_hidden=10))
    assert all(torch.equal(a, b) for a, b in zip(before.values(), net.state_dict().values()))
    assert net[1].hardware is None and net[1].max_spikes_per_dt == 2.0**16
