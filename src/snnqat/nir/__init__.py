r"""Export and import snnqat networks as NIR graphs (Neuromorphic Intermediate Representation).

* :func:`to_nir` turns a float network (``Sequential``/``Residual`` of ``LinearTorch``,
  ``LIFTorch``, ``ExpSynTorch`` and plain ``torch.nn.Linear``, also patched with
  ``TWrapper``) into a :class:`nir.NIRGraph`;
* :func:`from_nir` turns a graph (or a file written with :func:`nir.write`) back into an
  snnqat network: exactly for graphs written by :func:`to_nir`, and by the documented
  mapping for graphs from other tools (e.g. snnTorch);
* :func:`spec_to_nir` / :func:`nir_to_spec` carry an integer
  :class:`~snnqat.devices.xylo.XyloSpec` through NIR with integer arrays.

NIR neurons are continuous-time ODEs. snnqat reads them in discrete time with step ``dt``
and the input held over the step ("zoh")::

    tau * dx/dt = (v_leak - x) + g * u    ->    x_t = d * x_{t-1} + (1 - d) * (v_leak + g * u_t)

with ``d = exp(-dt / tau)`` (``discretization="zoh"``, snnqat's own convention) or
``d = 1 - dt / tau`` (``"euler"``, what snnTorch and Norse use). A ``LIFTorch`` with decays
``alpha`` (membrane) and ``beta`` (synapse) becomes ``CubaLIF(tau_mem, tau_syn,
r = 1/(1-alpha), w_in = beta/(1-beta), v_leak = bias/(1-alpha), v_threshold)``, which the
zoh reading maps back exactly onto ``isyn_t = beta (isyn + x_t)``,
``v_t = alpha v + isyn_t + bias``. Facts NIR cannot express (``dt``, leak mode, subtractive
reset, multi-spike counts, surrogate) travel in node metadata; ``docs/nir.md`` documents the
whole convention.

Example:
    >>> import torch
    >>> from snnqat.nn.modules import LinearTorch, LIFTorch
    >>> from snnqat.nn.combinators import Sequential
    >>> net = Sequential(LinearTorch((2, 3)), LIFTorch(3, bias=0.1, dt=5e-4))
    >>> graph = to_nir(net)
    >>> sorted(graph.nodes)
    ['0_LinearTorch', '1_LIFTorch', 'input', 'output']
    >>> lif = graph.nodes["1_LIFTorch"]
    >>> type(lif).__name__, float(lif.metadata["dt"])
    ('CubaLIF', 0.0005)
    >>> copy = from_nir(graph)
    >>> x = (torch.rand(1, 50, 2) < 0.3).float() * 3
    >>> torch.equal(net(x)[0], copy(x)[0])
    True
"""

from snnqat.nir._common import FORMAT, FORMAT_VERSION, SYNAPSE_PASS_DECAY
from snnqat.nir._export import to_nir
from snnqat.nir._import import NIRGraphNetwork, from_nir
from snnqat.nir._xylo import nir_to_spec, spec_to_nir

__all__ = [
    "to_nir",
    "from_nir",
    "spec_to_nir",
    "nir_to_spec",
    "NIRGraphNetwork",
    "FORMAT",
    "FORMAT_VERSION",
    "SYNAPSE_PASS_DECAY",
]
