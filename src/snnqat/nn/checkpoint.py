r"""Training over long sequences in bounded memory: checkpointing in time.

A training step normally keeps, for its backward pass, every layer's activity over the whole
sequence: memory grows with ``B · T · N``. :func:`checkpoint_in_time` runs the network over the
sequence in segments of ``segment_steps`` time steps without keeping any of that (the forward
pass runs under ``torch.no_grad``); it keeps only the neuron states at the start of every
segment (``B · N`` per layer and segment) and the random-number state. The backward pass then
runs the segments again, from the last to the first, each from its saved states, and
back-propagates through one segment at a time; the gradient that reaches a segment's initial
states is sent into the final states of the segment before it. The result is exact
back-propagation through time over the whole sequence, at the price of a second forward pass
(the last segment runs with autograd at once and keeps its graph, so it runs only once).

.. code-block:: text

    forward:   [seg 0] -> [seg 1] -> ... -> [seg K-1]        (no graph; states saved at each ->)
    backward:  [seg K-1] re-run + backprop  --dL/dstate-->  [seg K-2] ...  --> [seg 0]

Peak memory is that of one segment's training step plus the saved states and the whole
sequence's input and output, instead of the whole sequence's step: at the benchmark's size M
(``B = 64``, ``T = 200``, 256 neurons) 53 / 31 / 20 MB with 2 / 4 / 8 segments instead of
82 MB, for 1.2-1.3x / 1.5-1.6x / 1.9-2.0x the plain step's time (``docs/performance.md``).

What must hold for the network: a layer's output at step ``t`` depends on the input up to
``t`` only (``LinearTorch`` and the other per-time-step maps, ``LIFTorch``, ``ExpSynTorch``,
the combinators), and the only state carried between time steps is that of snnqat's stateful
layers. Every segment is run twice with the same random-number state, so noise and stochastic
transforms draw the same numbers in both passes; the backward pass checks that each segment
reproduces its forward output and raises otherwise.

Differences from one call over the whole sequence (documented, not errors):

* A transform runs once per *segment* call: a stochastic parameter transform draws new
  numbers for each segment, and an activity quantizer that takes its range from the data
  (``deterministic_rounding`` without ``input_range``) takes it per segment.
* Membrane noise is drawn per segment (the same distribution, another stream of numbers).

Example:
    >>> import torch
    >>> from snnqat.nn.combinators import Sequential
    >>> from snnqat.nn.modules import LIFTorch, LinearTorch
    >>> from snnqat.nn.checkpoint import checkpoint_in_time
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = Sequential(LinearTorch((2, 3)), LIFTorch(3)).to_torch()
    >>> x = torch.rand(4, 30, 2) * 3
    >>> out = checkpoint_in_time(net, x, segment_steps=8)  # 4 segments: 8, 8, 8, 6 steps
    >>> _ = net.reset_state()
    >>> torch.equal(out, net(x))
    True
    >>> out.sum().backward()  # exact BPTT over all 30 steps
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from snnqat.nn.modules import _capture
from snnqat.nn.modules.exp_syn_torch import ExpSynTorch
from snnqat.nn.modules.lif_torch import LIFTorch

__all__ = ["TimeCheckpointed", "checkpoint_in_time"]

STATE_NAMES: dict[type, tuple[str, ...]] = {
    LIFTorch: ("vmem", "isyn", "spikes"),
    ExpSynTorch: ("isyn",),
}
"""The state buffers of each stateful layer type, in the order of its captured final states."""


def checkpoint_in_time(module: nn.Module, data: Tensor, segment_steps: int) -> Tensor:
    """Run ``module`` over ``data`` in time segments, keeping only states for the backward pass.

    Returns what ``module(data)`` returns under the torch API (the output only), with the
    same values when the network is deterministic, and gradients by exact back-propagation
    through all time steps for ``data`` and every parameter that requires one; the module's
    states afterwards are those after the last step, as after ``module(data)``. See the
    module docstring for how, what it costs and which differences are possible.

    Outside autograd (``torch.no_grad``, or nothing that requires a gradient) this is
    ``module(data)`` itself.

    Args:
        module: An snnqat network (native or torch API) or layer, transformed or not.
        data: ``(B, T, N)`` input.
        segment_steps: Time steps per segment (the last one may be shorter). Peak memory
            falls with shorter segments, down to where the saved states (``B · N`` per
            layer and segment) and per-call overheads dominate.

    Returns:
        The output, ``(B, T, ...)``.

    Raises:
        TypeError: ``module`` is not a ``torch.nn.Module``, ``data`` not a floating-point
            tensor, or ``segment_steps`` not an int.
        ValueError: ``data`` is not ``(B, T, N)``, ``segment_steps < 1``, a layer runs in
            hardware-faithful (integer) mode, or the output has no time dimension.
        RuntimeError: A stateful layer runs twice in one call of ``module``; or, in the
            backward pass, a segment gives another output when run again (a module that is
            not deterministic given the random-number state, or keeps state of its own).
    """
    _check_args(module, data, segment_steps)
    params = [p for p in nn.Module.parameters(module) if p.requires_grad]
    if not torch.is_grad_enabled() or not (params or data.requires_grad):
        return _call(module, data)
    stateful = [m for m in nn.Module.modules(module) if _state_names(m)]
    return _TimeCheckpoint.apply(module, stateful, segment_steps, data, *params)


class TimeCheckpointed(nn.Module):
    """``module`` called through :func:`checkpoint_in_time`: the form to wrap in
    ``DistributedDataParallel`` (or to hand to any code that calls a module).

    Wrap this module, not the network, in DDP: DDP then runs once per step around all the
    segments (its gradient hooks fire once per parameter, when the segments' summed gradients
    arrive), while the segments call the network itself.

    Args:
        module: The network (its parameters become this module's).
        segment_steps: Time steps per segment.

    Raises:
        TypeError: as :func:`checkpoint_in_time`.
        ValueError: ``segment_steps < 1``.

    Example:
        >>> import torch
        >>> from snnqat.nn.combinators import Sequential
        >>> from snnqat.nn.modules import LIFTorch, LinearTorch
        >>> net = Sequential(LinearTorch((2, 3)), LIFTorch(3)).to_torch()
        >>> lean = TimeCheckpointed(net, segment_steps=10)
        >>> lean(torch.rand(4, 25, 2)).shape
        torch.Size([4, 25, 3])
    """

    def __init__(self, module: nn.Module, segment_steps: int) -> None:
        super().__init__()
        _check_module(module, "TimeCheckpointed")
        _check_segment_steps(segment_steps)
        self.module = module
        self.segment_steps = segment_steps

    def forward(self, data: Tensor) -> Tensor:
        """``checkpoint_in_time(self.module, data, self.segment_steps)``."""
        return checkpoint_in_time(self.module, data, self.segment_steps)

    def extra_repr(self) -> str:  # noqa: D102
        return f"segment_steps={self.segment_steps}"


def _check_segment_steps(segment_steps: Any) -> None:
    if isinstance(segment_steps, bool) or not isinstance(segment_steps, int):
        raise TypeError(
            f"checkpoint_in_time: segment_steps must be an int, got {type(segment_steps).__name__}."
        )
    if segment_steps < 1:
        raise ValueError(f"checkpoint_in_time: segment_steps must be >= 1, got {segment_steps}.")


def _check_module(module: Any, who: str) -> None:
    if not isinstance(module, nn.Module):
        raise TypeError(f"{who}: module must be a torch.nn.Module, got {type(module).__name__}.")


def _check_args(module: Any, data: Any, segment_steps: Any) -> None:
    _check_module(module, "checkpoint_in_time")
    if not isinstance(data, Tensor) or not data.is_floating_point():
        got = f"a {data.dtype} tensor" if isinstance(data, Tensor) else type(data).__name__
        raise TypeError(f"checkpoint_in_time: data must be a floating-point tensor, got {got}.")
    if data.dim() != 3:
        raise ValueError(
            "checkpoint_in_time: data must be (B, T, N), batch first and time second, got "
            f"shape {tuple(data.shape)}. Add a batch dimension with data[None] if needed."
        )
    _check_segment_steps(segment_steps)
    hardware = [
        name
        for name, m in nn.Module.named_modules(module)
        if getattr(m, "hardware", None) is not None
    ]
    if hardware:
        raise ValueError(
            "checkpoint_in_time: layers in hardware-faithful (integer) mode are not supported "
            f"(their states are saturated integers): {hardware}. Train in float mode with "
            "checkpointing, or switch the hardware mode off for these layers."
        )


def _call(module: nn.Module, data: Tensor) -> Tensor:
    """``module(data)``, the output only (the native API returns ``(output, state, record)``)."""
    out = module(data)
    return out[0] if isinstance(out, tuple) else out


def _state_names(layer: nn.Module) -> tuple[str, ...]:
    """The state buffers of a stateful snnqat layer (empty for any other module)."""
    for kind, names in STATE_NAMES.items():
        if isinstance(layer, kind):
            return names
    return ()


def _states(layer: nn.Module) -> tuple[Tensor, ...]:
    return tuple(layer._buffers[name] for name in _state_names(layer))


def _set_states(layer: nn.Module, states: tuple[Tensor, ...]) -> None:
    for name, value in zip(_state_names(layer), states):
        layer._buffers[name] = value


def _rng_state(device: torch.device) -> tuple[Tensor, Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _run_segment(
    module: nn.Module, stateful: list, data: Tensor, t0: int, t1: int, starts: list, k: int
) -> tuple:
    """Segment ``k`` (steps ``t0 … t1-1``) with autograd, from the states ``starts``: returns
    ``(x, y, finals, leaves)``: the input leaf, the output, ``{layer: final states}`` with
    their history, and per layer the initial-state leaves (requiring grad except in segment 0,
    which starts from the caller's states)."""
    leaves = []
    for m, states in zip(stateful, starts):
        ls = tuple(s.detach().requires_grad_(k > 0 and s.is_floating_point()) for s in states)
        _set_states(m, ls)
        leaves.append(ls)
    with torch.enable_grad(), _capture.capturing() as finals:
        x = data[:, t0:t1].detach().requires_grad_(data.requires_grad)
        y = _call(module, x)
    return x, y, finals, leaves


class _TimeCheckpoint(torch.autograd.Function):
    """The whole sequence as one autograd node; see the module docstring.

    The last segment runs with autograd already in the forward pass and keeps its graph until
    the backward pass (it would be the first to run again); the others run without."""

    @staticmethod
    def forward(  # noqa: D102
        ctx: Any, module: nn.Module, stateful: list, seg: int, data: Tensor, *params: Tensor
    ) -> Tensor:
        steps = data.shape[1]
        bounds = [(t0, min(t0 + seg, steps)) for t0 in range(0, steps, seg)]
        starts, rngs, outs = [], [], []
        for k, (t0, t1) in enumerate(bounds):  # (grad mode is off inside a Function's forward)
            starts.append([_states(m) for m in stateful])
            rngs.append(_rng_state(data.device))
            if k < len(bounds) - 1:
                outs.append(_call(module, data[:, t0:t1]))
            else:
                ctx.last = _run_segment(module, stateful, data, t0, t1, starts[k], k)
                outs.append(ctx.last[1].detach())
            y = outs[-1]
            if not isinstance(y, Tensor) or y.dim() < 2 or y.shape[1] != t1 - t0:
                got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
                raise ValueError(
                    f"checkpoint_in_time: the module's output must be (B, T, ...) with one "
                    f"entry per time step; for steps {t0}-{t1 - 1} it returned {got}. Reduce "
                    "over time (sum, readout) after checkpoint_in_time, not inside the module."
                )
        out = torch.cat(outs, dim=1)
        ctx.module, ctx.stateful, ctx.bounds, ctx.starts, ctx.rngs = (
            module,
            stateful,
            bounds,
            starts,
            rngs,
        )
        ctx.save_for_backward(data, out, *params)
        return out

    @staticmethod
    @once_differentiable  # (a gradient of these gradients would be silently wrong: refused)
    def backward(ctx: Any, g_out: Tensor) -> tuple:  # noqa: D102
        data, out, *params = ctx.saved_tensors
        stateful = ctx.stateful
        want_data = ctx.needs_input_grad[3]
        g_data = torch.zeros_like(data) if want_data else None
        g_params: list[Tensor | None] = [None] * len(params)
        g_next: list[tuple] | None = None  # gradients at the final states of the segment
        now = [_states(m) for m in stateful]  # what the caller sees afterwards
        devices = [data.device] if data.device.type == "cuda" else []
        try:
            for k in range(len(ctx.bounds) - 1, -1, -1):
                t0, t1 = ctx.bounds[k]
                if k == len(ctx.bounds) - 1:
                    x, y, finals, leaves = ctx.last
                    del ctx.last  # (its graph is freed once its gradients are formed)
                else:
                    with torch.random.fork_rng(devices=devices):
                        cpu_rng, cuda_rng = ctx.rngs[k]
                        torch.set_rng_state(cpu_rng)
                        if cuda_rng is not None:
                            torch.cuda.set_rng_state(cuda_rng, data.device)
                        x, y, finals, leaves = _run_segment(
                            ctx.module, stateful, data, t0, t1, ctx.starts[k], k
                        )
                    if not torch.equal(y.detach(), out[:, t0:t1]):
                        raise RuntimeError(
                            f"checkpoint_in_time: time steps {t0}-{t1 - 1} gave another output "
                            "when run again for the backward pass. Every module must be "
                            "deterministic given the random-number state, and only snnqat's "
                            "stateful layers (LIFTorch, ExpSynTorch) may carry state between "
                            "time steps."
                        )
                outputs, grads = [y], [g_out[:, t0:t1]]
                if g_next is not None:
                    for m, g_states in zip(stateful, g_next):
                        for final, g in zip(finals[m], g_states):
                            if g is not None and final.requires_grad:
                                outputs.append(final)
                                grads.append(g.reshape(final.shape))
                state_leaves = [s for ls in leaves for s in ls if s.requires_grad]
                inputs = ([x] if want_data else []) + params + state_leaves
                got = torch.autograd.grad(outputs, inputs, grads, allow_unused=True)
                del outputs, y, finals
                if want_data:
                    g_data[:, t0:t1] = got[0]
                    got = got[1:]
                for i, g in enumerate(got[: len(params)]):
                    if g is not None:
                        g_params[i] = g if g_params[i] is None else g_params[i].add_(g)
                by_leaf = dict(zip(map(id, state_leaves), got[len(params) :]))
                g_next = [tuple(by_leaf.get(id(s)) for s in ls) for ls in leaves]
        finally:
            for m, states in zip(stateful, now):
                _set_states(m, states)
        return (None, None, None, g_data, *g_params)
