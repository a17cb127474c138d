"""The rounding quantizers replayed as CUDA graphs (snnqat.transform._graphed_rounding), on the
CPU.

As in ``tests/kernels/test_graphs.py``, ``_EagerReplay`` stands in for a captured graph: a
"replay" runs the quantizer's kernels again on the captured call's input buffers and copies
the results into the first call's output buffers. These tests check the plumbing: inputs
copied in, the grid's packed scalars copied out, the outputs of a replay copied before the
next one overwrites them, one graph per structure. ``tests/cuda`` runs real graphs.
"""

from __future__ import annotations

import pytest
import torch
from rounding_cases import ROUNDINGS

import snnqat.transform as tt
from snnqat.kernels import _graphs as graphs
from snnqat.transform import _graphed_rounding, _rounding


@pytest.fixture
def eager_graphs(monkeypatch):
    """Graphs "captured" on the CPU, and the calls on the path that a GPU takes (the grid as
    tensors, the torch operations: no compiled CPU loops, no scalar grid), the cache empty
    before and after."""
    monkeypatch.setattr(graphs, "_DEVICES", ("cuda", "cpu"))
    monkeypatch.setattr(graphs, "_REPLAY", graphs._EagerReplay)
    monkeypatch.setattr(_rounding, "data_range_fusable", lambda value: False)
    monkeypatch.setattr(_rounding, "_FLOAT_TYPES", {})
    graphs.clear()
    yield
    graphs.clear()


def _launched(fn, value, seed, grad):
    """``fn(value)`` and its gradient with the graphs switched off."""
    previous = tt.set_quantizer_cuda_graphs(False)
    try:
        return _call(fn, value, seed, grad)
    finally:
        tt.set_quantizer_cuda_graphs(previous)


def _call(fn, value, seed, grad):
    v = value.clone().requires_grad_()
    torch.manual_seed(seed)
    y = fn(v)
    y.backward(grad)
    return y.detach(), v.grad


QUANTIZERS = ROUNDINGS


@pytest.mark.parametrize("name", list(QUANTIZERS))
def test_replays_equal_the_launched_kernels(eager_graphs, name):
    fn = QUANTIZERS[name]
    gen = torch.Generator().manual_seed(3)
    calls = [
        (torch.randn(6, 5, generator=gen) * s, torch.randn(6, 5, generator=gen), seed)
        for seed, s in enumerate((1.0, 0.3, 2.5, 0.01))
    ]
    kept = []
    for value, grad, seed in calls:  # eager, capture, replay, replay
        got = _call(fn, value, seed, grad)
        want = _launched(fn, value, seed, grad)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
        kept.append((got, want))
    for got, want in kept:  # nothing that a call returned was overwritten by a later replay
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert {key[0] for key in graphs._CACHE} == {"round", "round-grad"}


def test_one_graph_per_structure_and_inference_shares_the_forward_graph(eager_graphs):
    fn = QUANTIZERS["deterministic, data range"]
    a, b = torch.randn(4, 3), torch.randn(5, 3)
    for _ in range(3):
        _call(fn, a, 0, torch.ones(4, 3))
        _call(fn, b, 0, torch.ones(5, 3))
    assert len(graphs._CACHE) == 4  # (forward, backward) x two shapes
    with torch.no_grad():
        y = fn(a * 2)
    assert torch.equal(y, _launched(fn, a * 2, 0, torch.ones(4, 3))[0])
    assert len(graphs._CACHE) == 4


def test_double_backward_takes_the_differentiable_operations(eager_graphs):
    fn = QUANTIZERS["deterministic, data range"]
    value, grad = torch.randn(4, 3), torch.randn(4, 3, requires_grad=True)
    results = []
    for graphs_on in (True, False):
        previous = tt.set_quantizer_cuda_graphs(graphs_on)
        try:
            v = value.clone().requires_grad_()
            for _ in range(3):  # up to a replay
                (g,) = torch.autograd.grad(fn(v), v, grad, create_graph=True)
            (gg,) = torch.autograd.grad(g.sum(), grad)
            results.append((g.detach(), gg))
        finally:
            tt.set_quantizer_cuda_graphs(previous)
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])


def test_not_graphed_on_the_cpu_or_when_switched_off(eager_graphs, monkeypatch):
    fn = QUANTIZERS["stochastic, data range"]
    previous = tt.set_quantizer_cuda_graphs(False)
    try:
        for _ in range(3):
            _call(fn, torch.randn(3, 3), 0, torch.ones(3, 3))
    finally:
        tt.set_quantizer_cuda_graphs(previous)
    assert not graphs._CACHE and not graphs._SEEN
    monkeypatch.setattr(graphs, "_DEVICES", ("cuda",))
    for _ in range(3):
        _call(fn, torch.randn(3, 3), 0, torch.ones(3, 3))
    assert not graphs._CACHE and not graphs._SEEN


def test_large_tensors_launch_their_kernels(eager_graphs, monkeypatch):
    monkeypatch.setattr(_graphed_rounding, "GRAPH_MAX_NUMEL", 11)
    fn = QUANTIZERS["deterministic, data range"]
    for _ in range(3):
        _call(fn, torch.randn(3, 4), 0, torch.ones(3, 4))  # 12 elements: launched
    assert not graphs._CACHE and not graphs._SEEN
    for _ in range(3):
        _call(fn, torch.randn(11), 0, torch.ones(11))
    assert len(graphs._CACHE) == 2


def test_the_packed_grid_round_trips(eager_graphs):
    grid, data = _rounding._resolve_grid(torch.randn(3, 4), None, (-8.0, 7.0), 16, True, (1,))
    assert grid.in_lo.shape == (3, 1) and grid.step.shape == ()  # per row, and a scalar
    template, packed = _graphed_rounding._pack(grid, data, torch.zeros(1))
    grid2, data2 = _graphed_rounding._unpack(template, packed)
    for a, b in zip((*grid, *data), (*grid2, *data2), strict=True):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b) and a.shape == b.shape
        else:
            assert a == b or (a is None and b is None)


def test_failed_capture_warns_and_runs_eagerly(eager_graphs, monkeypatch):
    class Broken(graphs._EagerReplay):
        def _capture(self):
            raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(graphs, "_REPLAY", Broken)
    fn = QUANTIZERS["stochastic, data range"]
    value, grad = torch.randn(5, 4), torch.randn(5, 4)
    _call(fn, value, 0, grad)  # first sighting: eager, no capture tried
    switch = r"set_quantizer_cuda_graphs\(False\) skips"
    with pytest.warns(RuntimeWarning, match=f"capturing a rounding quantizer .*{switch}"):
        got = _call(fn, value, 1, grad)
    want = _launched(fn, value, 1, grad)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert not graphs._CACHE and len(graphs._FAILED) == 2  # forward and backward
    _call(fn, value, 2, grad)  # no second warning (it would be an error here): runs eagerly


def test_set_quantizer_cuda_graphs_checks_its_argument():
    with pytest.raises(TypeError, match="enabled: expected a bool, got int"):
        tt.set_quantizer_cuda_graphs(1)
