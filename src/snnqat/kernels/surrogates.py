"""Multi-spike generation with surrogate gradients.

The forward pass of every spike function here is the same step function, a count of how
many times the membrane potential ``u`` crosses the threshold ``θ`` in one step::

    s = [u >= θ] · min(⌊u / θ⌋, s_max)

The surrogates differ only in the backward pass. The derivative formulas are written once,
as the pure helpers :func:`step_pwl_grads` and :func:`periodic_exponential_grads`; the
stand-alone autograd Functions :class:`StepPWL` and :class:`PeriodicExponential` and the fused
LIF kernel (:func:`snnqat.kernels.lif_scan`) both call them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "DEFAULT_MAX_SPIKES_PER_DT",
    "DEFAULT_LEARNING_WINDOW",
    "SURROGATE_GRADS",
    "PeriodicExponential",
    "StepPWL",
    "periodic_exponential_grads",
    "spike_count",
    "step_pwl_grads",
]

DEFAULT_MAX_SPIKES_PER_DT = 2.0**16
"""Default cap on the number of spikes one neuron emits in one time step."""

DEFAULT_LEARNING_WINDOW = 0.5
"""Default width of the surrogate window, in the units of the membrane potential."""

Scalar = float | Tensor
SurrogateGrads = Callable[[Tensor, Scalar, Scalar, Scalar], tuple[Tensor, Tensor]]


def spike_count(
    u: Tensor,
    threshold: Scalar,
    max_spikes_per_dt: float = DEFAULT_MAX_SPIKES_PER_DT,
    *,
    out: Tensor | None = None,
) -> Tensor:
    r"""Number of spikes emitted by membrane potentials ``u`` in one step.

    .. math::
        s = [u \ge \theta] \cdot \min\left(\lfloor u / \theta \rfloor,\ s_{\max}\right)
          = \min\left(\max\left(\lfloor u / \theta \rfloor, 0\right),\ s_{\max}\right)

    The two forms are equal for ``θ > 0`` in IEEE arithmetic: if ``0 <= u < θ`` then the
    rounded quotient ``u/θ`` is at most ``1 - 2^-53`` (``1 - 2^-24`` in float32), because
    the gap below ``θ`` is at least ``θ·2^-53``; so the floor is 0 without the mask. The
    count is what a subtractive reset ``u - s·θ`` removes: an input that drives the membrane
    to ``9.51`` with ``θ = 1`` emits 9 spikes and leaves ``0.51``.

    Args:
        u: Membrane potential before the reset, any shape.
        threshold: Firing threshold ``θ > 0``, broadcastable to ``u``.
        max_spikes_per_dt: Cap ``s_max`` on the count.
        out: Optional preallocated output of the broadcast shape (the fused kernel passes
            one per time step, so its loop allocates nothing).

    Returns:
        The spike counts, same dtype as ``u``, never negative.

    Example:
        >>> import torch
        >>> spike_count(torch.tensor([-1.0, 0.4, 1.0, 2.5, 9.51]), 1.0)
        tensor([0., 0., 1., 2., 9.])
        >>> spike_count(torch.tensor([9.51]), 1.0, max_spikes_per_dt=3)
        tensor([3.])
    """
    s = torch.div(u, threshold) if out is None else torch.div(u, threshold, out=out)
    return s.floor_().clamp_(0.0, max_spikes_per_dt)


def step_pwl_grads(
    u: Tensor, threshold: Scalar, window: Scalar = DEFAULT_LEARNING_WINDOW
) -> tuple[Tensor, Tensor]:
    r"""Surrogate derivatives of the ``StepPWL`` spike function.

    With the window mask :math:`m = [u \ge \theta - w]` (open at the top):

    .. math::
        \frac{\partial s}{\partial u} = \frac{m}{\theta}, \qquad
        \frac{\partial s}{\partial \theta} = -\frac{u\, m}{\theta^2}

    Args:
        u: Membrane potential before the reset.
        threshold: Firing threshold ``θ``, broadcastable to ``u``.
        window: Window width ``w``, in the units of ``u``.

    Returns:
        ``(ds/du, ds/dθ)``, both of the broadcast shape of ``u`` and ``threshold``.

    Example:
        >>> import torch
        >>> du, dthr = step_pwl_grads(torch.tensor([0.4, 0.6, 1.0, 2.5]), 1.0)
        >>> du
        tensor([0., 1., 1., 1.])
        >>> dthr
        tensor([-0.0000, -0.6000, -1.0000, -2.5000])
    """
    ds_du = (u >= threshold - window).to(u.dtype) / threshold
    ds_dthr = -u * ds_du / threshold
    return ds_du, ds_dthr


def periodic_exponential_grads(
    u: Tensor,
    threshold: Scalar,
    window: Scalar = DEFAULT_LEARNING_WINDOW,
    max_spikes_per_dt: Scalar = DEFAULT_MAX_SPIKES_PER_DT,
) -> tuple[Tensor, Tensor]:
    r"""Surrogate derivatives of the ``PeriodicExponential`` spike function.

    A Laplace-shaped bump of width ``w`` is placed at every multiple of the threshold that
    the spike count can reach:

    .. math::
        v' &= u - \theta/2, \qquad n = \min(\lfloor v'/\theta \rfloor,\ s_{\max} - 1) \\
        r &= \begin{cases} v' & u < \theta \\ v' - n\theta & u \ge \theta \end{cases}
        \qquad p = \frac{1}{\theta}\, e^{-|r - \theta/2| / w} \\
        \frac{\partial s}{\partial u} &= p, \qquad
        \frac{\partial s}{\partial \theta} = -\frac{p\, u}{\theta}

    Args:
        u: Membrane potential before the reset.
        threshold: Firing threshold ``θ``, broadcastable to ``u``.
        window: Decay length ``w`` of the bump.
        max_spikes_per_dt: Cap ``s_max`` of the spike count (no bumps beyond it).

    Returns:
        ``(ds/du, ds/dθ)``, both of the broadcast shape of ``u`` and ``threshold``.

    Example:
        >>> import torch
        >>> du, dthr = periodic_exponential_grads(torch.tensor([0.0, 1.0, 2.0, 2.5]), 1.0)
        >>> du
        tensor([0.1353, 1.0000, 1.0000, 0.3679])
    """
    half = threshold / 2
    shifted = u - half
    n = torch.floor(shifted / threshold).clamp_(max=max_spikes_per_dt - 1)
    r = torch.where(u < threshold, shifted, shifted - n * threshold)
    pdf = torch.exp(-(r - half).abs() / window) / threshold
    return pdf, -pdf * u / threshold


def _step_pwl_grads(u: Tensor, threshold: Scalar, window: Scalar, _max: Scalar):
    return step_pwl_grads(u, threshold, window)


SURROGATE_GRADS: dict[str, SurrogateGrads] = {
    "step_pwl": _step_pwl_grads,
    "periodic_exponential": periodic_exponential_grads,
}
"""Surrogate name -> ``f(u, threshold, window, max_spikes_per_dt) -> (ds/du, ds/dθ)``."""


def _as_float(value: Scalar) -> float:
    return float(value.item()) if isinstance(value, Tensor) else float(value)


class _SpikeFunction(torch.autograd.Function):
    """Shared forward and context handling; subclasses pick the surrogate by name."""

    surrogate: str = ""

    @staticmethod
    def forward(
        x: Tensor,
        threshold: Scalar,
        window: Scalar = DEFAULT_LEARNING_WINDOW,
        max_spikes_per_dt: Scalar = DEFAULT_MAX_SPIKES_PER_DT,
    ) -> Tensor:
        return spike_count(x, threshold, _as_float(max_spikes_per_dt))

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, threshold, window, max_spikes_per_dt = (tuple(inputs) + (None, None))[:4]
        window = DEFAULT_LEARNING_WINDOW if window is None else window
        max_spikes_per_dt = (
            DEFAULT_MAX_SPIKES_PER_DT if max_spikes_per_dt is None else max_spikes_per_dt
        )
        thr_is_tensor = isinstance(threshold, Tensor)
        ctx.save_for_backward(x, threshold if thr_is_tensor else None)
        ctx.threshold = None if thr_is_tensor else threshold
        ctx.window = window
        ctx.max_spikes_per_dt = _as_float(max_spikes_per_dt)

    @classmethod
    def backward(cls, ctx, grad_output: Tensor):
        x, threshold = ctx.saved_tensors
        thr = ctx.threshold if threshold is None else threshold
        ds_du, ds_dthr = SURROGATE_GRADS[cls.surrogate](x, thr, ctx.window, ctx.max_spikes_per_dt)
        grad_x = grad_output * ds_du if ctx.needs_input_grad[0] else None
        grad_thr = None
        if threshold is not None and ctx.needs_input_grad[1]:
            grad_thr = (grad_output * ds_dthr).sum_to_size(threshold.shape)
        return grad_x, grad_thr, None, None


class StepPWL(_SpikeFunction):
    r"""Multi-spike step function with a piece-wise linear (window) surrogate.

    Forward: :func:`spike_count`. Backward: :func:`step_pwl_grads`,

    .. math::
        \frac{\partial L}{\partial x} = \frac{g}{\theta}[x \ge \theta - w], \qquad
        \frac{\partial L}{\partial \theta} = -\frac{g\,x}{\theta^2}[x \ge \theta - w]

    Call it as ``StepPWL.apply(x, threshold, window=0.5, max_spikes_per_dt=2**16)``;
    ``threshold``, ``window`` and ``max_spikes_per_dt`` may be floats or tensors. Only ``x``
    and a tensor ``threshold`` receive gradients (the threshold gradient is summed to the
    threshold's shape).

    Example:
        >>> import torch
        >>> x = torch.tensor([0.4, 0.6, 1.0, 2.5], requires_grad=True)
        >>> StepPWL.apply(x, torch.tensor(1.0))
        tensor([0., 0., 1., 2.], grad_fn=<StepPWLBackward>)
        >>> StepPWL.apply(x, torch.tensor(1.0)).sum().backward()
        >>> x.grad
        tensor([0., 1., 1., 1.])
    """

    surrogate = "step_pwl"


class PeriodicExponential(_SpikeFunction):
    r"""Multi-spike step function with a periodic exponential surrogate.

    Forward: :func:`spike_count`. Backward: ``g · p`` for ``x`` and ``-g · p · x / θ`` for the
    threshold, with the periodic bump ``p`` of :func:`periodic_exponential_grads`.

    Example:
        >>> import torch
        >>> x = torch.tensor([0.5, 1.0, 2.0], requires_grad=True)
        >>> PeriodicExponential.apply(x, 1.0).sum().backward()
        >>> x.grad
        tensor([0.3679, 1.0000, 1.0000])
    """

    surrogate = "periodic_exponential"
