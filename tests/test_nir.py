"""NIR export/import (``snnqat.nir``): exact round trips, the documented mapping, errors."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import snnqat.transform.torch_transform as tt
from snnqat.devices.xylo import XyloSim, XyloSpec
from snnqat.nir import NIRGraphNetwork, from_nir, nir_to_spec, spec_to_nir, to_nir
from snnqat.nn.combinators import Residual, Sequential
from snnqat.nn.modules import ExpSynTorch, LIFTorch, LinearTorch

nir = pytest.importorskip("nir")

DT = 0.5e-3


def spikes(*shape, rate=0.3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g) < rate).float() * torch.randint(
        1, 3, shape, generator=g
    )


def seed_network(dt=DT):
    """The seed network with non-zero biases, all three leak modes and a non-default dt."""
    return Sequential(
        LinearTorch((3, 5), bias=torch.linspace(-0.2, 0.3, 5)),
        LIFTorch(
            5, leak_mode="decays", alpha=torch.linspace(0.5, 0.95, 5), beta=0.7, bias=0.05, dt=dt
        ),
        Residual(
            LinearTorch((5, 5)),
            LIFTorch(
                5,
                has_rec=True,
                leak_mode="bitshifts",
                dash_mem=torch.tensor([1.0, 2.0, 3.0, 4.5, 5.0]),
                dash_syn=2.0,
                bias=torch.linspace(-0.1, 0.1, 5),
                threshold=torch.linspace(0.8, 1.5, 5),
                dt=dt,
            ),
        ),
        LinearTorch((5, 3)),
        LIFTorch(3, tau_mem=torch.tensor([0.01, 0.02, 0.05]), tau_syn=0.004, bias=-0.02, dt=dt),
    )


def lifs(net):
    return {name: m for name, m in net.named_modules() if isinstance(m, LIFTorch)}


def assert_same_run(a, b, x):
    out_a, _, rec_a = a(x, record=True)
    out_b, _, rec_b = b(x, record=True)
    assert torch.equal(out_a, out_b)
    assert out_a.sum() > 0
    for key, value in rec_a.items():
        if isinstance(value, dict) and "vmem" in value:
            torch.testing.assert_close(rec_b[key]["vmem"], value["vmem"], atol=1e-6, rtol=0)


# ------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("as_path", [str, pathlib.Path])
def test_seed_network_round_trips_through_a_file_exactly(tmp_path, as_path):
    net = seed_network()
    path = tmp_path / "seed.nir"
    nir.write(path, to_nir(net))
    back = from_nir(as_path(path))
    assert repr(back) == repr(net)
    assert_same_run(net, back, spikes(4, 60, 3))
    for name, lif in lifs(back).items():
        original = lifs(net)[name]
        assert lif.dt == DT  # exact, not approximately
        assert lif.leak_mode == original.leak_mode
        assert torch.equal(lif.bias, original.bias)
        assert lif.bias.shape == original.bias.shape
    rec_lif = back["2_TorchResidual"]["1_LIFTorch"]
    assert rec_lif._has_rec
    assert torch.equal(rec_lif.w_rec, net["2_TorchResidual"]["1_LIFTorch"].w_rec)
    for (k1, p1), (k2, p2) in zip(net.named_parameters(), back.named_parameters()):
        assert k1 == k2 and torch.equal(p1, p2), k1


def test_graph_layout_follows_the_zoh_convention():
    net = seed_network()
    g = to_nir(net, sample_data=torch.zeros(1, 10, 3), model_name="seed")
    assert g.metadata["snnqat_format"] == "snnqat.nir" and g.metadata["dt"] == DT
    assert g.metadata["model_name"] == "seed"
    assert [type(g.nodes[k]).__name__ for k in g.nodes] == [
        "Input",
        "Affine",
        "CubaLIF",
        "NIRGraph",
        "Linear",
        "CubaLIF",
        "Output",
    ]
    res = g.nodes["2_TorchResidual"]
    assert ("input", "output") in res.edges  # the skip connection
    rec = res.nodes["1_LIFTorch"]
    assert {("lif", "w_rec"), ("w_rec", "lif")} <= set(rec.edges)
    lif, mod = g.nodes["1_LIFTorch"], net["1_LIFTorch"]
    alpha, beta = mod.leak_factors()
    alpha, beta = alpha.detach().double().numpy(), beta[:, 0].detach().double().numpy()
    np.testing.assert_allclose(lif.r, 1 / (1 - alpha))
    np.testing.assert_allclose(lif.w_in, beta / (1 - beta))
    np.testing.assert_allclose(lif.v_leak, 0.05 / (1 - alpha), rtol=1e-6)
    np.testing.assert_allclose(lif.tau_mem, -DT / np.log(alpha))
    assert lif.metadata["reset"] == "subtract" and lif.metadata["leak_mode"] == "decays"
    assert lif.metadata["max_spikes_per_dt"] == 2.0**16


@pytest.mark.parametrize("dt", [1e-3, 1 / 3 * 1e-3, 0.123456789e-4])
def test_dt_comes_back_exactly(tmp_path, dt):
    net = Sequential(LinearTorch((2, 2)), LIFTorch(2, dt=dt), ExpSynTorch(2, dt=dt))
    nir.write(tmp_path / "n.nir", to_nir(net))
    back = from_nir(tmp_path / "n.nir")
    assert back["1_LIFTorch"].dt == dt and back["2_ExpSynTorch"].dt == dt


def test_multi_synapse_recurrent_lif_and_exp_syn_round_trip(tmp_path):
    net = Sequential(
        LinearTorch((2, 6)),
        LIFTorch((6, 3), has_rec=True, tau_syn=torch.tensor([[0.002, 0.01]]), bias=0.1, dt=DT),
        LinearTorch((3, 2)),
        ExpSynTorch(2, tau=torch.tensor([0.004, 0.02]), dt=DT),
        torch.nn.Linear(2, 2),
    )
    g = to_nir(net)
    sub = g.nodes["1_LIFTorch"]
    assert [type(sub.nodes[k]).__name__ for k in ("syn", "sum", "lif", "w_rec")] == [
        "LI",
        "Linear",
        "LIF",
        "Linear",
    ]
    nir.write(tmp_path / "m.nir", g)
    back = from_nir(tmp_path / "m.nir")
    assert repr(back) == repr(net)
    x = spikes(2, 40, 2)
    assert torch.equal(net(x)[0], back(x)[0])


def test_single_modules_come_back_as_themselves():
    lif = LIFTorch(3, has_rec=True, bias=0.2, max_spikes_per_dt=5.0, dt=DT)
    back = from_nir(to_nir(lif))
    assert isinstance(back, LIFTorch) and back.max_spikes_per_dt == 5.0
    x = spikes(1, 30, 3)
    assert torch.equal(lif(x)[0], back(x)[0])
    res = Residual(LinearTorch((2, 2)), LIFTorch(2))
    assert repr(from_nir(to_nir(res))) == repr(res)


def test_edited_nir_fields_win_over_stale_metadata():
    g = to_nir(Sequential(LinearTorch((2, 2)), LIFTorch(2, tau_mem=0.02, tau_syn=0.01, dt=DT)))
    lif = g.nodes["1_LIFTorch"]
    lif.tau_mem = np.array([0.03, 0.04])
    lif.v_threshold = np.array([2.0, 3.0])
    back = from_nir(g)["1_LIFTorch"]
    torch.testing.assert_close(back.tau_mem, torch.tensor([0.03, 0.04]))
    assert back.threshold.tolist() == [2.0, 3.0] and back.dt == DT


def test_patched_network_exports_its_transformed_parameters():
    net = seed_network()
    q = lambda p: tt.deterministic_rounding(p, num_levels=5)  # noqa: E731
    tnet = tt.make_param_T_network(net, tt.make_param_T_config(net, q, "weights"))
    g = to_nir(tnet)
    lin = g.nodes["0_LinearTorch"]
    expected = q(net["0_LinearTorch"].weight).detach().numpy().T
    np.testing.assert_array_equal(lin.weight, expected)
    assert lin.metadata["transformed"] == "weight"
    w_rec = g.nodes["2_TorchResidual"].nodes["1_LIFTorch"].nodes["w_rec"].weight
    assert len(np.unique(w_rec)) <= 5
    x = spikes(2, 40, 3)
    assert torch.equal(tnet(x)[0], from_nir(g)(x)[0])


# ------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("net", "match"),
    [
        (Sequential(LinearTorch((2, 2)), torch.nn.ReLU()), "1_ReLU"),
        (Sequential(LIFTorch(2, noise_std=0.1)), "noise_std"),
        (Sequential(tt.ActWrapper(LinearTorch((2, 2)), torch.round)), "ActWrapper"),
    ],
)
def test_unsupported_modules_raise_naming_the_module(net, match):
    with pytest.raises(NotImplementedError, match=match):
        to_nir(net)


def test_hardware_faithful_modules_are_refused():
    lin = LinearTorch((2, 2))
    lin.hardware = object()  # what hardware-faithful patching sets (integer semantics)
    with pytest.raises(NotImplementedError, match="spec_to_nir"):
        to_nir(Sequential(lin, LIFTorch(2)))
    res = Residual(LinearTorch((2, 2)), LIFTorch(2))
    res.alias = True
    with pytest.raises(NotImplementedError, match="alias"):
        to_nir(Sequential(LinearTorch((2, 2)), res))


def test_activity_transforms_can_be_ignored_explicitly():
    net = Sequential(tt.ActWrapper(LinearTorch((2, 2)), torch.round))
    g = to_nir(net, ignore_activity_transforms=True)
    node = g.nodes["0_ActWrapper"]
    assert isinstance(node, nir.Linear)
    assert "round" in node.metadata["activity_transform_ignored"]


def test_import_errors_are_clear():
    lin = nir.Linear(weight=np.ones((2, 2)))
    with pytest.raises(NotImplementedError, match="IF"):
        from_nir(nir.NIRGraph.from_list(lin, nir.IF(r=np.ones(2), v_threshold=np.ones(2))))
    cyclic = nir.NIRGraph(
        nodes={
            "input": nir.Input(np.array([2])),
            "a": nir.Linear(weight=np.eye(2)),
            "b": nir.Linear(weight=np.eye(2)),
            "output": nir.Output(np.array([2])),
        },
        edges=[("input", "a"), ("a", "b"), ("b", "a"), ("b", "output")],
    )
    with pytest.raises(NotImplementedError, match="cycle"):
        from_nir(cyclic)
    with pytest.raises(ValueError, match="nir_to_spec"):
        from_nir(spec_to_nir(XyloSpec.zeros(1, 2, 1)))
    with pytest.raises(ValueError, match="discretization"):
        from_nir(to_nir(LIFTorch(1)), discretization="rk4")
    with pytest.raises(TypeError, match="NIRGraph"):
        from_nir(42)
    with pytest.raises(ValueError, match="sample_data"):
        to_nir(LinearTorch((3, 2)), sample_data=torch.zeros(1, 5, 4))


def test_missing_nir_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "nir", None)
    with pytest.raises(ImportError, match=r"pip install snnqat\[nir\]"):
        to_nir(LinearTorch((2, 2)))


def test_importing_snnqat_nir_does_not_import_nir():
    code = "import sys, snnqat.nir; print('nir' in sys.modules, 'h5py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# ------------------------------------------------------------------------- foreign graphs
def zoh_reference(x, w, tau_syn, tau_mem, r, w_in, v_leak, thr, dt):
    """NumPy reading of ``Affine -> CubaLIF`` with snnqat's convention, one spike per step."""
    ds, dm = np.exp(-dt / tau_syn), np.exp(-dt / tau_mem)
    i = v = np.zeros(len(thr))
    out = []
    for xt in x:
        i = ds * i + (1 - ds) * w_in * (w @ xt)
        v = dm * v + (1 - dm) * (v_leak + r * i)
        s = (v >= thr).astype(float)
        v = v - s * thr
        out.append(s)
    return np.array(out)


def test_foreign_cuba_lif_follows_the_documented_zoh_reading():
    rng = np.random.default_rng(0)
    w = rng.normal(0, 1, (3, 2))
    p = dict(tau_syn=np.array([2e-3, 5e-3, 1e-2]), tau_mem=np.array([1e-2, 2e-2, 3e-2]))
    p.update(r=np.array([30.0, 60.0, 45.0]), w_in=np.array([3.0, 8.0, 12.0]))
    p.update(v_leak=np.array([0.0, 0.01, -0.01]), thr=np.array([1.0, 0.8, 1.2]))
    cuba = nir.CubaLIF(
        tau_syn=p["tau_syn"],
        tau_mem=p["tau_mem"],
        r=p["r"],
        v_leak=p["v_leak"],
        v_threshold=p["thr"],
        w_in=p["w_in"],
    )
    net = from_nir(nir.NIRGraph.from_list(nir.Linear(weight=w), cuba), dt=1e-3)
    assert len(net) == 2  # the input gain is folded into the weights
    assert net[1].max_spikes_per_dt == 1.0
    x = spikes(60, 2, rate=0.5).numpy()
    expected = zoh_reference(x, w, dt=1e-3, **p)
    out = net(torch.tensor(x, dtype=torch.float32))[0][0].detach().numpy()
    assert expected.sum() > 5
    np.testing.assert_array_equal(out, expected)


def test_foreign_li_cuba_li_scale_and_residual_graphs():
    n = 2
    tau, r = np.array([4e-3, 8e-3]), np.array([2.0, 5.0])
    li = nir.LI(tau=tau, r=r, v_leak=np.array([0.1, 0.0]))
    cuba_li = nir.CubaLI(
        tau_syn=tau, tau_mem=2 * tau, r=r, v_leak=np.zeros(n), w_in=np.array([1.0, 3.0])
    )
    g = nir.NIRGraph(
        nodes={
            "input": nir.Input(np.array([n])),
            "scale": nir.Scale(scale=np.array([2.0, -1.0])),
            "li": li,
            "cuba": cuba_li,
            "output": nir.Output(np.array([n])),
        },
        edges=[("input", "scale"), ("scale", "li"), ("li", "cuba"), ("cuba", "output")]
        + [("scale", "output")],
    )
    net = from_nir(g, dt=1e-3)
    assert type(net[-1]).__name__ == "TorchResidual"
    x = np.random.default_rng(1).normal(size=(30, n))
    d, dm = np.exp(-1e-3 / tau), np.exp(-1e-3 / (2 * tau))
    v = i = u = np.zeros(n)
    expected = []
    for xt in x:
        s = np.array([2.0, -1.0]) * xt
        v = d * v + (1 - d) * (np.array([0.1, 0.0]) + r * s)
        i = d * i + (1 - d) * np.array([1.0, 3.0]) * v
        u = dm * u + (1 - dm) * r * i
        expected.append(u + s)
    out = net(torch.tensor(x, dtype=torch.float32))[0][0].detach().numpy()
    np.testing.assert_allclose(out, np.array(expected), rtol=1e-4, atol=1e-5)


def test_non_series_parallel_graph_runs_in_the_graph_executor():
    a, b = np.array([[1.0, 2.0], [0.0, 1.0]]), np.array([[0.5, 0.0], [1.0, 1.0]])
    g = nir.NIRGraph(
        nodes={
            "input": nir.Input(np.array([2])),
            "a": nir.Linear(weight=a),
            "b": nir.Linear(weight=b),
            "c": nir.Affine(weight=np.eye(2), bias=np.ones(2)),
            "output": nir.Output(np.array([2])),
        },
        edges=[("input", "a"), ("input", "b"), ("a", "c"), ("b", "c"), ("c", "output")],
    )
    net = from_nir(g)
    assert isinstance(net, NIRGraphNetwork)
    x = torch.randn(1, 4, 2)
    out, state, rec = net(x, record=True)
    expected = x @ torch.tensor(a + b, dtype=torch.float32).T + 1
    torch.testing.assert_close(out, expected)
    assert set(rec) == {"a", "a_output", "b", "b_output", "c", "c_output"}


# ------------------------------------------------------------------------- snnTorch
def export_snntorch(net, n_in):
    from snntorch.export_nir import export_to_nir

    with warnings.catch_warnings():  # snnTorch calls nirtorch's deprecated extract_nir_graph
        warnings.filterwarnings("ignore", "nirtorch.extract_nir_graph", DeprecationWarning)
        return export_to_nir(net, torch.zeros(1, n_in), ignore_dims=[0])


def run_snntorch(net, x, layers):
    import snntorch.utils

    snntorch.utils.reset(net)
    out, mems = [], {k: [] for k in layers}
    with torch.no_grad():
        for t in range(x.shape[1]):
            out.append(net(x[:, t])[0])
            for k in layers:
                mems[k].append(net[k].mem.clone())
    return torch.stack(out, 1), {k: torch.stack(v, 1) for k, v in mems.items()}


def test_snntorch_synaptic_and_rleaky_import_and_match_snntorch():
    """Linear -> Synaptic -> Linear -> RLeaky exported by snnTorch, run by both libraries.

    snnTorch exports with dt = 1e-4 and reads the ODEs with forward Euler, so the graph is
    imported with ``dt=1e-4, discretization="euler"``. With ``reset_delay=False`` snnTorch
    subtracts the threshold in the step of the spike, like snnqat. The remaining semantic
    differences only show when a membrane is still above threshold after a reset
    (``v >= 2 * threshold``): snnTorch then subtracts once more in the next step without
    spiking, snnqat (one spike per step for NIR neurons) spikes again. The weights keep
    membranes below that, which the test checks, so spikes must agree exactly and membranes
    up to float rounding (snnqat folds the input gain 1/beta into the weights).
    """
    snn = pytest.importorskip("snntorch")
    g = torch.Generator().manual_seed(0)
    kw = dict(init_hidden=True, reset_delay=False)
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 5),
        snn.Synaptic(
            alpha=torch.full((5,), 0.8), beta=torch.full((5,), 0.9), threshold=torch.ones(5), **kw
        ),
        torch.nn.Linear(5, 3),
        snn.RLeaky(
            beta=torch.full((3,), 0.85),
            threshold=torch.ones(3),
            linear_features=3,
            output=True,
            **kw,
        ),
    )
    with torch.no_grad():
        for lin, scale in ((net[0], 0.6), (net[2], 1.2), (net[3].recurrent, 1.0)):
            lin.weight.copy_(scale * (torch.rand(lin.weight.shape, generator=g) - 0.5))
            lin.bias.zero_()
    imported = from_nir(export_snntorch(net, 4), dt=1e-4, discretization="euler")
    assert [type(m).__name__ for m in imported] == ["LinearTorch", "LIFTorch"] * 2
    assert imported[3]._has_rec
    x = spikes(2, 100, 4, rate=0.3, seed=0).clamp(max=1)
    expected, mems = run_snntorch(net, x, (1, 3))
    with torch.no_grad():
        out, _, rec = imported(x, record=True)
    names = list(imported._modules)
    assert out.shape == (2, 100, 3) and torch.isfinite(out).all() and (out >= 0).all()
    for name in (names[1], names[3]):  # precondition of exact agreement (see docstring)
        assert (rec[name]["vmem"] < 1.0).all()
    assert expected.sum() > 20 and out[..., :1].sum() > 0
    assert torch.equal(out, expected)
    torch.testing.assert_close(rec[names[1]]["vmem"], mems[1], atol=1e-4, rtol=0)
    torch.testing.assert_close(rec[names[3]]["vmem"], mems[3], atol=1e-4, rtol=0)


def test_snntorch_rsynaptic_imports_as_a_recurrent_lif():
    """snnTorch's RSynaptic (flat ``lif <-> w_rec`` cycle) becomes a recurrent LIFTorch.

    snnTorch's RSynaptic cannot run with ``reset_delay=False`` (it fails in 1.0), and with
    the default delayed reset it subtracts the threshold one step late and without decay.
    So the runs agree up to the first spike of the layer, which is what is compared.
    """
    snn = pytest.importorskip("snntorch")
    net = torch.nn.Sequential(
        torch.nn.Linear(3, 4),
        snn.RSynaptic(
            alpha=torch.full((4,), 0.7),
            beta=torch.full((4,), 0.9),
            linear_features=4,
            init_hidden=True,
            output=True,
        ),
    )
    with torch.no_grad():
        net[0].weight.copy_(0.3 * torch.rand(4, 3, generator=torch.Generator().manual_seed(0)))
        net[0].bias.zero_()
    imported = from_nir(export_snntorch(net, 3), dt=1e-4, discretization="euler")
    lif = imported[1]
    assert isinstance(lif, LIFTorch) and lif._has_rec
    # snnqat folds the input gain 1/beta_syn of the Euler reading into the weights
    expected_w = net[1].recurrent.weight.detach().T / 0.7
    torch.testing.assert_close(lif.w_rec.detach(), expected_w, rtol=1e-5, atol=1e-6)
    x = spikes(1, 40, 3, rate=0.8, seed=1).clamp(max=1)
    _, mems = run_snntorch(net, x, (1,))
    with torch.no_grad():
        out, _, rec = imported(x, record=True)
    assert torch.isfinite(out).all() and (out >= 0).all()
    first = int(rec[list(imported._modules)[1]]["spikes"][0].sum(-1).nonzero()[0])
    assert first > 1 and out.sum() > 5
    vmem = rec[list(imported._modules)[1]]["vmem"]
    torch.testing.assert_close(vmem[:, :first], mems[1][:, :first], atol=1e-4, rtol=0)


# ------------------------------------------------------------------------- XyloSpec
def random_spec(n_syn, seed=0):
    rng = np.random.default_rng(seed)
    nin, nhid, nout = 3, 5, 2
    return XyloSpec(
        weights_in=rng.integers(-128, 128, (nin, nhid, n_syn)),
        weights_rec=rng.integers(-128, 128, (nhid, nhid, n_syn)),
        weights_out=rng.integers(-128, 128, (nhid, nout)),
        dash_mem=rng.integers(0, 16, nhid),
        dash_syn=rng.integers(0, 16, (nhid, n_syn)),
        dash_mem_out=rng.integers(0, 16, nout),
        dash_syn_out=rng.integers(0, 16, nout),
        threshold=rng.integers(1, 32767, nhid),
        threshold_out=rng.integers(1, 500, nout),
        bias=rng.integers(-100, 100, nhid),
        bias_out=rng.integers(-100, 100, nout),
        weight_shift_in=2,
        weight_shift_rec=0,
        weight_shift_out=1,
        aliases=[[1], [], [4], [], []],
        dt=0.37e-3,
    )


@pytest.mark.parametrize("n_syn", [1, 2])
def test_xylo_spec_round_trips_through_a_file_with_integer_dtypes(tmp_path, n_syn):
    spec = random_spec(n_syn)
    spec.validate()
    nir.write(tmp_path / "spec.nir", spec_to_nir(spec))
    g = nir.read(tmp_path / "spec.nir")
    for name in ("weights_in", "weights_rec", "weights_out"):
        assert g.nodes[name].weight.dtype == np.int8
    assert g.nodes["hidden"].v_threshold.dtype == np.int16
    assert g.nodes["hidden"].metadata["bias"].dtype == np.int16
    assert float(g.metadata["dt"]) == spec.dt
    assert "scale_in" in g.nodes and "scale_rec" not in g.nodes
    assert isinstance(g.nodes["delay_out"], nir.Delay)
    back = nir_to_spec(tmp_path / "spec.nir")
    assert back == spec and back.dt == spec.dt
    raster = np.random.default_rng(2).integers(0, 3, (50, 3))
    out_a = XyloSim.from_spec(spec)(raster)[0]
    out_b = XyloSim.from_spec(back)(raster)[0]
    np.testing.assert_array_equal(out_a, out_b)


def test_nir_to_spec_refuses_float_network_graphs():
    with pytest.raises(ValueError, match="spec_to_nir"):
        nir_to_spec(to_nir(LinearTorch((2, 2))))
