"""``ExpSynTorch``: exponential synapses, ``isyn_t = beta * (isyn_{t-1} + x_t)``.

With ``beta = exp(-dt / tau)``. The output is the synaptic current trace ``(B, T, N)``.

Example:
    >>> import torch
    >>> syn = ExpSynTorch(1, tau=0.01)
    >>> out, _, _ = syn(torch.tensor([[[1.0], [0.0]]]))
    >>> [round(v, 4) for v in out.flatten().tolist()]  # e^-0.1, e^-0.2
    [0.9048, 0.8187]
"""

from __future__ import annotations

from typing import Any

import torch

from snnqat.kernels import exp_syn_scan
from snnqat.nn.modules import _capture
from snnqat.nn.modules._init import constant, zeros
from snnqat.nn.modules.torch_module import TorchModule
from snnqat.parameters import Parameter, SimulationParameter, State

__all__ = ["ExpSynTorch"]


class ExpSynTorch(TorchModule):
    """A layer of exponential synapses (a leaky integrator without spikes).

    Args:
        shape: the number of channels ``N`` (or ``(N,)``).
        tau: time constant(s) in seconds, family ``taus`` (default 10 ms).
        dt: time step in seconds.

    Raises:
        ValueError: bad shape, non-positive ``tau`` or ``dt``.
    """

    def __init__(self, shape: Any, tau: Any = None, dt: float = 1e-3, *args: Any, **kwargs: Any):
        n = shape if isinstance(shape, int) else (shape[0] if len(shape) == 1 else None)
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"shape: ExpSynTorch expects N or (N,), got {shape!r}.")
        if not isinstance(dt, (int, float)) or dt <= 0:
            raise ValueError(f"dt: expected a number > 0, got {dt!r}.")
        super().__init__(shape=(n, n), **kwargs)
        if tau is not None:
            tau = torch.as_tensor(tau, dtype=torch.get_default_dtype())
            if not (torch.isfinite(tau).all() and (tau > 0).all()):
                raise ValueError(f"tau: expected finite values > 0, got {tau.tolist()}.")
        self.tau = Parameter(tau, family="taus", init_func=constant(0.01), shape=[(n,), ()])
        self.dt = SimulationParameter(float(dt))
        self.isyn = State(init_func=zeros, shape=(n,))

    def forward(self, data: Any) -> torch.Tensor:
        """Filter ``(B, T, N)`` input; returns the current trace ``(B, T, N)``."""
        data, (isyn,) = self._auto_batch(data, (self.isyn,), ((self.size_out,),))
        beta = torch.exp(-self.dt / self.tau).expand(self.size_out)
        trace = exp_syn_scan(data, isyn.to(data.dtype), beta)
        self.isyn = trace[:, -1].detach()
        capture = _capture.active()
        if capture is not None:
            _capture.put(capture, self, (trace[:, -1],))
        if self._record:
            self._record_dict = {"isyn": trace}
        return trace
