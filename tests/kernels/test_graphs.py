"""The replayed-graph path of the torch LIF loops (snnqat.kernels._graphs), on the CPU.

A CUDA graph cannot be captured without a GPU; here ``_EagerReplay`` stands in for it: the
"replay" runs the loops again on the captured call's input buffers and copies the results into
the first call's output buffers, which is what a graph replay does to them. So these tests
check the plumbing around the graph (inputs copied in, outputs copied out before the next
replay overwrites them, one graph per structure, interleaved layers of the same shape);
``tests/cuda`` runs the same lif_scan calls through real graphs on a GPU.
"""

from __future__ import annotations

import pytest
import torch
from lif_inputs import make_inputs

from snnqat.kernels import LIFConfig, lif_scan
from snnqat.kernels import _graphs as graphs

TRACES = ("spikes", "vmem", "isyn", "irec")
INPUTS = ("x", "vmem0", "isyn0", "spikes0", "alpha", "beta", "bias", "threshold", "w_rec", "noise")


@pytest.fixture
def eager_graphs(monkeypatch):
    """Graphs "captured" on the CPU (replays emulated), the cache empty before and after."""
    monkeypatch.setattr(graphs, "_DEVICES", ("cuda", "cpu"))
    monkeypatch.setattr(graphs, "_REPLAY", graphs._EagerReplay)
    graphs.clear()
    yield
    graphs.clear()


def run(p, config, record, seed=5):
    res = lif_scan(**p, config=config, record=record)
    gen = torch.Generator().manual_seed(seed)
    keys = TRACES if record else ("spikes",)
    traces = {k: getattr(res, k) for k in TRACES}
    loss = sum((traces[k] * torch.randn(traces[k].shape, generator=gen, dtype=traces[k].dtype))
               .sum() for k in keys)  # fmt: skip
    names = [k for k in INPUTS if p[k] is not None and p[k].requires_grad]
    grads = torch.autograd.grad(loss, [p[k] for k in names], allow_unused=True)
    return res, dict(zip(names, grads))


def assert_same(a, b):
    (res_a, g_a), (res_b, g_b) = a, b
    for k in (*TRACES, "vmem_last", "isyn_last", "spikes_last"):
        x, y = getattr(res_a, k), getattr(res_b, k)
        assert (x is None) == (y is None), k
        if x is not None:
            assert torch.equal(x, y), k
    assert g_a.keys() == g_b.keys()
    for k in g_a:
        assert (g_a[k] is None) == (g_b[k] is None), k
        assert g_a[k] is None or torch.equal(g_a[k], g_b[k]), k


EAGER = LIFConfig(max_spikes_per_dt=3.0, backend="torch", cuda_graphs=False)
GRAPHED = LIFConfig(max_spikes_per_dt=3.0, backend="torch")


@pytest.mark.parametrize("record", [False, True], ids=["norec", "record"])
@pytest.mark.parametrize("s", [1, 2], ids=lambda v: f"S{v}")
@pytest.mark.parametrize("rec", [False, True], ids=["ff", "rec"])
def test_replayed_calls_equal_eager_calls(eager_graphs, rec, s, record):
    """Three calls of one structure with different inputs: each result is that call's own
    (bitwise the eager one), though all three ran through one graph's buffers."""
    for seed in (1, 2, 3, 4, 5):
        p = make_inputs(3, 9, 4, s, rec=rec, noise=seed != 2, seed=seed)
        assert_same(run(p, GRAPHED, record), run(p, EAGER, record))
    # forward and backward with noise (seen four times: captured at the second);
    # without noise the structures came once: not captured
    keys = list(graphs._CACHE)
    assert len(keys) == 2 and {k[0] for k in keys} == {"forward", "backward"}
    assert len(graphs._SEEN) == 4


def test_interleaved_layers_of_one_shape_keep_their_own_saved_tensors(eager_graphs):
    """Two layers of the same shape share the graph; the second forward call overwrites the
    graph's buffers before the first layer's backward pass, which must not see that."""
    p1, p2 = make_inputs(2, 7, 3, 1, seed=11), make_inputs(2, 7, 3, 1, seed=12)
    want = [run(p, EAGER, False) for p in (p1, p2)]
    run(p1, GRAPHED, False)  # first sighting of both structures
    r1 = lif_scan(**p1, config=GRAPHED)
    r2 = lif_scan(**p2, config=GRAPHED)
    g = torch.Generator().manual_seed(5)
    w = torch.randn(r1.spikes.shape, generator=g, dtype=r1.spikes.dtype)
    names = [k for k in INPUTS if p1[k] is not None]
    g2 = torch.autograd.grad((r2.spikes * w).sum(), [p2[k] for k in names], allow_unused=True)
    g1 = torch.autograd.grad((r1.spikes * w).sum(), [p1[k] for k in names], allow_unused=True)
    for (res, grads), r, got in zip(want, (r1, r2), (g1, g2)):
        assert torch.equal(r.spikes, res.spikes)
        for k, gk in zip(names, got):
            assert (gk is None and grads[k] is None) or torch.equal(gk, grads[k]), k
    assert len(graphs._CACHE) == 2


def test_graph_cache_is_bounded(eager_graphs, monkeypatch):
    monkeypatch.setattr(graphs, "MAX_GRAPHS", 2)
    for t in (3, 4, 5):
        for _ in range(2):
            lif_scan(**make_inputs(1, t, 2, 1, grad=False), config=GRAPHED)
    assert [k[1][0][0][1] for k in graphs._CACHE] == [4, 5]  # the shape of x: (B, T, N, S)


def test_a_structure_seen_once_is_not_captured(eager_graphs):
    p = make_inputs(2, 6, 3, 1, grad=False)
    lif_scan(**p, config=GRAPHED)
    assert not graphs._CACHE and len(graphs._SEEN) == 1
    lif_scan(**p, config=GRAPHED)
    assert len(graphs._CACHE) == 1


def test_graphs_are_not_used_on_the_cpu_or_in_integer_mode():
    graphs.clear()
    lif_scan(**make_inputs(2, 4, 3, 1), config=GRAPHED).spikes.sum().backward()
    assert not graphs._CACHE


def test_failed_capture_warns_and_runs_eagerly(eager_graphs, monkeypatch):
    class Broken(graphs._EagerReplay):
        def _capture(self):
            raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(graphs, "_REPLAY", Broken)
    p = make_inputs(2, 5, 3, 1, seed=4)
    run(p, GRAPHED, True)  # first sighting: eager, no capture tried
    with pytest.warns(RuntimeWarning, match="CUDA graph failed .*not permitted.*eagerly"):
        got = run(p, GRAPHED, True)
    assert_same(got, run(p, EAGER, True))
    assert not graphs._CACHE and len(graphs._FAILED) == 2


def test_cuda_graphs_flag_is_validated():
    with pytest.raises(TypeError, match="cuda_graphs: expected a bool, got int"):
        LIFConfig(cuda_graphs=1)


def test_release_cuda_graphs_drops_every_graph(eager_graphs):
    from snnqat.kernels import release_cuda_graphs

    p = make_inputs(2, 6, 3, 1, grad=False)
    for _ in range(2):
        lif_scan(**p, config=GRAPHED)
    assert release_cuda_graphs() == 1
    assert not graphs._CACHE and not graphs._SEEN and not graphs._POOLS
    lif_scan(**p, config=GRAPHED)  # a first sighting again
    assert not graphs._CACHE


def test_no_graphs_under_autocast(eager_graphs):
    """A replay repeats the captured call's choices; under autocast (which picks the dtypes
    of the loop's products) the loops run eagerly."""
    p = make_inputs(2, 6, 3, 1, grad=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for _ in range(2):
            lif_scan(**p, config=GRAPHED)
    assert not graphs._CACHE and not graphs._SEEN


def test_torch_func_transforms_run_without_graphs(eager_graphs):
    """Under ``torch.func`` a replay's copy into the graph's input buffers would mutate a
    tensor from outside the transform (an error): those calls run eagerly."""
    p = make_inputs(2, 6, 3, 1, grad=False)

    def spikes_sum(x, config):
        return lif_scan(**{**p, "x": x}, config=config).spikes.sum()

    want = torch.func.grad(spikes_sum)(p["x"], EAGER)
    for _ in range(3):
        assert torch.equal(torch.func.grad(spikes_sum)(p["x"], GRAPHED), want)
    assert not graphs._CACHE and not graphs._SEEN
    for _ in range(2):  # outside the transform, the same structure is captured
        spikes_sum(p["x"].requires_grad_(), GRAPHED).backward()
    assert len(graphs._CACHE) == 2
