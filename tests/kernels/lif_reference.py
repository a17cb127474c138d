"""Obviously-correct reference implementations that the fused kernels are tested against.

* :func:`lif_reference`: the per-step LIF equations in plain autograd (a Python loop over
  ``x.unbind(1)``), with the surrogates as small autograd Functions written from the spec.
  With ``integer=`` it computes the integer forward with torch ops and attaches it to the
  float expressions straight-through, so its gradients are the kernel's integer-mode ones.
* :func:`lif_integer_reference`: the integer (hardware) forward with Python ints, element by
  element (slow; small sizes only), written from the hardware description, not the kernel.
* :func:`exp_syn_reference`: the exponential synapse in plain autograd.

Nothing here imports the kernels under test.
"""

from __future__ import annotations

import torch
from torch import Tensor

MIN_THRESHOLD = 1e-6


class RefStepPWL(torch.autograd.Function):
    """Spike count forward; window surrogate backward (api.md 3.5)."""

    @staticmethod
    def forward(ctx, u, thr, window, max_spikes):
        ctx.save_for_backward(u, thr)
        ctx.window = window
        count = (u >= thr) * torch.floor(u / thr)
        return torch.clamp(count, max=max_spikes)

    @staticmethod
    def backward(ctx, g):
        u, thr = ctx.saved_tensors
        mask = (u >= thr - ctx.window).to(u.dtype)
        return g * mask / thr, -g * u * mask / thr**2, None, None


class RefPeriodicExponential(torch.autograd.Function):
    """Spike count forward; periodic exponential surrogate backward (api.md 3.5)."""

    @staticmethod
    def forward(ctx, u, thr, window, max_spikes):
        ctx.save_for_backward(u, thr)
        ctx.window, ctx.max_spikes = window, max_spikes
        count = (u >= thr) * torch.floor(u / thr)
        return torch.clamp(count, max=max_spikes)

    @staticmethod
    def backward(ctx, g):
        u, thr = ctx.saved_tensors
        v_shift = u - thr / 2
        n = torch.clamp(torch.floor(v_shift / thr), max=ctx.max_spikes - 1)
        w = torch.where(u < thr, v_shift, v_shift - n * thr)
        pdf = torch.exp(-torch.abs(w - thr / 2) / ctx.window) / thr
        return g * pdf, -g * pdf * u / thr, None, None


REF_SURROGATES = {"step_pwl": RefStepPWL, "periodic_exponential": RefPeriodicExponential}


def _dec(v: Tensor, dash: Tensor) -> Tensor:
    """``v >> dash`` (floor), or ``sign(v)`` where that is 0 and ``v != 0``."""
    shifted = torch.floor(v / 2.0**dash)
    return torch.where((shifted == 0) & (v != 0), torch.sign(v), shifted)


def _straight_through(float_value: Tensor, int_value: Tensor) -> Tensor:
    return float_value + (int_value - float_value).detach()


def lif_reference(
    x,
    vmem0,
    isyn0,
    spikes0,
    alpha,
    beta,
    bias,
    threshold,
    w_rec=None,
    noise=None,
    *,
    max_spikes=2.0**16,
    window=0.5,
    surrogate="step_pwl",
    integer=None,
):
    """The LIF equations of ``docs/dev/kernel_api.md``, step by step, in plain autograd.

    ``integer`` is ``None`` or ``(dash_mem, dash_syn, state_min, state_max)``.

    Returns:
        dict with ``spikes``, ``vmem``, ``isyn``, ``irec`` traces (``(B, T, ...)``).
    """
    b, _, n, s = x.shape
    spike_fn = REF_SURROGATES[surrogate].apply
    thr = threshold + (threshold.clamp_min(MIN_THRESHOLD) - threshold).detach()
    noise_steps = noise.unbind(1) if noise is not None else [0.0] * x.shape[1]
    v, i_syn, spk = vmem0, isyn0, spikes0
    out = {"spikes": [], "vmem": [], "isyn": [], "irec": []}
    for x_t, noise_t in zip(x.unbind(1), noise_steps):
        if w_rec is not None:
            irec = (spk @ w_rec).reshape(b, n, s)
        else:
            irec = torch.zeros_like(i_syn)
        a = i_syn + x_t + irec
        if integer is not None:
            dash_mem, dash_syn, lo, hi = integer
            with torch.no_grad():
                a_int = (i_syn + x_t).clamp(lo, hi)
                if w_rec is not None:  # each source saturates on its own, in order
                    for m in range(n):
                        contrib = spk[:, m : m + 1] * w_rec[m]
                        a_int = (a_int + contrib.reshape(b, n, s)).clamp(lo, hi)
            a = _straight_through(a, a_int)
        i_new = beta * a
        if integer is not None:
            with torch.no_grad():
                i_int = a - _dec(a, dash_syn)
            i_new = _straight_through(i_new, i_int)
        u = alpha * v + i_new.sum(-1) + noise_t + bias
        if integer is not None:
            with torch.no_grad():
                dv = -_dec(v, dash_mem)
                dv = torch.where((dash_mem == 0) & (dv == -lo), torch.full_like(dv, lo), dv)
                dv = (dv + i_new.sum(-1)).clamp(lo, hi)  # exact synapse sum, saturated once
                dv = (dv + bias + noise_t).clamp(lo, hi)
                u_int = (v + dv).clamp(lo, hi)
            u = _straight_through(u, u_int)
        spk = spike_fn(u, thr, window, max_spikes)
        v = u - spk * thr
        i_syn = i_new
        for key, val in zip(out, (spk, v, i_syn, irec)):
            out[key].append(val)
    return {key: torch.stack(vals, 1) for key, vals in out.items()}


def _py_dec(v: int, dash: int) -> int:
    step = v >> dash
    if step == 0 and v != 0:
        step = 1 if v > 0 else -1
    return step


def lif_integer_reference(
    x,
    vmem0,
    isyn0,
    spikes0,
    dash_mem,
    dash_syn,
    bias,
    threshold,
    w_rec,
    *,
    max_spikes,
    lo=-32768,
    hi=32767,
):
    """Hardware integer LIF with Python ints, element by element (Xylo core semantics,
    ``docs/dev/xylo_semantics.md``: per-source saturation, exact synapse sum).

    All arguments are integer-valued tensors (``w_rec`` may be ``None``).

    Returns:
        dict with ``spikes``, ``vmem``, ``isyn``, ``irec`` as float64 tensors.
    """

    def sat(value: int) -> int:
        return min(max(value, lo), hi)

    b_n, t_n, n_n, s_n = x.shape
    xs = x.long().tolist()
    dm, ds = dash_mem.long().tolist(), dash_syn.long().tolist()
    bs, th = bias.long().tolist(), threshold.long().tolist()
    w = w_rec.long().tolist() if w_rec is not None else None
    out = {"spikes": [], "vmem": [], "isyn": [], "irec": []}
    for b in range(b_n):
        v = vmem0[b].long().tolist()
        i_syn = isyn0[b].long().tolist()
        spk = spikes0[b].long().tolist()
        traces = {key: [] for key in out}
        for t in range(t_n):
            irec = [[0] * s_n for _ in range(n_n)]
            if w is not None:
                for j in range(n_n):
                    for k in range(s_n):
                        irec[j][k] = sum(spk[m] * w[m][j * s_n + k] for m in range(n_n))
            new_spk = [0] * n_n
            for j in range(n_n):
                for k in range(s_n):
                    cur = sat(i_syn[j][k] + xs[b][t][j][k])
                    if w is not None:  # each source neuron saturates on its own, in order
                        for m in range(n_n):
                            cur = sat(cur + spk[m] * w[m][j * s_n + k])
                    i_syn[j][k] = cur - _py_dec(cur, ds[j][k])
                leak = -_py_dec(v[j], dm[j])
                if leak == -lo:  # -dec(-32768, 0) wraps around in 16 bits, as in the core
                    leak = lo
                dv = sat(leak + sum(i_syn[j]))  # synapses summed exactly, saturated once
                dv = sat(dv + bs[j])
                vm = sat(v[j] + dv)
                count = 0
                while vm >= th[j] and count < max_spikes:
                    count += 1
                    vm -= th[j]
                v[j], new_spk[j] = vm, count
            spk = new_spk
            for key, val in zip(traces, (spk, v, i_syn, irec)):
                traces[key].append([list(r) if isinstance(r, list) else r for r in val])
        for key in out:
            out[key].append(traces[key])
    return {key: torch.tensor(val, dtype=torch.float64) for key, val in out.items()}


def exp_syn_reference(x: Tensor, isyn0: Tensor, beta: Tensor) -> Tensor:
    """``i_t = beta * (i_{t-1} + x_t)`` in plain autograd; returns the ``(B, T, N)`` trace."""
    i_syn, trace = isyn0, []
    for x_t in x.unbind(1):
        i_syn = beta * (i_syn + x_t)
        trace.append(i_syn)
    return torch.stack(trace, 1)
