"""Random inputs of :func:`snnqat.kernels.lif_scan`, shared by the kernel, numba and CUDA tests
(this folder is on ``sys.path``, see ``tests/conftest.py``)."""

from __future__ import annotations

import torch

F64 = torch.float64


def make_inputs(
    b,
    t,
    n,
    s,
    *,
    rec=True,
    noise=True,
    alpha=(0.5, 0.95),
    beta=(0.3, 0.9),
    dtype=F64,
    seed=0,
    grad=True,
):
    """Float inputs that make many spikes and many multi-spikes; ``alpha``/``beta`` are the
    ranges the decays are drawn from. With ``grad``, every input requires grad."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0, shift=0.0):
        return torch.randn(*shape, generator=gen, dtype=dtype) * scale + shift

    def uniform(lo, hi, *shape):
        return torch.rand(*shape, generator=gen, dtype=dtype) * (hi - lo) + lo

    p = {
        "x": randn(b, t, n, s, scale=2.0, shift=0.8),
        "vmem0": randn(b, n),
        "isyn0": randn(b, n, s),
        "spikes0": torch.randint(0, 3, (b, n), generator=gen).to(dtype),
        "alpha": uniform(*alpha, n),
        "beta": uniform(*beta, n, s),
        "bias": randn(n, scale=0.1),
        "threshold": uniform(0.5, 1.5, n),
        "w_rec": randn(n, n * s, scale=0.4) if rec else None,
        "noise": randn(b, t, n, scale=0.1) if noise else None,
    }
    if grad:
        for v in p.values():
            if v is not None:
                v.requires_grad_()
    return p


def make_integer_inputs(b, t, n, s, *, rec, seed):
    """Integer-valued float64 inputs for the integer mode, driving the synaptic state into
    positive and negative saturation; returns ``(inputs, dash_mem, dash_syn)``."""
    gen = torch.Generator().manual_seed(seed)

    def ints(lo, hi, *shape):
        return torch.randint(lo, hi, shape, generator=gen).to(F64)

    x = ints(-3000, 9000, b, t, n, s)
    x[0, min(1, t - 1)] = 40000.0  # drives isyn into positive saturation
    x[-1, t // 2] = -40000.0  # and negative saturation
    dash_mem = torch.randint(0, 6, (n,), generator=gen)
    dash_syn = torch.randint(0, 6, (n, s), generator=gen)
    p = {
        "x": x,
        "vmem0": ints(-500, 500, b, n),
        "isyn0": ints(-500, 500, b, n, s),
        "spikes0": ints(0, 3, b, n),
        "alpha": 1 - 2.0 ** -dash_mem.to(F64),
        "beta": 1 - 2.0 ** -dash_syn.to(F64),
        "bias": ints(-50, 50, n),
        "threshold": ints(200, 2000, n),
        "w_rec": ints(-800, 800, n, n * s) if rec else None,
        "noise": None,
    }
    return p, dash_mem, dash_syn
