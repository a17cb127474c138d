"""Spike functions and their surrogate derivatives (snnqat.kernels.surrogates)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from snnqat.kernels import surrogates as sg
from snnqat.kernels.surrogates import (
    PeriodicExponential,
    StepPWL,
    periodic_exponential_grads,
    spike_count,
    step_pwl_grads,
)

F64 = torch.float64
FUNCTIONS = {"step_pwl": StepPWL, "periodic_exponential": PeriodicExponential}


# --------------------------------------------------------------------------- forward
def test_spike_count_multi_spike_and_cap():
    u = torch.tensor([-3.0, -0.0, 0.4, 0.999, 1.0, 2.5, 9.51, 1e6])
    assert spike_count(u, 1.0).tolist() == [0, 0, 0, 0, 1, 2, 9, 2.0**16]
    assert spike_count(u, 1.0, max_spikes_per_dt=3).tolist() == [0, 0, 0, 0, 1, 2, 3, 3]
    assert spike_count(u, 1.0, max_spikes_per_dt=1).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_spike_count_per_neuron_threshold_and_out_buffer():
    u = torch.tensor([[2.0, 2.0], [5.0, -5.0]], dtype=F64)
    thr = torch.tensor([0.5, 2.0], dtype=F64)
    out = torch.empty(2, 2, dtype=F64)
    res = spike_count(u, thr, out=out)
    assert res is out
    assert out.tolist() == [[4, 1], [10, 0]]


def test_spike_count_is_never_negative_or_nan_for_tiny_thresholds():
    u = torch.tensor([-1e30, -1.0, 0.0, 1.0, 1e30])
    s = spike_count(u, 1e-30)
    assert torch.isfinite(s).all() and (s >= 0).all()
    assert s.tolist() == [0, 0, 0, 2.0**16, 2.0**16]


@settings(max_examples=300, deadline=None)
@given(
    thr=st.floats(1e-30, 1e30, allow_subnormal=False),
    rel=st.floats(-3.0, 3.0),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_unmasked_count_equals_masked_reference(thr, rel, dtype):
    """``clamp(floor(u/θ), 0, max)`` equals the reference ``[u >= θ]·floor(u/θ)``, also just
    below the threshold (where the quotient must not round up to 1)."""
    thr_t = torch.tensor(thr, dtype=dtype)
    below = torch.nextafter(thr_t, torch.tensor(0.0, dtype=dtype))
    u = torch.stack([thr_t * rel, below, thr_t, -below, below * 2, torch.zeros((), dtype=dtype)])
    masked = ((u >= thr_t) * torch.floor(u / thr_t)).clamp(max=2.0**16)
    assert torch.equal(spike_count(u, thr_t), masked)
    assert spike_count(below, thr_t) == 0


@pytest.mark.parametrize("fn", FUNCTIONS.values(), ids=FUNCTIONS.keys())
def test_functions_share_the_forward(fn):
    x = torch.linspace(-2, 10, 101, dtype=F64)
    assert torch.equal(fn.apply(x, torch.tensor(0.7, dtype=F64)), spike_count(x, 0.7))
    assert torch.equal(fn.apply(x, 0.7, 0.5, torch.tensor(3.0)), spike_count(x, 0.7, 3.0))


# --------------------------------------------------------------------------- step_pwl backward
def test_step_pwl_documented_example():
    x = torch.tensor([0.4, 0.6, 1.0, 2.5], requires_grad=True)
    thr = torch.tensor(1.0, requires_grad=True)
    StepPWL.apply(x, thr).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0]
    assert thr.grad.item() == pytest.approx(-(0.6 + 1.0 + 2.5))


def test_step_pwl_window_is_absolute_and_open_at_the_top():
    x = torch.tensor([0.7, 0.85, 2.0, 100.0], dtype=F64, requires_grad=True)
    StepPWL.apply(x, 2.0, 1.2).sum().backward()  # mask: x >= 0.8
    assert x.grad.tolist() == [0.0, 0.5, 0.5, 0.5]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_backward_equals_the_helper_formulas(name):
    gen = torch.Generator().manual_seed(1)
    x = (torch.randn(5, 7, generator=gen, dtype=F64) * 3).requires_grad_()
    thr = (torch.rand(7, generator=gen, dtype=F64) + 0.5).requires_grad_()
    g = torch.randn(5, 7, generator=gen, dtype=F64)
    FUNCTIONS[name].apply(x, thr, 0.4, 3.0).backward(g)
    du, dthr = sg.SURROGATE_GRADS[name](x.detach(), thr.detach(), 0.4, 3.0)
    torch.testing.assert_close(x.grad, g * du, rtol=0, atol=0)
    torch.testing.assert_close(thr.grad, (g * dthr).sum(0), rtol=1e-14, atol=1e-14)


def test_step_pwl_grads_written_out():
    u = torch.tensor([0.2, 0.5, 0.8, 3.0], dtype=F64)
    thr = 0.8
    du, dthr = step_pwl_grads(u, thr, 0.5)
    mask = torch.tensor([0.0, 1.0, 1.0, 1.0], dtype=F64)
    torch.testing.assert_close(du, mask / thr)
    torch.testing.assert_close(dthr, -u * mask / thr**2)


def test_float_threshold_gets_no_gradient_and_no_error():
    x = torch.tensor([0.5, 1.5], requires_grad=True)
    StepPWL.apply(x, 1.0).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0]


# --------------------------------------------------------------------------- periodic exponential
def test_periodic_exponential_written_out():
    thr, window = 2.0, 0.5
    u = torch.tensor([0.5, 2.0, 3.0, 4.0, 7.0], dtype=F64)
    du, dthr = periodic_exponential_grads(u, thr, window, 2.0**16)
    # peak 1/thr at every multiple of the threshold; below the threshold one-sided decay.
    expected = [
        math.exp(-1.5 / window) / thr,
        1 / thr,
        math.exp(-1.0 / window) / thr,
        1 / thr,
        math.exp(-1.0 / window) / thr,
    ]
    torch.testing.assert_close(du, torch.tensor(expected, dtype=F64))
    torch.testing.assert_close(dthr, -du * u / thr)


def test_periodic_exponential_stops_at_the_spike_cap():
    u = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=F64)
    du, _ = periodic_exponential_grads(u, 1.0, 0.5, max_spikes_per_dt=2)
    assert du[:2].tolist() == [1.0, 1.0]
    assert du[2] < du[1] and du[3] < du[2]  # no more peaks beyond the cap


# --------------------------------------------------------------------------- gradcheck
class _SmoothStepPWL(StepPWL):
    """Smooth forward ``x/θ · [x >= θ - w]`` whose exact derivative is the StepPWL surrogate
    (away from the mask edge); the backward is StepPWL's own."""

    @staticmethod
    def forward(x, threshold, window=0.5, max_spikes_per_dt=2.0**16):
        return x / threshold * (x >= threshold - window)


class _SmoothPeriodicExponential(PeriodicExponential):
    """Antiderivative in ``x`` of the periodic bump, ``w·sign(z)(1 - e^{-|z|/w})/θ`` with
    ``z = r - θ/2`` (smooth inside one period); the backward is PeriodicExponential's own."""

    @staticmethod
    def forward(x, threshold, window=0.5, max_spikes_per_dt=2.0**16):
        half = threshold / 2
        shifted = x - half
        n = torch.floor(shifted / threshold).clamp(max=max_spikes_per_dt - 1)
        z = torch.where(x < threshold, shifted, shifted - n * threshold) - half
        return window * torch.sign(z) * (1 - torch.exp(-z.abs() / window)) / threshold


def test_gradcheck_step_pwl_backward():
    # values away from the window edge (thr - window = 0.5 .. 1.0 here)
    x = torch.tensor([[0.1, 1.2, 2.7], [3.3, -1.0, 1.9]], dtype=F64, requires_grad=True)
    thr = torch.tensor([1.0, 1.3, 1.5], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: _SmoothStepPWL.apply(a, b, 0.5), (x, thr))


def test_gradcheck_periodic_exponential_backward():
    # inside periods, away from the period boundaries r - θ/2 = ±θ/2
    x = torch.tensor([0.2, 0.8, 1.1, 1.9, 2.3, 3.05, 5.7], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a: _SmoothPeriodicExponential.apply(a, 1.0, 0.4, 2.0**16), (x,)
    )
    assert torch.autograd.gradcheck(
        lambda a: _SmoothPeriodicExponential.apply(a, 1.0, 0.4, 3.0), (x,)
    )
