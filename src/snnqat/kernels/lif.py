r"""The fused LIF scan: one autograd Function over the whole time sequence.

Per step ``t = 0 … T-1`` (float mode), with ``B`` batches, ``N`` neurons and ``S`` synapses
per neuron:

.. math::
    r_t &= \operatorname{reshape}(s_{t-1} W_{rec})\ \ (B, N, S)
        \quad (0 \text{ without recurrence}) \\
    a_t &= i_{t-1} + x_t + r_t \\
    i_t &= \beta \odot a_t \qquad \text{(the decay is applied after the input is added)} \\
    u_t &= \alpha \odot v_{t-1} + \textstyle\sum_s i_t + b + \eta_t \\
    s_t &= [u_t \ge \theta] \cdot \min(\lfloor u_t / \theta \rfloor, s_{\max}) \\
    v_t &= u_t - s_t\, \theta \qquad \text{(subtractive reset, once per spike)}

The forward pass runs as a loop under ``no_grad`` that writes into preallocated buffers and
keeps only what the backward pass needs (the pre-reset membrane ``u``, the spikes ``s`` and,
when ``β`` is trained, the pre-decay current ``a``). The backward pass is a hand-written
reverse-time loop (exact BPTT through the surrogate) that computes only the per-step adjoints
and stores three of them for every step (``λu``; ``λs`` when ``θ`` is trained; ``λi`` when
``β`` is, which then becomes ``λa = ∂L/∂x`` in place, else ``λa``); the parameter gradients
are sums over batch and time formed afterwards with batched ops, a few time chunks at a time
so that no temporary has the whole sequence's size (``λv`` and ``σ_θ`` are formed again
there). The inputs and the incoming gradients are read through per-step views, without
time-major copies.

Adjoints, for ``t = T-1 … 0`` (``λ`` is the total derivative of the loss, ``g`` the
gradient arriving at a recorded output, ``σ_u, σ_θ`` the surrogate derivatives at ``u_t``)::

    λv_t = g^v_t + α λu_{t+1}
    λs_t = g^s_t - θ λv_t + reshape(λr_{t+1}) W_recᵀ
    λu_t = λv_t + σ_u λs_t
    λi_t = g^i_t + λu_t + λa_{t+1}          (λu broadcast over synapses)
    λa_t = β λi_t = ∂L/∂x_t,    λr_t = λa_t + g^r_t

    ∂L/∂α = Σ λu_t v_{t-1}    ∂L/∂b = Σ λu_t          ∂L/∂β = Σ λi_t a_t
    ∂L/∂θ = Σ (σ_θ λs_t - s_t λv_t)                   ∂L/∂W_rec = Σ s_{t-1}ᵀ λr_t
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from snnqat.kernels import _graphs
from snnqat.kernels.surrogates import (
    DEFAULT_LEARNING_WINDOW,
    DEFAULT_MAX_SPIKES_PER_DT,
    SURROGATE_GRADS,
    spike_count,
)

__all__ = [
    "BACKENDS",
    "MIN_THRESHOLD",
    "IntegerSemantics",
    "LIFConfig",
    "LIFResult",
    "bitshift_decay",
    "exp_syn_scan",
    "lif_scan",
]

BACKENDS = ("auto", "torch", "numba")
"""Accepted values of :attr:`LIFConfig.backend`.

``"auto"`` runs the compiled numba loops (:mod:`snnqat.kernels._numba_lif`) when numba is
installed, the tensors are float32/float64 on the CPU, the float mode is used
(``integer=None``) and no ``torch.compile`` trace is running, and the pure-torch loops
otherwise. ``"numba"`` requires those conditions; ``"torch"`` always runs the pure-torch
loops. The numba loops flush subnormal floats to zero (a state below ``1.2e-38`` in float32
becomes 0, where the torch loops keep it): slow leaks reach that range, where the CPU's
arithmetic is tens of times slower. On a GPU the torch loops of the float mode run as replayed
CUDA graphs unless :attr:`LIFConfig.cuda_graphs` is false (see :mod:`snnqat.kernels._graphs`).
"""

MIN_THRESHOLD = 1e-6
"""The kernel uses ``max(threshold, MIN_THRESHOLD)`` so spike counts stay finite and >= 0.

The clamp is straight-through: the gradient reaches the threshold unchanged, so a trained
threshold that went non-positive can recover.
"""


@dataclasses.dataclass(frozen=True, eq=False)
class IntegerSemantics:
    r"""Hardware (Xylo-class) integer forward semantics for :func:`lif_scan`.

    States are integer-valued floats; ``sat`` clamps to ``[state_min, state_max]``; ``dec`` is
    the floor bit-shift with a minimum step of 1 (:func:`bitshift_decay`). Per step::

        i   = clamp(i + x_t, x_lo_t, x_hi_t)        # input delivery, see below
        i   = sat(i + n_j * w_rec[j]) for each source neuron j in index order
        i   = i - dec(i, dash_syn)
        dv  = sat(-dec(v, dash_mem) + sum_s i_s)    # exact synapse sum, saturated once
        dv  = sat(dv + bias + noise_t);  u = sat(v + dv)
        e   = min(spike count of u, max_spikes_per_dt - a_t);  v = u - e·θ
        s   = a_t + e                                # a_t: spikes aliased onto the neuron

    The input delivery of a chain of sources, each saturating, is the function
    ``i -> clamp(i + x_t, x_lo_t, x_hi_t)`` (clamped additions compose into one clamped
    addition), so a caller that knows the per-source order passes ``x_lo``/``x_hi``; without
    them the bounds are the state range. The recurrent delivery takes a fast path (one matrix
    product) in steps where no partial sum can leave the state range, and replays the
    sources one by one otherwise. As in the vendor's core, ``-dec(v, 0)`` of the most
    negative state wraps around in 16 bits.

    The backward pass is the float backward with the ``alpha``/``beta`` given to
    :func:`lif_scan` (pass ``1 - 2**-dash`` computed differentiably), i.e. straight-through
    for the floor shifts and the saturation.

    Attributes:
        dash_mem: ``(N,)`` membrane bit-shifts (integer values >= 0).
        dash_syn: ``(N, S)`` synaptic bit-shifts (integer values >= 0).
        state_min: Lower saturation bound of the states.
        state_max: Upper saturation bound of the states.
        x_lo: ``(B, T, N, S)`` lower bounds of the input delivery, or ``None``.
        x_hi: ``(B, T, N, S)`` upper bounds of the input delivery, or ``None``.
        spike_offset: ``(B, T, N)`` spikes aliased onto each neuron before it fires, or
            ``None``; they count toward the spike cap and are part of the output.

    Example:
        >>> import torch
        >>> sem = IntegerSemantics(torch.tensor([4]), torch.tensor([[2]]))
        >>> sem.state_min, sem.state_max
        (-32768, 32767)
    """

    dash_mem: Tensor
    dash_syn: Tensor
    state_min: float = -32768
    state_max: float = 32767
    x_lo: Tensor | None = None
    x_hi: Tensor | None = None
    spike_offset: Tensor | None = None

    def __post_init__(self) -> None:
        if not self.state_min < self.state_max:
            raise ValueError(
                "IntegerSemantics: expected state_min < state_max, "
                f"got state_min={self.state_min}, state_max={self.state_max}."
            )


@dataclasses.dataclass(frozen=True)
class LIFConfig:
    """Static configuration of :func:`lif_scan` (frozen and hashable).

    Attributes:
        max_spikes_per_dt: Cap on the spikes one neuron emits per step (a 0-d tensor is
            converted to ``float``).
        learning_window: Surrogate window width, in membrane units.
        surrogate: ``"step_pwl"`` or ``"periodic_exponential"``.
        integer: Hardware integer forward semantics, or ``None`` for float dynamics.
        backend: ``"auto"``, ``"torch"`` or ``"numba"`` (see :data:`BACKENDS`).
        cuda_graphs: Run the pure-torch float loops on a GPU as replayed CUDA graphs (one
            launch per call instead of one per operation and step; see
            :mod:`snnqat.kernels._graphs` for the memory it keeps).
        grad_last: The final states (``vmem_last``, ``isyn_last``, ``spikes_last``) are
            differentiable outputs: a gradient sent to them enters the last step's membrane,
            synaptic current and spikes. For running a sequence in segments with gradients
            between them (:func:`snnqat.nn.checkpoint_in_time`); otherwise they are detached.

    Example:
        >>> LIFConfig(max_spikes_per_dt=31).max_spikes_per_dt
        31.0
        >>> LIFConfig(surrogate="sigmoid")
        Traceback (most recent call last):
        ...
        ValueError: LIFConfig.surrogate: expected one of [...], got 'sigmoid'.
    """

    max_spikes_per_dt: float = DEFAULT_MAX_SPIKES_PER_DT
    learning_window: float = DEFAULT_LEARNING_WINDOW
    surrogate: str = "step_pwl"
    integer: IntegerSemantics | None = None
    backend: str = "auto"
    cuda_graphs: bool = True
    grad_last: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_spikes_per_dt", float(self.max_spikes_per_dt))
        object.__setattr__(self, "learning_window", float(self.learning_window))
        if self.surrogate not in SURROGATE_GRADS:
            raise ValueError(
                f"LIFConfig.surrogate: expected one of {list(SURROGATE_GRADS)}, "
                f"got {self.surrogate!r}."
            )
        if self.backend not in BACKENDS:
            raise ValueError(
                f"LIFConfig.backend: expected one of {list(BACKENDS)}, got {self.backend!r}."
            )
        if not self.max_spikes_per_dt > 0:
            raise ValueError(
                f"LIFConfig.max_spikes_per_dt: expected > 0, got {self.max_spikes_per_dt}."
            )
        if not isinstance(self.cuda_graphs, bool):
            raise TypeError(
                f"LIFConfig.cuda_graphs: expected a bool, got {type(self.cuda_graphs).__name__}."
            )


class LIFResult(NamedTuple):
    """What :func:`lif_scan` returns. Traces are ``None`` unless ``record=True``.

    Attributes:
        spikes: ``(B, T, N)`` spike counts.
        vmem: ``(B, T, N)`` membrane after the reset.
        isyn: ``(B, T, N, S)`` synaptic currents after the decay.
        irec: ``(B, T, N, S)`` recurrent input (zeros without recurrence).
        vmem_last: ``(B, N)`` final membrane, detached (unless ``config.grad_last``).
        isyn_last: ``(B, N, S)`` final synaptic currents, detached (unless ``grad_last``).
        spikes_last: ``(B, N)`` final spikes, detached (unless ``grad_last``).
    """

    spikes: Tensor
    vmem: Tensor | None
    isyn: Tensor | None
    irec: Tensor | None
    vmem_last: Tensor
    isyn_last: Tensor
    spikes_last: Tensor


# --------------------------------------------------------------------------- integer helpers
def _decay_step(v: Tensor, scale: Tensor, out: Tensor, tmp: Tensor) -> Tensor:
    """``out = dec(v)``: ``⌊v·2^-dash⌋``, or ``sign(v)`` where that is 0 and ``v != 0``.

    For integer ``v`` and ``dash >= 0`` this equals ``max(⌊v·2^-dash⌋, min(v, 1))``: for
    ``v > 0`` the minimum step is 1, for ``v <= 0`` the floor already is ``<= v·2^-dash``
    and ``>= v``.
    """
    torch.mul(v, scale, out=out).floor_()
    torch.clamp(v, max=1.0, out=tmp)
    return torch.maximum(out, tmp, out=out)


def bitshift_decay(v: Tensor, dash: Tensor | int) -> Tensor:
    r"""One hardware decay step ``v - dec(v, dash)`` of integer-valued states.

    .. math::
        \operatorname{dec}(v, d) = \begin{cases}
            v \gg d = \lfloor v / 2^d \rfloor & \text{if that is not } 0 \text{ or } v = 0 \\
            \operatorname{sign}(v) & \text{otherwise (minimum step of 1)}
        \end{cases}

    Args:
        v: Integer-valued states (a floating or an integer dtype).
        dash: Bit-shifts ``d >= 0``, broadcastable to ``v``.

    Returns:
        The decayed states, same dtype as ``v``.

    Example:
        >>> import torch
        >>> bitshift_decay(torch.tensor([5.0, 1.0, -1.0, -5.0]), torch.tensor([1, 4, 4, 1]))
        tensor([ 3.,  0.,  0., -2.])
    """
    work = v if v.is_floating_point() else v.to(torch.float64)
    scale = torch.exp2(-torch.as_tensor(dash, dtype=work.dtype, device=work.device))
    shape = torch.broadcast_shapes(work.shape, scale.shape)
    step = _decay_step(
        work,
        scale,
        torch.empty(shape, dtype=work.dtype, device=work.device),
        torch.empty_like(work),
    )
    return (work - step).to(v.dtype)


def _sat(v: Tensor, sem: IntegerSemantics) -> Tensor:
    return v.clamp_(sem.state_min, sem.state_max)


# --------------------------------------------------------------------------- validation
def _shape_error(name: str, expected: tuple, got: Tensor) -> ValueError:
    return ValueError(
        f"lif_scan: `{name}` has the wrong shape.\n"
        f"  expected: {expected}\n  got:      {tuple(got.shape)}"
    )


def _check_shapes(x: Tensor, named: dict[str, tuple[Tensor | None, tuple]]) -> None:
    if x.dim() != 4:
        raise ValueError(
            "lif_scan: `x` must be (B, T, N, S).\n"
            f"  expected: 4 dimensions\n  got:      {tuple(x.shape)}"
        )
    for name, (tensor, expected) in named.items():
        if tensor is not None and tuple(tensor.shape) != expected:
            raise _shape_error(name, expected, tensor)


# --------------------------------------------------------------------------- backends
@functools.cache
def _numba_module():
    """The compiled-loop backend, or ``None`` when numba is not installed."""
    try:
        from snnqat.kernels import _numba_lif
    except ImportError:
        return None
    return _numba_lif


def _use_numba(config: LIFConfig, x: Tensor) -> bool:
    """Whether ``config.backend`` selects the numba loops for ``x`` (see :data:`BACKENDS`).

    Raises:
        ValueError: ``backend="numba"`` but numba is missing, or the tensors are not
            float32/float64 on the CPU, or the integer mode is used.
    """
    if config.backend == "torch":
        return False
    problem = None
    if torch.compiler.is_compiling():
        problem = "torch.compile (the compiled loops cannot be traced; use backend='auto')"
    elif x.device.type != "cpu":
        problem = f"tensors on {x.device} (it runs on the CPU only)"
    elif x.dtype not in (torch.float32, torch.float64):
        problem = f"dtype {x.dtype} (it supports float32 and float64)"
    elif config.integer is not None:
        problem = "the integer mode (it implements the float mode; use backend='torch')"
    elif _numba_module() is None:
        problem = "numba, which is not installed (pip install numba)"
    if problem is None:
        return True
    if config.backend == "numba":
        raise ValueError(f"lif_scan: backend='numba' cannot run with {problem}.")
    return False


# --------------------------------------------------------------------------- the scan
# Internally every buffer is time-major, (T, B, ...), so that each step works on contiguous
# memory (measured ~1.8x faster per step than batch-major slices); the outputs are copied
# back to (B, T, ...) once.
def _swap_tb(t: Tensor | None) -> Tensor | None:
    """``(B, T, ...) <-> (T, B, ...)`` as a contiguous copy (``None`` passes through)."""
    return None if t is None else t.transpose(0, 1).contiguous()


def _alloc(t_steps: int, full: bool, *shape: int, opts: dict) -> tuple[Tensor, list[Tensor]]:
    """A ``(T, *shape)`` buffer and its per-step views, or one rolling ``shape`` buffer."""
    if full:
        buf = torch.empty(t_steps, *shape, **opts)
        return buf, list(buf.unbind(0))
    buf = torch.empty(*shape, **opts)
    return buf, [buf] * t_steps


_CHUNK_ELEMENTS = 1 << 20
"""Elements per time chunk of the sums after the reverse loop (the size of their temporaries),
unless that makes more than :data:`_MAX_CHUNKS` chunks."""
_MAX_CHUNKS = 8
"""At most this many time chunks (each costs a few kernel launches on a GPU)."""


def _time_chunks(t_steps: int, per_step: int) -> list[tuple[int, int]]:
    """``[t0, t1)`` ranges covering ``0 … T-1``: about :data:`_CHUNK_ELEMENTS` elements each,
    at most :data:`_MAX_CHUNKS` of them.

    Example:
        >>> _time_chunks(10, 2**19)
        [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
        >>> len(_time_chunks(500, 2**16))
        8
    """
    size = max(1, _CHUNK_ELEMENTS // max(1, per_step), -(-t_steps // _MAX_CHUNKS))
    return [(t0, min(t0 + size, t_steps)) for t0 in range(0, t_steps, size)]


class _Steps(NamedTuple):
    """Per-step views used by the forward loops (``noise``/``rec`` may be ``None``)."""

    x: list[Tensor]
    noise: list[Tensor] | None
    a: list[Tensor]
    i: list[Tensor]
    u: list[Tensor]
    s: list[Tensor]
    v: list[Tensor]
    rec: list[Tensor] | None


class _LIFScan(torch.autograd.Function):
    """Fused LIF over all time steps; see the module docstring for the equations."""

    @classmethod
    def apply(cls, *args):  # noqa: ANN002, ANN206
        """``Function.apply`` without its per-call ``inspect.signature`` binding.

        With ``setup_context`` defined, torch binds the arguments to ``forward``'s signature on
        every call (about 0.1 ms here); :func:`lif_scan` always passes all 12 arguments
        positionally, so the binding is the identity. Under functorch transforms torch's own
        path runs.
        """
        if torch._C._are_functorch_transforms_active():
            global _FUNCTORCH_DEPTH
            _FUNCTORCH_DEPTH += 1  # no CUDA graphs: a replay mutates buffers from outside
            try:
                return super().apply(*args)
            finally:
                _FUNCTORCH_DEPTH -= 1
        return super(torch.autograd.Function, cls).apply(*args)

    @staticmethod
    def forward(
        x, vmem0, isyn0, spikes0, alpha, beta, bias, threshold, w_rec, noise, config, record
    ):
        keep_a = beta.requires_grad
        if _use_numba(config, x):
            thr = threshold.clamp_min(MIN_THRESHOLD)
            args = (x, vmem0, isyn0, spikes0, alpha, beta, bias, thr, w_rec, noise)
            return _numba_module().forward(*args, config.max_spikes_per_dt, record, keep_a)
        args = (x, vmem0, isyn0, spikes0, alpha, beta, bias, threshold, w_rec, noise)
        if _graphed(config, x):
            key = ("forward", _structure(args), config, record, keep_a)
            run = functools.partial(_torch_forward, config=config, record=record, keep_a=keep_a)
            out, graphed = _graphs.run_graphed(key, run, args)
        else:
            out, graphed = _torch_forward(*args, config, record, keep_a), False
        spikes, u, a, vmem, isyn, irec, *last = out
        b, t_steps, n, s = x.shape
        if irec is not None:
            irec = irec.view(t_steps, b, n, s)
        traces = tuple(_swap_tb(tr) for tr in (vmem, isyn, irec)) if record else (None,) * 3
        if graphed:  # the graph's buffers: what is kept must be copied out
            u, a = u.clone(), None if a is None else a.clone()
        return (_swap_tb(spikes), *traces, *(t.clone() for t in last), u, a)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, vmem0, _, spikes0, alpha, beta, _, threshold, w_rec, _, config, _ = inputs
        spikes, _, _, _, v_last, i_last, s_last, u, a = output
        last = () if config.grad_last else (v_last, i_last, s_last)
        ctx.mark_non_differentiable(*(o for o in (*last, u, a) if o is not None))
        ctx.set_materialize_grads(False)
        ctx.shape = x.shape
        ctx.numba = _use_numba(config, x)
        ctx.graphs = not ctx.numba and _graphed(config, x)
        # numba: ``u`` holds state checkpoints; the backward pass re-runs the forward pass
        # from them, with the input (unless ``a`` is kept), the noise and the bias.
        extra = (x if a is None else None, inputs[9], inputs[6]) if ctx.numba else ()
        kept = spikes
        if ctx.numba:  # the compiled backward reads the spikes for the W_rec gradient only
            kept = spikes if w_rec is not None else None
        ctx.save_for_backward(u, kept, a, vmem0, spikes0, alpha, beta, threshold, w_rec, *extra)
        ctx.config = config

    @staticmethod
    @once_differentiable
    def backward(ctx, g_spikes, g_vmem, g_isyn, g_irec, g_v_last, g_i_last, g_s_last, *_):
        u, spikes, a, vmem0, spikes0, alpha, beta, threshold, w_rec, *extra = ctx.saved_tensors
        need, cfg = ctx.needs_input_grad, ctx.config
        thr = threshold.clamp_min(MIN_THRESHOLD)
        b, t_steps, n, s = ctx.shape
        if not cfg.grad_last:
            g_v_last = g_i_last = g_s_last = None
        # The final states are the traces' last steps. The compiled loops take the final
        # membrane's gradient alone (without a full-length trace gradient) and the final
        # synaptic current's without one: no (B, T, ...) arrays of zeros for them.
        g_spikes = _add_last(g_spikes, g_s_last, (b, t_steps, n))
        if not ctx.numba or g_vmem is not None:
            g_vmem, g_v_last = _add_last(g_vmem, g_v_last, (b, t_steps, n)), None
        if not ctx.numba:
            g_isyn, g_i_last = _add_last(g_isyn, g_i_last, (b, t_steps, n, s)), None
        if ctx.numba:
            saved = (u, spikes, a, vmem0, spikes0, alpha, beta, thr, w_rec, *extra)
            grads_in = (g_spikes, g_vmem, g_isyn, g_irec)
            return _numba_module().backward(
                saved, grads_in, need, cfg.surrogate, cfg.learning_window, cfg.max_spikes_per_dt,
                (b, t_steps, n), g_v_last, g_i_last,
            )  # fmt: skip
        args = (u, spikes, a, vmem0, spikes0, alpha, beta, thr, w_rec)
        args += (g_spikes, g_vmem, g_isyn, g_irec)
        if ctx.graphs and _graphs.graphs_supported(u):
            key = ("backward", _structure(args), cfg, tuple(need))
            run = functools.partial(_torch_backward, need=tuple(need), cfg=cfg)
            grads, graphed = _graphs.run_graphed(key, run, args)
            if graphed:  # the graph's buffers
                return tuple(None if g is None else g.clone() for g in grads)
            return grads
        return _torch_backward(*args, tuple(need), cfg)


def _add_last(g: Tensor | None, g_last: Tensor | None, shape: tuple) -> Tensor | None:
    """``g`` (a batch-major trace gradient, or ``None``) plus ``g_last`` at its last step."""
    if g_last is None:
        return g
    out = g_last.new_zeros(shape) if g is None else g.clone()
    out[:, -1] += g_last.reshape(out[:, -1].shape)
    return out


_FUNCTORCH_DEPTH = 0
"""Calls of :class:`_LIFScan` under ``torch.func`` transforms in progress: they run no CUDA
graphs (copying into a graph's input buffers mutates tensors from outside the transform)."""


def _graphed(config: LIFConfig, x: Tensor) -> bool:
    """Whether the torch loops of this call run as a replayed CUDA graph."""
    return (
        config.cuda_graphs
        and config.integer is None
        and _graphs.graphs_supported(x)
        and _FUNCTORCH_DEPTH == 0
    )


def _structure(tensors: tuple[Tensor | None, ...]) -> tuple:
    """What of the tensors decides the kernels launched: shapes, dtypes, devices (or None)."""
    return tuple(None if t is None else (t.shape, t.dtype, t.device) for t in tensors)


def _torch_forward(
    x, vmem0, isyn0, spikes0, alpha, beta, bias, threshold, w_rec, noise, config, record, keep_a
):
    """The pure-torch forward loop; returns the time-major buffers ``(spikes, u, a, vmem,
    isyn, irec)`` (``a`` and the traces ``None`` where not kept) and the last states' views."""
    b, t_steps, n, s = x.shape
    opts = {"dtype": x.dtype, "device": x.device}
    # The inputs are read through per-step (strided) views; the loop writes into contiguous
    # time-major buffers (``out=`` into strided views stops torch.compile's tracing).
    spikes, s_l = _alloc(t_steps, True, b, n, opts=opts)
    u, u_l = _alloc(t_steps, True, b, n, opts=opts)
    vmem, v_l = _alloc(t_steps, record, b, n, opts=opts)
    a, a_l = _alloc(t_steps, keep_a, b, n, s, opts=opts)
    isyn, i_l = _alloc(t_steps, record, b, n, s, opts=opts)
    irec, rec_l = None, None
    if record and w_rec is not None:
        irec, rec_l = _alloc(t_steps, True, b, n * s, opts=opts)
    noise_l = None if noise is None else noise.unbind(1)
    steps = _Steps(x.unbind(1), noise_l, a_l, i_l, u_l, s_l, v_l, rec_l)
    thr = threshold.clamp_min(MIN_THRESHOLD)
    loop = _integer_forward if config.integer is not None else _float_forward
    loop(steps, vmem0, isyn0, spikes0, alpha, beta, bias, thr, w_rec, config)
    kept = (a if keep_a else None, *((vmem, isyn, irec) if record else (None,) * 3))
    return (spikes, u, *kept, v_l[-1], i_l[-1], s_l[-1])


def _torch_backward(
    u, spikes, a, vmem0, spikes0, alpha, beta, thr, w_rec, g_spikes, g_vmem, g_isyn, g_irec,
    need, cfg,
):  # fmt: skip
    """The pure-torch backward pass: the reverse loop, then the input gradients."""
    ds_du = _surrogate_du(u, thr, cfg)
    grads_in = _GradsIn(g_spikes, g_vmem, g_isyn, g_irec)
    shape = (spikes.shape[0], spikes.shape[1], *beta.shape)
    adj = _reverse_loop(
        shape, ds_du, thr, alpha, beta, w_rec, grads_in, keep_s=need[7], keep_i=need[5]
    )
    del ds_du
    saved = (u, spikes.transpose(0, 1), a, vmem0, spikes0, alpha, beta, thr, w_rec)
    return _input_grads(need, adj, saved, grads_in, cfg)


def _surrogate_du(u: Tensor, thr: Tensor, cfg: LIFConfig) -> Tensor:
    """``σ_u`` of every step, ``u``'s shape, formed time chunk by time chunk (the surrogate's
    ``σ_θ``, which only the threshold gradient needs, is not kept)."""
    out = torch.empty_like(u)
    grads = SURROGATE_GRADS[cfg.surrogate]
    for t0, t1 in _time_chunks(u.shape[0], u[0].numel()):
        out[t0:t1] = grads(u[t0:t1], thr, cfg.learning_window, cfg.max_spikes_per_dt)[0]
    return out


class _GradsIn(NamedTuple):
    """Gradients arriving at the traces, batch-major as they arrive (``None`` where unused)."""

    spikes: Tensor | None
    vmem: Tensor | None
    isyn: Tensor | None
    irec: Tensor | None


class _Adjoints(NamedTuple):
    """Per-step adjoints ``(T, B, ...)`` of the reverse loop.

    ``u`` and ``a`` are always kept; ``s`` when the threshold gradient needs it and ``i`` when
    the ``β`` gradient does (else ``None``). With ``i`` kept, ``a`` is ``None`` until
    :func:`_input_grads` turns ``i`` into it in place (``λa = β λi``, the same operation as
    in the loop), so that one buffer holds both."""

    u: Tensor
    a: Tensor | None
    s: Tensor | None
    i: Tensor | None
    spikes0: Tensor | None


def _add_recurrent(a_t: Tensor, s_prev: Tensor, w_rec: Tensor, rec_t: Tensor | None) -> None:
    """``a_t += reshape(s_prev @ w_rec)``, keeping the product in ``rec_t`` when recording."""
    if rec_t is None:
        a_t.view(a_t.shape[0], -1).addmm_(s_prev, w_rec)
    else:
        a_t.add_(torch.mm(s_prev, w_rec, out=rec_t).view(a_t.shape))


def _float_forward(steps: _Steps, vmem0, isyn0, spikes0, alpha, beta, bias, thr, w_rec, config):
    """Float dynamics: 11 torch ops per step, into preallocated buffers.

    The operations and their order are those of the reference implementation (separate
    multiplies and adds, no fused multiply-add), so that float32 results are bitwise equal
    to it; fusing would save 2 ops per step but flips a spike now and then.
    """
    n_syn = isyn0.shape[-1]
    max_spikes = config.max_spikes_per_dt
    i_sum = torch.empty_like(vmem0) if n_syn > 1 else None
    i_prev, v_prev, s_prev = isyn0, vmem0, spikes0
    for t, x_t in enumerate(steps.x):
        a_t, i_t, u_t, s_t, v_t = steps.a[t], steps.i[t], steps.u[t], steps.s[t], steps.v[t]
        torch.add(i_prev, x_t, out=a_t)
        if w_rec is not None:
            _add_recurrent(a_t, s_prev, w_rec, None if steps.rec is None else steps.rec[t])
        torch.mul(a_t, beta, out=i_t)
        torch.mul(v_prev, alpha, out=u_t)
        u_t.add_(i_t.view(u_t.shape) if i_sum is None else torch.sum(i_t, -1, out=i_sum))
        if steps.noise is not None:
            u_t.add_(steps.noise[t])
        u_t.add_(bias)
        spike_count(u_t, thr, max_spikes, out=s_t)
        torch.sub(u_t, torch.mul(s_t, thr, out=v_t), out=v_t)
        i_prev, v_prev, s_prev = i_t, v_t, s_t


def _integer_forward(steps: _Steps, vmem0, isyn0, spikes0, alpha, beta, bias, thr, w_rec, config):
    """Integer (hardware) dynamics with saturation and floor bit-shift decays."""
    del alpha, beta  # only the backward pass uses the float decay factors
    sem: IntegerSemantics = config.integer
    cap = config.max_spikes_per_dt
    lo, hi = float(sem.state_min), float(sem.state_max)
    opts = {"dtype": vmem0.dtype, "device": vmem0.device}
    scale_mem = torch.exp2(-sem.dash_mem.to(**opts))
    scale_syn = torch.exp2(-sem.dash_syn.to(**opts))
    wrap = (sem.dash_mem == 0).to(opts["device"])
    bounds = [None if t is None else _swap_tb(t.to(**opts)).unbind(0) for t in (sem.x_lo, sem.x_hi)]
    offset = None if sem.spike_offset is None else _swap_tb(sem.spike_offset.to(**opts)).unbind(0)
    w_pos = w_neg = None
    if w_rec is not None:
        w_pos, w_neg = w_rec.clamp(min=0), w_rec.clamp(max=0)
    dec_syn, tmp_syn = torch.empty_like(isyn0), torch.empty_like(isyn0)
    dv, tmp_mem = torch.empty_like(vmem0), torch.empty_like(vmem0)
    i_prev, v_prev, s_prev = isyn0, vmem0, spikes0
    for t, x_t in enumerate(steps.x):
        a_t, i_t, u_t, s_t, v_t = steps.a[t], steps.i[t], steps.u[t], steps.s[t], steps.v[t]
        torch.add(i_prev, x_t, out=a_t)
        a_t.clamp_(
            lo if bounds[0] is None else bounds[0][t], hi if bounds[1] is None else bounds[1][t]
        )
        if w_rec is not None:
            rec_t = None if steps.rec is None else steps.rec[t]
            _deliver_recurrent(a_t, s_prev, w_rec, w_pos, w_neg, lo, hi, rec_t)
        torch.sub(a_t, _decay_step(a_t, scale_syn, dec_syn, tmp_syn), out=i_t)
        _decay_step(v_prev, scale_mem, dv, tmp_mem).neg_()
        dv.masked_fill_(wrap & (dv == -lo), lo)  # int16 wrap of -dec(-32768, 0), as the core
        _clamp(dv.add_(i_t.sum(-1)), lo, hi)
        _clamp(dv.add_(bias if steps.noise is None else steps.noise[t] + bias), lo, hi)
        _clamp(torch.add(v_prev, dv, out=u_t), lo, hi)
        if offset is None:
            spike_count(u_t, thr, cap, out=s_t)
            torch.addcmul(u_t, s_t, thr, value=-1.0, out=v_t)
        else:
            own = torch.minimum(spike_count(u_t, thr, cap), cap - offset[t])
            torch.addcmul(u_t, own, thr, value=-1.0, out=v_t)
            torch.add(own, offset[t], out=s_t)
        i_prev, v_prev, s_prev = i_t, v_t, s_t


def _clamp(v: Tensor, lo: float, hi: float) -> Tensor:
    return v.clamp_(lo, hi)


def _deliver_recurrent(a_t, s_prev, w_rec, w_pos, w_neg, lo, hi, rec_t) -> None:
    """``a_t <- sat(a_t + n_j w_rec[j])`` for each source ``j`` in order, exactly.

    Every partial sum lies between ``a_t + s @ min(w, 0)`` and ``a_t + s @ max(w, 0)``; when
    both stay in range nothing saturates and one matrix product is exact (integer values).
    """
    flat = a_t.view(a_t.shape[0], -1)
    total = s_prev @ w_rec
    if rec_t is not None:
        rec_t.copy_(total)
    if bool(((flat + s_prev @ w_pos) <= hi).all()) and bool(((flat + s_prev @ w_neg) >= lo).all()):
        flat.add_(total).clamp_(lo, hi)
        return
    for j in range(s_prev.shape[1]):
        n_j = s_prev[:, j : j + 1]
        if bool((n_j != 0).any()):
            flat.add_(n_j * w_rec[j]).clamp_(lo, hi)


def _reverse_loop(
    shape, ds_du, thr, alpha, beta, w_rec, grads_in: _GradsIn, *, keep_s: bool, keep_i: bool
) -> _Adjoints:
    """The serial part of the backward pass: per-step adjoints, ~6 ops per step.

    Only ``λu``, ``λs`` (for the threshold gradient) and ``λi`` (for the ``β`` gradient; else
    ``λa``) are stored for every step; ``λv`` and the other of ``λi``/``λa`` roll over one
    ``(B, ...)`` buffer (:func:`_input_grads` forms what it needs of them again).
    """
    b, t_steps, n, s = shape
    opts = {"dtype": ds_du.dtype, "device": ds_du.device}
    lam_u, lu_l = _alloc(t_steps, True, b, n, opts=opts)
    lam_s, ls_l = _alloc(t_steps, keep_s, b, n, opts=opts)
    lv = torch.empty(b, n, **opts)
    lam_i, li_l = _alloc(t_steps, keep_i, b, n, s, opts=opts)
    lam_a, la_l = _alloc(t_steps, not keep_i, b, n, s, opts=opts)
    lu_col = lam_u.unsqueeze(-1).unbind(0)
    su_l = ds_du.unbind(0)
    g_spikes, g_vmem, g_isyn, g_irec = grads_in
    gs_l = g_spikes.unbind(1) if g_spikes is not None else None
    gv_l = g_vmem.unbind(1) if g_vmem is not None else None
    gi_l = g_isyn.unbind(1) if g_isyn is not None else None
    gr_l = g_irec.reshape(b, t_steps, n * s).unbind(1) if g_irec is not None else None
    neg_thr = -thr
    w_t = w_rec.t() if w_rec is not None else None
    srec = torch.empty(b, n, **opts) if w_rec is not None else None
    lrec = torch.empty(b, n * s, **opts) if gr_l is not None and w_rec is not None else None

    lu_next = torch.zeros(b, n, **opts)
    la_next = torch.zeros(b, n, s, **opts)
    base = gs_l[-1] if gs_l is not None else None  # dL/ds_t from outside the step t
    for t in range(t_steps - 1, -1, -1):
        ls, lu, li, la = ls_l[t], lu_l[t], li_l[t], la_l[t]
        if gv_l is None:
            torch.mul(lu_next, alpha, out=lv)
        else:
            torch.addcmul(gv_l[t], alpha, lu_next, out=lv)
        if base is None:
            torch.mul(lv, neg_thr, out=ls)
        else:
            torch.addcmul(base, neg_thr, lv, out=ls)
        torch.addcmul(lv, su_l[t], ls, out=lu)
        torch.add(la_next, lu_col[t], out=li)
        if gi_l is not None:
            li.add_(gi_l[t])
        torch.mul(li, beta, out=la)  # (la may be la_next's buffer: li no longer needs it)
        g_prev = gs_l[t - 1] if gs_l is not None and t > 0 else None
        if w_rec is not None:
            la_flat = la.view(b, n * s)
            lr = la_flat if lrec is None else torch.add(la_flat, gr_l[t], out=lrec)
            if g_prev is None:
                torch.mm(lr, w_t, out=srec)
            else:
                torch.addmm(g_prev, lr, w_t, out=srec)
            base = srec
        else:
            base = g_prev
        lu_next, la_next = lu, la
    return _Adjoints(
        lam_u, None if keep_i else lam_a, lam_s if keep_s else None, lam_i if keep_i else None, srec
    )


def _input_grads(
    need, adj: _Adjoints, saved, grads_in: _GradsIn, cfg: LIFConfig
) -> tuple[Tensor | None, ...]:
    """Gradients of the inputs: sums of the time-major adjoints over time and batch, formed
    time chunk by time chunk (no temporary of the whole sequence's size)."""
    u, spikes, a, vmem0, spikes0, alpha, beta, thr, w_rec = saved  # spikes: (T, B, N) view
    lam_u = adj.u
    t_steps, b, n = lam_u.shape
    chunks = _time_chunks(t_steps, adj.u[0].numel() * beta.shape[-1])
    grads: list[Tensor | None] = [None] * 12
    if need[5]:  # ∂L/∂β = Σ λi a, before λi becomes λa
        acc = torch.zeros_like(beta)
        for t0, t1 in chunks:
            acc = acc + (adj.i[t0:t1] * a[t0:t1]).sum((0, 1))
        grads[5] = acc
    lam_a = adj.a if adj.i is None else adj.i.mul_(beta)
    if need[0]:
        grads[0] = lam_a.transpose(0, 1)
    if need[1]:
        grads[1] = lam_u[0] * alpha
    if need[2]:
        grads[2] = lam_a[0].clone()
    if need[3] and adj.spikes0 is not None:
        grads[3] = adj.spikes0.clone()
    if need[4]:  # ∂L/∂α = Σ λu_t v_{t-1}
        acc = (lam_u[0] * vmem0).sum(0)
        for t0, t1 in chunks:
            lo = max(t0, 1)
            if lo < t1:
                v_prev = torch.addcmul(u[lo - 1 : t1 - 1], spikes[lo - 1 : t1 - 1], thr, value=-1.0)
                acc = acc + (lam_u[lo:t1] * v_prev).sum((0, 1))
        grads[4] = acc
    if need[6]:
        grads[6] = lam_u.sum((0, 1))
    if need[7]:  # ∂L/∂θ = Σ (σ_θ λs - s λv),  λv_t = g^v_t + α λu_{t+1}
        acc = torch.zeros_like(thr)
        for t0, t1 in chunks:
            acc = acc + _threshold_grad(t0, t1, adj, u, spikes, alpha, thr, grads_in.vmem, cfg)
        grads[7] = acc
    if need[8]:  # ∂L/∂W_rec = Σ s_{t-1}ᵀ λr_t
        g_irec = grads_in.irec
        acc = torch.zeros_like(w_rec)
        for t0, t1 in chunks:
            lam_r = lam_a[t0:t1].reshape(-1, w_rec.shape[1])
            if g_irec is not None:
                g_r = g_irec.reshape(b, t_steps, -1)[:, t0:t1].transpose(0, 1)
                lam_r = lam_r + g_r.reshape(lam_r.shape)
            prev = spikes[max(t0, 1) - 1 : t1 - 1]
            if t0 == 0:
                prev = torch.cat((spikes0.unsqueeze(0), prev), 0)
            acc.addmm_(prev.reshape(-1, n).t(), lam_r)
        grads[8] = acc
    if need[9]:
        grads[9] = lam_u.transpose(0, 1)
    return tuple(grads)


def _threshold_grad(t0, t1, adj: _Adjoints, u, spikes, alpha, thr, g_vmem, cfg) -> Tensor:
    """``Σ (σ_θ λs - s λv)`` over the steps ``t0 … t1-1`` (``λv`` formed again from ``λu``)."""
    lam_u = adj.u
    t_steps = lam_u.shape[0]
    lu_next = lam_u[t0 + 1 : t1 + 1]
    if t1 == t_steps:  # λu_T = 0
        lu_next = torch.cat((lu_next, torch.zeros_like(lam_u[:1])), 0)
    if g_vmem is None:
        lam_v = lu_next * alpha
    else:
        lam_v = torch.addcmul(g_vmem[:, t0:t1].transpose(0, 1), alpha, lu_next)
    ds_dthr = SURROGATE_GRADS[cfg.surrogate](
        u[t0:t1], thr, cfg.learning_window, cfg.max_spikes_per_dt
    )[1]
    return (adj.s[t0:t1] * ds_dthr - lam_v * spikes[t0:t1]).sum((0, 1))


def _as(t: Tensor | None, dt: torch.dtype) -> Tensor | None:
    """``t.to(dt)``, without the call when ``t`` has that type already (``None`` passes)."""
    return t if t is None or t.dtype == dt else t.to(dt)


def lif_scan(
    x: Tensor,
    vmem0: Tensor,
    isyn0: Tensor,
    spikes0: Tensor,
    alpha: Tensor,
    beta: Tensor,
    bias: Tensor,
    threshold: Tensor,
    w_rec: Tensor | None,
    noise: Tensor | None,
    config: LIFConfig,
    record: bool = False,
) -> LIFResult:
    r"""Run a LIF layer with multi-spike output over a whole sequence, in one fused kernel.

    Per step (see the module docstring for the backward equations)::

        a_t = i_{t-1} + x_t + reshape(s_{t-1} @ w_rec)      i_t = β a_t
        u_t = α v_{t-1} + Σ_s i_t + bias + noise_t
        s_t = [u_t >= θ] · min(⌊u_t/θ⌋, max_spikes_per_dt)    v_t = u_t - s_t θ

    With ``config.integer`` set, the forward pass follows :class:`IntegerSemantics` instead,
    and the backward pass stays the float one (straight-through). Gradients flow to ``x``,
    ``alpha``, ``beta``, ``bias``, ``threshold``, ``w_rec`` (and, if they require grad, to
    ``vmem0``, ``isyn0``, ``spikes0`` and ``noise``), including what the recorded traces
    contribute to the loss. The threshold is used as ``max(threshold, MIN_THRESHOLD)``.

    Args:
        x: ``(B, T, N, S)`` synaptic input currents.
        vmem0: ``(B, N)`` initial membrane.
        isyn0: ``(B, N, S)`` initial synaptic currents.
        spikes0: ``(B, N)`` spikes of the step before ``t = 0``.
        alpha: ``(N,)`` membrane decay factor per step.
        beta: ``(N, S)`` synaptic decay factor per step.
        bias: ``(N,)`` constant membrane input.
        threshold: ``(N,)`` firing threshold, ``> 0``.
        w_rec: ``(N, N·S)`` recurrent weights, or ``None`` (no recurrent product computed).
        noise: ``(B, T, N)`` additive membrane noise, or ``None``.
        config: Spike cap, surrogate and integer semantics.
        record: Also return the ``vmem``, ``isyn`` and ``irec`` traces.

    Returns:
        A :class:`LIFResult`.

    Raises:
        ValueError: If a tensor's shape does not match ``x``'s ``(B, T, N, S)``.

    Example:
        >>> import torch
        >>> x = torch.zeros(1, 3, 2, 1)
        >>> x[0, 0, :, 0] = torch.tensor([1.0, 2.5])
        >>> z = torch.zeros(1, 2)
        >>> res = lif_scan(x, z, torch.zeros(1, 2, 1), z, alpha=torch.full((2,), 0.9),
        ...                beta=torch.full((2, 1), 0.5), bias=torch.zeros(2),
        ...                threshold=torch.ones(2), w_rec=None, noise=None,
        ...                config=LIFConfig(), record=True)
        >>> res.spikes
        tensor([[[0., 1.],
                 [0., 0.],
                 [0., 1.]]])
        >>> res.vmem[0, 0]
        tensor([0.5000, 0.2500])
    """
    b, t_steps, n, s = x.shape if x.dim() == 4 else (0, 0, 0, 0)
    named = {
        "vmem0": (vmem0, (b, n)),
        "isyn0": (isyn0, (b, n, s)),
        "spikes0": (spikes0, (b, n)),
        "alpha": (alpha, (n,)),
        "beta": (beta, (n, s)),
        "bias": (bias, (n,)),
        "threshold": (threshold, (n,)),
        "w_rec": (w_rec, (n, n * s)),
        "noise": (noise, (b, t_steps, n)),
    }
    if config.integer is not None:
        named["integer.dash_mem"] = (config.integer.dash_mem, (n,))
        named["integer.dash_syn"] = (config.integer.dash_syn, (n, s))
    _check_shapes(x, named)
    dt = x.dtype
    if t_steps == 0:
        return _empty_result(x, vmem0, isyn0, spikes0, record)
    out = _LIFScan.apply(
        x,
        _as(vmem0, dt),
        _as(isyn0, dt),
        _as(spikes0, dt),
        _as(alpha, dt),
        _as(beta, dt),
        _as(bias, dt),
        _as(threshold, dt),
        _as(w_rec, dt),
        _as(noise, dt),
        config,
        bool(record),
    )
    spikes, vmem, isyn, irec, v_last, i_last, s_last = out[:7]
    if record and irec is None:
        irec = torch.zeros_like(isyn)
    return LIFResult(spikes, vmem, isyn, irec, v_last, i_last, s_last)


def _empty_result(x: Tensor, vmem0: Tensor, isyn0: Tensor, spikes0: Tensor, record: bool):
    """``T = 0``: no step runs, the states pass through unchanged."""
    b, _, n, s = x.shape
    trace = x.new_zeros(b, 0, n, s) if record else None
    return LIFResult(
        x.new_zeros(b, 0, n),
        x.new_zeros(b, 0, n) if record else None,
        trace,
        None if trace is None else trace.clone(),
        vmem0.detach().to(x.dtype).clone(),
        isyn0.detach().to(x.dtype).clone(),
        spikes0.detach().to(x.dtype).clone(),
    )


# --------------------------------------------------------------------------- exp synapse
class _ExpSynScan(torch.autograd.Function):
    """``i_t = β (i_{t-1} + x_t)`` over all steps, with a reverse-time backward."""

    @staticmethod
    def forward(x, isyn0, beta):
        trace = torch.empty_like(x)
        prev = isyn0
        for x_t, i_t in zip(x.unbind(1), trace.unbind(1)):
            torch.add(prev, x_t, out=i_t).mul_(beta)
            prev = i_t
        return trace

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, isyn0, beta = inputs
        ctx.save_for_backward(x, isyn0, beta, output)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, isyn0, beta, trace = ctx.saved_tensors
        lam_i = torch.empty_like(grad)
        lam_a = torch.empty_like(grad)
        nxt = torch.zeros_like(isyn0)
        for t in range(grad.shape[1] - 1, -1, -1):
            torch.add(grad[:, t], nxt, out=lam_i[:, t])
            nxt = torch.mul(lam_i[:, t], beta, out=lam_a[:, t])
        grad_x = lam_a if ctx.needs_input_grad[0] else None
        grad_i0 = lam_a[:, 0].clone() if ctx.needs_input_grad[1] and grad.shape[1] else None
        grad_beta = None
        if ctx.needs_input_grad[2]:
            prev = torch.cat((isyn0.unsqueeze(1), trace[:, :-1]), 1)
            grad_beta = (lam_i * (prev + x)).sum((0, 1))
        return grad_x, grad_i0, grad_beta


def exp_syn_scan(x: Tensor, isyn0: Tensor, beta: Tensor) -> Tensor:
    r"""Exponential synapse over a sequence, in one fused kernel.

    .. math::
        i_t = \beta \odot (i_{t-1} + x_t), \qquad t = 0 \dots T-1

    Backward (exact), with ``g_t`` the gradient arriving at ``i_t``:
    ``λi_t = g_t + λa_{t+1}``, ``λa_t = β λi_t = ∂L/∂x_t``, ``∂L/∂β = Σ λi_t (i_{t-1} + x_t)``.

    Args:
        x: ``(B, T, N)`` input currents.
        isyn0: ``(B, N)`` initial current.
        beta: ``(N,)`` decay factor per step.

    Returns:
        The ``(B, T, N)`` current trace; its last step is the new state.

    Raises:
        ValueError: If ``isyn0`` or ``beta`` does not match ``x``'s shape.

    Example:
        >>> import torch
        >>> x = torch.tensor([[[1.0], [0.0], [2.0]]])
        >>> exp_syn_scan(x, torch.zeros(1, 1), torch.tensor([0.5]))
        tensor([[[0.5000],
                 [0.2500],
                 [1.1250]]])
    """
    if x.dim() != 3:
        raise ValueError(
            "exp_syn_scan: `x` must be (B, T, N).\n"
            f"  expected: 3 dimensions\n  got:      {tuple(x.shape)}"
        )
    b, _, n = x.shape
    for name, tensor, expected in (("isyn0", isyn0, (b, n)), ("beta", beta, (n,))):
        if tuple(tensor.shape) != expected:
            raise ValueError(
                f"exp_syn_scan: `{name}` has the wrong shape.\n"
                f"  expected: {expected}\n  got:      {tuple(tensor.shape)}"
            )
    return _ExpSynScan.apply(x, isyn0.to(x.dtype), beta.to(x.dtype))
