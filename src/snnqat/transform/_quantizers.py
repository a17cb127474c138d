"""The element-wise transforms, gathered (quantizers, pruning, mismatch, bit-shift decays, LSQ,
composition); :mod:`snnqat.transform.torch_transform` is their public face.

They live in :mod:`._rounding` (the level grid and the rounding quantizers),
:mod:`._elementwise` (integer quantization, dropout, pruning, mismatch, decays), :mod:`._lsq`
and :mod:`._chain`; argument checks in :mod:`._validation`.
"""

from snnqat.transform._chain import chain
from snnqat.transform._elementwise import (
    class_calc_q_decay,
    dropout,
    gaussian_mismatch,
    int_quant,
    magnitude_prune,
    round_bitshift,
    t_decay,
)
from snnqat.transform._lsq import LSQQuantizer, lsq_quantizer
from snnqat.transform._rounding import (
    deterministic_rounding,
    quantization_levels,
    stochastic_channel_rounding,
    stochastic_rounding,
)
from snnqat.transform._validation import MAX_DASH, Range

__all__ = [
    "LSQQuantizer",
    "chain",
    "class_calc_q_decay",
    "deterministic_rounding",
    "dropout",
    "gaussian_mismatch",
    "int_quant",
    "lsq_quantizer",
    "magnitude_prune",
    "quantization_levels",
    "round_bitshift",
    "stochastic_channel_rounding",
    "stochastic_rounding",
    "t_decay",
    "MAX_DASH",
    "Range",
]
