"""Pure, fused compute kernels for spiking layers (no dependency on the rest of snnqat).

* :func:`lif_scan`: a LIF layer over a whole sequence as one autograd Function (float or
  hardware integer forward semantics, exact BPTT backward through the surrogate).
* :func:`exp_syn_scan`: an exponential synapse over a sequence.
* :class:`StepPWL`, :class:`PeriodicExponential`: stand-alone multi-spike functions with
  surrogate gradients; :func:`spike_count` and the ``*_grads`` helpers hold their formulas.
* :func:`matmul_with_shortcut`: ``x @ W`` for a block with a residual shortcut, the input's
  two gradients summed inside the backward product.
* :func:`bitshift_decay`: the hardware decay ``v - dec(v, dash)``.
* :class:`HardwareOptions`, :func:`delivery_bounds`, :func:`delay_steps`: integer delivery of
  spikes through saturating synapses (hardware-faithful mode).
* :func:`release_cuda_graphs`: free the GPU memory that the CUDA graphs of the LIF loops keep.
"""

from snnqat.kernels._graphs import release_cuda_graphs
from snnqat.kernels.integer import HardwareOptions, delay_steps, delivery_bounds
from snnqat.kernels.lif import (
    MIN_THRESHOLD,
    IntegerSemantics,
    LIFConfig,
    LIFResult,
    bitshift_decay,
    exp_syn_scan,
    lif_scan,
)
from snnqat.kernels.linear import matmul_with_shortcut
from snnqat.kernels.surrogates import (
    SURROGATE_GRADS,
    PeriodicExponential,
    StepPWL,
    periodic_exponential_grads,
    spike_count,
    step_pwl_grads,
)

__all__ = [
    "HardwareOptions",
    "delay_steps",
    "delivery_bounds",
    "MIN_THRESHOLD",
    "SURROGATE_GRADS",
    "IntegerSemantics",
    "LIFConfig",
    "LIFResult",
    "PeriodicExponential",
    "StepPWL",
    "bitshift_decay",
    "exp_syn_scan",
    "lif_scan",
    "matmul_with_shortcut",
    "periodic_exponential_grads",
    "release_cuda_graphs",
    "spike_count",
    "step_pwl_grads",
]
