"""Xylo-class integer neuromorphic cores: limits, network specification, integer simulator.

* :class:`XyloLimits`: sizes, integer widths and spike caps of a core (defaults: Xylo).
* :class:`XyloSpec`: the integer parameters of one network, with a versioned file format.
* :class:`XyloSim`: the bit-exact integer simulator (semantics of the vendor's ``xylosim.v2``).
* :func:`hardware_faithful`: patch a network to train in the core's integer arithmetic.
* :func:`export`: a network's integer arrays (a :class:`XyloSpec`), with an
  :class:`ExportReport`.

Example:
    >>> import numpy as np
    >>> from snnqat.devices.xylo import XyloSim, XyloSpec
    >>> spec = XyloSpec.zeros(2, 4, 1, threshold=[10] * 4, dash_syn=[[1]] * 4)
    >>> out, state, rec = XyloSim(spec)(np.zeros((5, 2), int))
    >>> out.shape, sorted(state)
    ((5, 1), ['Isyn', 'Isyn_out', 'Spikes', 'Vmem', 'Vmem_out'])
"""

from .export import ExportReport, export
from .hardware import hardware_faithful
from .limits import XyloLimits
from .sim import XyloSim
from .spec import SPEC_FORMAT, SPEC_FORMAT_VERSION, XyloSpec

__all__ = [
    "XyloLimits",
    "XyloSpec",
    "XyloSim",
    "SPEC_FORMAT",
    "SPEC_FORMAT_VERSION",
    "hardware_faithful",
    "export",
    "ExportReport",
]
