"""Hardware limits of a Xylo-class integer SNN core.

:class:`XyloLimits` collects every number that bounds what a network may look like on the chip:
population sizes, integer widths and spike caps. The defaults describe Xylo (SYNS61201):
16 input channels, 1000 hidden neurons, 8 output neurons, int8 weights, int16 states,
thresholds and biases, 4-bit bit-shift decays ("dash", 0..15), two synapses per hidden neuron,
at most 31 spikes per hidden neuron, 1 per output neuron and 15 per input channel in one step.

Example:
    >>> from snnqat.devices.xylo import XyloLimits
    >>> lim = XyloLimits()
    >>> lim.weight_min, lim.weight_max, lim.state_min, lim.state_max
    (-128, 127, -32768, 32767)
    >>> XyloLimits(max_hidden=496, max_outputs=16).max_hidden
    496
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["XyloLimits"]

# (field, smallest allowed value, largest allowed value or None)
_BOUNDS: tuple[tuple[str, int, int | None], ...] = (
    ("max_inputs", 1, None),
    ("max_hidden", 1, None),
    ("max_outputs", 1, None),
    ("weight_bits", 2, 32),
    ("state_bits", 2, 32),
    ("threshold_bits", 2, 32),
    ("max_dash", 0, 31),
    ("max_hidden_spikes", 1, None),
    ("max_output_spikes", 1, None),
    ("max_input_spikes", 1, None),
    ("max_synapses", 1, None),
    ("max_weight_shift", 0, 31),
    ("max_alias_targets", 0, None),
)


@dataclass(frozen=True)
class XyloLimits:
    """Sizes, integer widths and spike caps of a Xylo-class core.

    All fields are plain ``int``. Signed widths (``*_bits``) give the range
    ``[-2**(bits-1), 2**(bits-1) - 1]``.

    Attributes:
        max_inputs: Input channels (``Nin``).
        max_hidden: Hidden neurons (``Nhid``).
        max_outputs: Output neurons (``Nout``).
        weight_bits: Signed width of every weight (8: ``-128..127``).
        state_bits: Signed width of ``Vmem``, ``Isyn`` and the biases (16).
        threshold_bits: Signed width of the thresholds; thresholds must also be ``>= 1``.
        max_dash: Largest bit-shift decay ``dash`` (4 bits: 15).
        max_hidden_spikes: Spikes one hidden neuron may emit in one step, aliased spikes
            included (31).
        max_output_spikes: Spikes one output neuron may emit in one step (1).
        max_input_spikes: Spikes one input channel delivers in one step; more are dropped (15).
        max_synapses: Synaptic currents per hidden neuron (2).
        max_weight_shift: Largest left shift ``weight_shift_{in,rec,out}`` applied to a layer's
            weights (nominally a 4-bit field, 15). Independently of this, every shifted weight
            ``w << shift`` must fit into ``state_bits`` (see :meth:`XyloSpec.validate`).
        max_alias_targets: Alias targets per hidden neuron. The chip stores a single
            ``alias_target`` per neuron, so the default is 1.

    Raises:
        TypeError: If a field is not an ``int``.
        ValueError: If a field is out of its sensible range (e.g. ``weight_bits=1``) or the
            widths are inconsistent (weights or thresholds wider than the state).
    """

    max_inputs: int = 16
    max_hidden: int = 1000
    max_outputs: int = 8
    weight_bits: int = 8
    state_bits: int = 16
    threshold_bits: int = 16
    max_dash: int = 15
    max_hidden_spikes: int = 31
    max_output_spikes: int = 1
    max_input_spikes: int = 15
    max_synapses: int = 2
    max_weight_shift: int = 15
    max_alias_targets: int = 1

    def __post_init__(self) -> None:
        for name, low, high in _BOUNDS:
            _check_int_field(name, getattr(self, name), low, high)
        for name in ("weight_bits", "threshold_bits"):
            if getattr(self, name) > self.state_bits:
                raise ValueError(
                    f"XyloLimits.{name}: expected at most state_bits={self.state_bits} "
                    f"(values must fit into the neuron state), got {getattr(self, name)}. "
                    f"Fix: raise state_bits or lower {name}."
                )

    @property
    def weight_min(self) -> int:
        """Smallest weight, ``-2**(weight_bits-1)``."""
        return -(2 ** (self.weight_bits - 1))

    @property
    def weight_max(self) -> int:
        """Largest weight, ``2**(weight_bits-1) - 1``."""
        return 2 ** (self.weight_bits - 1) - 1

    @property
    def state_min(self) -> int:
        """Lower saturation limit of ``Vmem``/``Isyn`` (and smallest bias)."""
        return -(2 ** (self.state_bits - 1))

    @property
    def state_max(self) -> int:
        """Upper saturation limit of ``Vmem``/``Isyn`` (and largest bias)."""
        return 2 ** (self.state_bits - 1) - 1

    @property
    def threshold_min(self) -> int:
        """Smallest threshold: 1 (a non-positive threshold never stops spiking)."""
        return 1

    @property
    def threshold_max(self) -> int:
        """Largest threshold, ``2**(threshold_bits-1) - 1``."""
        return 2 ** (self.threshold_bits - 1) - 1

    def replace(self, **changes: int) -> XyloLimits:
        """Return a copy with some fields changed (validated again).

        Example:
            >>> XyloLimits().replace(max_outputs=16).max_outputs
            16
        """
        return dataclasses.replace(self, **changes)


def _check_int_field(name: str, value: object, low: int, high: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"XyloLimits.{name}: expected an int, got {type(value).__name__} ({value!r}). "
            f"Fix: pass a Python int, e.g. {name}=int(value)."
        )
    if value < low or (high is not None and value > high):
        expected = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"XyloLimits.{name}: expected an int {expected}, got {value}.")
