"""checkpoint_in_time: exact BPTT over segments, states, determinism checks, errors."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

import snnqat.transform.torch_transform as tt
from snnqat.nn import TimeCheckpointed, checkpoint_in_time
from snnqat.nn.combinators import Residual, Sequential
from snnqat.nn.modules import ExpSynTorch, LIFTorch, LinearTorch

T = 37
WEIGHTS = torch.linspace(0.2, 1.0, T)  # every time step counts, differently


def seed_net(dtype: torch.dtype = torch.float64, torch_api: bool = True, **lif) -> nn.Module:
    """The seed's shape (Linear, LIF, Residual(Linear, recurrent LIF), Linear, LIF), small."""
    torch.manual_seed(1)
    lif.setdefault("max_spikes_per_dt", 3)
    net = Sequential(
        LinearTorch((5, 16)),
        LIFTorch(16, **lif),
        Residual(LinearTorch((16, 16)), LIFTorch(16, has_rec=True, **lif)),
        LinearTorch((16, 3)),
        LIFTorch(3, **lif),
    )
    net = net.to_torch() if torch_api else net
    return net.to(dtype)


def inputs(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    torch.manual_seed(2)
    return (torch.rand(4, T, 5, dtype=dtype) * 2).requires_grad_()


def loss_of(out: torch.Tensor) -> torch.Tensor:
    return (out * WEIGHTS.to(out.dtype)[None, :, None]).sum()


def grads(net: nn.Module, x: torch.Tensor, segment: int | None) -> tuple:
    out = net(x) if segment is None else checkpoint_in_time(net, x, segment)
    out = out[0] if isinstance(out, tuple) else out
    params = list(nn.Module.parameters(net))
    return out, torch.autograd.grad(loss_of(out), [x, *params])


def assert_same_as_one_call(module: nn.Module, segment: int) -> None:
    """``module`` (float64, states reset) gives the output and gradients of one call."""
    x = inputs()
    ref_out, ref = grads(module, x, None)
    module.reset_state()
    out, got = grads(module, x, segment)
    assert torch.equal(out, ref_out)
    for g, r in zip(got, ref, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("segment", [1, 4, 7, 36, 37, 50])
def test_values_gradients_and_states_equal_one_call_over_the_sequence(segment):
    x = inputs()
    ref_net = seed_net()
    ref_out, ref_grads = grads(ref_net, x, None)
    net = seed_net()
    out, got = grads(net, x, segment)
    assert torch.equal(out, ref_out)
    assert ref_out.sum() > 0  # the network fires: the surrogate paths are exercised
    for g, r in zip(got, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)
    for b, r in zip(net.buffers(), ref_net.buffers(), strict=True):  # the states afterwards
        assert torch.equal(b, r)


def test_gradients_cross_the_segment_boundaries():
    """Without the gradient sent between segments (truncated BPTT) the result is different:
    the test above would notice a driver that drops it."""
    x = inputs()
    _, ref = grads(seed_net(), x, None)
    net = seed_net()
    truncated = [torch.zeros_like(g) for g in ref]
    for t0 in range(0, T, 8):  # each segment on its own, states detached in between
        out = net(x[:, t0 : t0 + 8])
        w = WEIGHTS[t0 : t0 + 8].to(out.dtype)[None, :, None]
        gs = torch.autograd.grad((out * w).sum(), [x, *nn.Module.parameters(net)])
        truncated = [a + b for a, b in zip(truncated, gs)]
    w_rec_grad, w_rec_truncated = ref[1 + 3], truncated[1 + 3]
    assert not torch.allclose(w_rec_truncated, w_rec_grad, rtol=1e-3)


def test_float32_network_like_the_benchmark():
    x = inputs(torch.float32)
    ref_out, ref = grads(seed_net(torch.float32, max_spikes_per_dt=31), x, None)
    out, got = grads(seed_net(torch.float32, max_spikes_per_dt=31), x, 10)
    assert torch.equal(out, ref_out)
    for g, r in zip(got, ref, strict=True):  # float32 rounding, relative to the largest entry
        assert (g - r).abs().max() <= 1e-5 * r.abs().max()


def test_native_api_and_exp_syn_layers():
    torch.manual_seed(3)
    net = Sequential(LinearTorch((5, 6)), ExpSynTorch(6, tau=0.02)).to(torch.float64)
    assert_same_as_one_call(net, 5)


def test_noise_and_stochastic_transforms_are_replayed_in_the_backward_pass():
    """The second pass draws the same numbers (else the output check would raise), and two
    runs from the same seed give the same gradients."""
    net = seed_net(torch_api=False, noise_std=0.2)
    cfg = tt.make_param_T_config(net, lambda p: tt.stochastic_rounding(p, num_levels=8), "weights")
    tnet = tt.make_param_T_network(net, cfg).to_torch()
    x = inputs()
    runs = []
    for _ in range(2):
        torch.manual_seed(4)
        tnet.reset_state()
        runs.append(grads(tnet, x, 6))
    (out_a, grads_a), (out_b, grads_b) = runs
    assert torch.equal(out_a, out_b)
    for a, b in zip(grads_a, grads_b, strict=True):
        assert torch.equal(a, b)
    assert all(torch.isfinite(g).all() for g in grads_a)


class _CallCounter(nn.Module):
    """Adds the number of times it was called: not deterministic given the random state."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x + self.calls


def test_a_segment_that_runs_differently_the_second_time_raises():
    net = Sequential(LinearTorch((5, 4)), _CallCounter(), LIFTorch(4)).to(torch.float64)
    out = checkpoint_in_time(net.to_torch(), inputs(), 10)
    with pytest.raises(RuntimeError, match="gave another output when run again"):
        out.sum().backward()


def test_without_autograd_it_is_the_plain_call():
    net, x = seed_net(), inputs()
    with torch.no_grad():
        out = checkpoint_in_time(net, x, 5)
    net.reset_state()
    assert torch.equal(out, net(x.detach()))
    assert out.grad_fn is None


def test_bad_arguments_raise():
    net, x = seed_net(), inputs()
    with pytest.raises(TypeError, match=r"module must be a torch\.nn\.Module, got function"):
        checkpoint_in_time(lambda d: d, x, 5)
    with pytest.raises(TypeError, match="data must be a floating-point tensor, got a torch.int64"):
        checkpoint_in_time(net, torch.ones(2, 3, 5, dtype=torch.long), 5)
    with pytest.raises(ValueError, match=r"data must be \(B, T, N\).*got shape \(37, 5\)"):
        checkpoint_in_time(net, x[0], 5)
    with pytest.raises(TypeError, match="segment_steps must be an int, got float"):
        checkpoint_in_time(net, x, 2.5)
    with pytest.raises(ValueError, match="segment_steps must be >= 1, got 0"):
        checkpoint_in_time(net, x, 0)


def test_hardware_faithful_layers_are_refused():
    from snnqat.devices.xylo import hardware_faithful

    torch.manual_seed(5)
    net = Sequential(LinearTorch((5, 4)), LIFTorch(4), LinearTorch((4, 2)), LIFTorch(2))
    hf = hardware_faithful(net).to_torch()
    with pytest.raises(ValueError, match="hardware-faithful .integer. mode are not supported"):
        checkpoint_in_time(hf, inputs(torch.float32), 5)


class _SumOverTime(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=1)


def test_an_output_without_time_dimension_raises():
    net = Sequential(LinearTorch((5, 4)), LIFTorch(4), _SumOverTime()).to(torch.float64)
    with pytest.raises(ValueError, match=r"output must be \(B, T, ...\).*returned \(4, 4\)"):
        checkpoint_in_time(net.to_torch(), inputs(), 10)


class _Twice(nn.Module):
    """Runs the same LIF layer twice (shared weights and state)."""

    def __init__(self) -> None:
        super().__init__()
        self.lif = LIFTorch(4).to(torch.float64).to_torch()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lif(self.lif(x))


def test_a_stateful_layer_run_twice_per_call_raises():
    net = Sequential(LinearTorch((5, 4)), _Twice()).to(torch.float64).to_torch()
    with pytest.raises(RuntimeError, match="LIFTorch ran twice in one call"):
        checkpoint_in_time(net, inputs(), 10)  # (the last segment runs with autograd at once)


def test_a_single_layer_works_too():
    torch.manual_seed(6)
    assert_same_as_one_call(LIFTorch((5, 5), max_spikes_per_dt=3).to(torch.float64), 8)


def test_time_checkpointed_module_and_errors():
    net, x = seed_net(), inputs()
    lean = TimeCheckpointed(net, 9)
    assert "segment_steps=9" in repr(lean)
    assert list(lean.parameters()) == list(net.parameters())
    out = lean(x)
    net.reset_state()
    assert torch.equal(out, net(x))
    with pytest.raises(TypeError, match="module must be a torch.nn.Module, got int"):
        TimeCheckpointed(3, 9)
    with pytest.raises(ValueError, match="segment_steps must be >= 1, got 0"):
        TimeCheckpointed(net, 0)


def _ddp_worker(rank: int, port: int, lean: bool, queue) -> None:
    import os

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        torch.set_num_threads(1)
        net = seed_net()
        model = DistributedDataParallel(TimeCheckpointed(net, 10) if lean else net)
        x = inputs().detach()[rank * 2 : rank * 2 + 2]
        for _ in range(2):  # a second step: DDP's reducer must have finished the first
            net.reset_state()
            for p in net.parameters():
                p.grad = None
            loss_of(model(x)).backward()
        if rank == 0:
            queue.put([p.grad.tolist() for p in net.parameters()])
        dist.barrier()  # both done before the group goes (gloo's teardown is not ordered)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_distributed_data_parallel_around_time_checkpointed():
    """DDP wrapped around ``TimeCheckpointed`` averages the same gradients as around the net."""
    ctx = mp.get_context("spawn")
    grads = {}
    for lean in (False, True):
        queue = ctx.Queue()
        mp.spawn(_ddp_worker, args=(_free_port(), lean, queue), nprocs=2, join=True)
        grads[lean] = [torch.tensor(g, dtype=torch.float64) for g in queue.get(timeout=60)]
    for g, r in zip(grads[True], grads[False], strict=True):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)
    assert any(r.abs().sum() > 0 for r in grads[False])


def test_gradients_of_gradients_are_refused():
    net, x = seed_net(), inputs()
    out = checkpoint_in_time(net, x, 10)
    (g,) = torch.autograd.grad(loss_of(out), [x], create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad"):
        g.sum().backward()
