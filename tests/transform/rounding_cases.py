"""The rounding quantizer calls that the CUDA-graph tests run (CPU-emulated in
``tests/transform/test_graphed_rounding.py``, on a GPU in ``tests/cuda``): every grid kind and
rounding mode, as functions of the value."""

from __future__ import annotations

import snnqat.transform as tt

ROUNDINGS = {
    "deterministic, data range": lambda v: tt.deterministic_rounding(v, num_levels=16),
    "deterministic, data range, output range": lambda v: tt.deterministic_rounding(
        v, output_range=[-8, 7], num_levels=16
    ),
    "deterministic, affine data range": lambda v: tt.deterministic_rounding(
        v, num_levels=16, maintain_zero=False
    ),
    "deterministic, given ranges": lambda v: tt.deterministic_rounding(
        v, input_range=[-1, 1], output_range=[-128, 127]
    ),
    "stochastic, data range": lambda v: tt.stochastic_rounding(v, num_levels=8),
    "stochastic, per channel": lambda v: tt.stochastic_channel_rounding(v, [-4, 3], 8),
}
