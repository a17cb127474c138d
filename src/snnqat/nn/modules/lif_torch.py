"""``LIFTorch``: current-based leaky integrate-and-fire neurons with multi-spike output.

Per time step ``t`` (decays applied after the input is added, subtractive reset)::

    isyn_t = beta * (isyn_{t-1} + x_t + spikes_{t-1} @ w_rec)
    u_t    = alpha * vmem_{t-1} + sum_syn(isyn_t) + bias + noise_t
    s_t    = min(floor(u_t / threshold), max_spikes_per_dt)   if u_t >= threshold else 0
    vmem_t = u_t - s_t * threshold

The leak is parametrised in one of three *leak modes*; the other representations are derived:

=========== ============================ ============================== ==========================
leak_mode   trainable (family)           alpha, beta                    tau
=========== ============================ ============================== ==========================
taus        tau_mem, tau_syn (taus)      exp(-dt/tau)                   native
decays      alpha, beta (decays)         native                         -dt/ln(alpha)
bitshifts   dash_mem, dash_syn           1 - 2**-dash                   -dt/ln(1 - 2**-dash)
            (bitshifts)
=========== ============================ ============================== ==========================

The time loop runs in one fused kernel (:func:`snnqat.kernels.lif_scan`): one forward pass
without a per-step autograd graph and a hand-written exact backward pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from snnqat.kernels import HardwareOptions, IntegerSemantics, LIFConfig, lif_scan
from snnqat.kernels.surrogates import PeriodicExponential, StepPWL
from snnqat.nn.modules import _capture
from snnqat.nn.modules._init import checked_value as _checked_value
from snnqat.nn.modules._init import constant, kaiming_transposed, zeros
from snnqat.nn.modules.torch_module import TorchModule
from snnqat.parameters import Parameter, SimulationParameter, State
from snnqat.utilities.memory import reuse_freed_memory_for_training

__all__ = ["LIFTorch", "LEAK_MODES"]

LEAK_MODES: dict[str, tuple[str, str]] = {
    "taus": ("tau_mem", "tau_syn"),
    "decays": ("alpha", "beta"),
    "bitshifts": ("dash_mem", "dash_syn"),
}
_DEFAULTS = {"tau_mem": 0.02, "tau_syn": 0.02, "alpha": 0.5, "beta": 0.5}
_DEFAULTS.update(dash_mem=1.0, dash_syn=1.0)
_FAMILY = {"taus": "taus", "decays": "decays", "bitshifts": "bitshifts"}
_DERIVED = ("tau_mem", "tau_syn", "alpha", "beta", "dash_mem", "dash_syn")
_SURROGATES = {"step_pwl": StepPWL, "periodic_exponential": PeriodicExponential}
THRESHOLD_MIN = 1e-3
"""The smallest threshold the kernel uses: a trained threshold never reaches zero (decision 27)."""


def _surrogate_name(fn: Any) -> str:
    for name, cls in _SURROGATES.items():
        if fn is cls or fn == cls.apply or fn == name:
            return name
    raise TypeError(
        "spike_generation_fn: expected StepPWL or PeriodicExponential (the class, its `.apply`, "
        f"or the names {sorted(_SURROGATES)}), got {fn!r}."
    )


class LIFTorch(TorchModule):
    """A layer of leaky integrate-and-fire neurons with ``Nsyn`` synapses each.

    Args:
        shape: ``N`` or ``(N,)`` for ``N`` neurons with one synapse each, or
            ``(Nin, Nout)`` with ``Nin = Nsyn * Nout`` (input channel ``k*Nsyn + s`` feeds
            synapse ``s`` of neuron ``k``).
        leak_mode: ``"taus"``, ``"decays"`` or ``"bitshifts"``: which leak representation
            is the trainable parameter.
        tau_mem, tau_syn: time constants in seconds (``taus`` mode; default 20 ms).
        alpha, beta: decay factors per step (``decays`` mode; default 0.5).
        dash_mem, dash_syn: bit-shift decays (``bitshifts`` mode; default 1).
        bias: constant input current per neuron (family ``biases``; default 0).
        threshold: firing threshold per neuron, strictly positive (default 1).
        has_rec: whether the layer has recurrent weights ``w_rec`` of shape ``(Nout, Nin)``.
        w_rec: initial recurrent weights (requires ``has_rec=True``).
        noise_std: standard deviation of membrane noise, scaled by ``sqrt(dt)``.
        spike_generation_fn: :class:`~snnqat.kernels.surrogates.StepPWL` (default) or
            :class:`~snnqat.kernels.surrogates.PeriodicExponential`.
        learning_window: width of the surrogate gradient window (absolute units).
        max_spikes_per_dt: the most spikes one neuron emits per step (default ``2**16``).
        weight_init_func: initialiser for ``w_rec``.
        dt: the time step in seconds.

    Attributes:
        cuda_graphs: on a GPU, run the layer's float time loops as replayed CUDA graphs
            (:attr:`snnqat.kernels.LIFConfig.cuda_graphs`); ``True`` by default, set it to
            ``False`` on an instance (or on the class) to launch every step's kernels instead.

    Raises:
        ValueError: malformed shape (incl. ``Nin % Nout != 0``), unknown ``leak_mode``, a leak
            argument of another mode, ``w_rec`` without ``has_rec``, non-positive threshold,
            ``dt`` or window, negative noise, non-finite values.

    Example:
        >>> lif = LIFTorch(2, tau_mem=0.02, tau_syn=0.01, threshold=10.0)
        >>> spikes, state, rec = lif(torch.tensor([[[1.0, 0.0], [0.0, 0.0]]]), record=True)
        >>> sorted(rec)
        ['irec', 'isyn', 'spikes', 'vmem']
        >>> round(rec["vmem"][0, 1, 0].item(), 4)  # e^-0.05 e^-0.1 + e^-0.2
        1.6794
    """

    cuda_graphs: bool = True

    def __init__(
        self,
        shape: Any,
        leak_mode: str = "taus",
        tau_mem: Any = None,
        tau_syn: Any = None,
        alpha: Any = None,
        beta: Any = None,
        dash_mem: Any = None,
        dash_syn: Any = None,
        bias: Any = None,
        threshold: Any = None,
        has_rec: bool = False,
        w_rec: Any = None,
        noise_std: float = 0.0,
        spike_generation_fn: Any = StepPWL,
        learning_window: float = 0.5,
        max_spikes_per_dt: Any = None,
        weight_init_func: Callable = kaiming_transposed,
        dt: float = 1e-3,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        shape = _check_lif_shape(shape)
        n_in, n_out = shape
        super().__init__(shape=shape, spiking_input=True, spiking_output=True, **kwargs)
        leak = dict(tau_mem=tau_mem, tau_syn=tau_syn, alpha=alpha, beta=beta)
        leak.update(dash_mem=dash_mem, dash_syn=dash_syn)
        _check_leak_args(leak_mode, leak)
        _check_positive("dt", dt)
        _check_positive("learning_window", learning_window)
        if not isinstance(noise_std, (int, float)) or not noise_std >= 0:
            raise ValueError(f"noise_std: expected a float >= 0, got {noise_std!r}.")
        if w_rec is not None and not has_rec:
            raise ValueError(
                "w_rec: recurrent weights were given but has_rec=False. "
                "Pass has_rec=True to make the layer recurrent."
            )
        self.n_synapses = n_in // n_out
        self.leak_mode = SimulationParameter(leak_mode)
        self.dt = SimulationParameter(float(dt))
        self.noise_std = SimulationParameter(float(noise_std))
        self.learning_window = SimulationParameter(float(learning_window))
        msd = 2.0**16 if max_spikes_per_dt is None else max_spikes_per_dt
        _check_positive("max_spikes_per_dt", float(torch.as_tensor(msd)))
        self.max_spikes_per_dt = SimulationParameter(float(torch.as_tensor(msd)))
        self._surrogate = _surrogate_name(spike_generation_fn)
        self.spike_generation_fn = SimulationParameter(_SURROGATES[self._surrogate].apply)
        self._has_rec = SimulationParameter(bool(has_rec))
        self.hardware: HardwareOptions | None = None
        self._make_leak_params(leak_mode, leak, n_out)
        self.bias = Parameter(
            _checked_value("bias", bias),
            family="biases",
            init_func=zeros,
            shape=[(n_out,), ()],
        )
        self.threshold = Parameter(
            _checked_value("threshold", threshold, positive=True),
            family="thresholds",
            init_func=constant(1.0),
            shape=[(n_out,), ()],
        )
        if has_rec:
            self.w_rec = Parameter(
                _checked_value("w_rec", w_rec),
                family="weights",
                init_func=weight_init_func,
                shape=(n_out, n_in),
            )
        else:
            self.w_rec = SimulationParameter(torch.zeros(n_out, n_in))
        self.vmem = State(init_func=zeros, shape=(n_out,))
        self.isyn = State(init_func=zeros, shape=(n_out, self.n_synapses))
        self.spikes = State(init_func=zeros, shape=(n_out,))

    def _make_leak_params(self, mode: str, leak: dict, n_out: int) -> None:
        n_syn = self.n_synapses
        mem, syn = LEAK_MODES[mode]
        for name, shapes in ((mem, [(n_out,), ()]), (syn, [(n_out, n_syn), (1, n_syn), ()])):
            value = _checked_value(name, leak[name], positive=mode == "taus")
            if mode == "decays" and value is not None:
                _check_range(name, value, 0.0, 1.0)
            init = constant(_DEFAULTS[name])
            setattr(
                self, name, Parameter(value, family=_FAMILY[mode], init_func=init, shape=shapes)
            )

    # ---------------------------------------------------------------- leak representations
    def _native(self, which: str) -> torch.Tensor:
        """The native leak parameter for ``'mem'`` or ``'syn'``."""
        mem, syn = LEAK_MODES[self.leak_mode]
        return nn_getattr(self, mem if which == "mem" else syn)

    def _derived(self, name: str) -> torch.Tensor:
        which = "mem" if name in ("tau_mem", "alpha", "dash_mem") else "syn"
        kind = {"tau": "tau", "alp": "decay", "bet": "decay", "das": "dash"}[name[:3]]
        return _convert(self._native(which), self.leak_mode, kind, self.dt)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name in _DERIVED and "leak_mode" in self.__dict__:
                return self._derived(name)
            raise

    def __setattr__(self, name: str, value: Any) -> None:
        mode = self.__dict__.get("leak_mode")
        if mode is not None and name in _DERIVED and name not in LEAK_MODES[mode]:
            self._set_derived(name, value)
        else:
            super().__setattr__(name, value)

    def _set_derived(self, name: str, value: Any) -> None:
        """Write a derived leak name by converting it to the native representation."""
        if isinstance(value, Parameter):
            raise ValueError(
                f"{name}: cannot register a Parameter under a derived leak name in "
                f"leak_mode={self.leak_mode!r}; the native parameters are "
                f"{LEAK_MODES[self.leak_mode]}."
            )
        kind = {"tau": "tau", "alp": "decay", "bet": "decay", "das": "dash"}[name[:3]]
        native_kind = {"taus": "tau", "decays": "decay", "bitshifts": "dash"}[self.leak_mode]
        value = torch.as_tensor(value, dtype=torch.get_default_dtype())
        native = _convert(
            value,
            {"tau": "taus", "decay": "decays", "dash": "bitshifts"}[kind],
            native_kind,
            self.dt,
        )
        mem, syn = LEAK_MODES[self.leak_mode]
        super().__setattr__(mem if name in ("tau_mem", "alpha", "dash_mem") else syn, native)

    def leak_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(alpha (N,), beta (N, Nsyn))``: the per-step decay factors, differentiable."""
        n_out, n_syn = self.size_out, self.n_synapses
        return self._derived("alpha").expand(n_out), self._derived("beta").expand(n_out, n_syn)

    # ---------------------------------------------------------------- evolution
    def _config(
        self, integer: IntegerSemantics | None = None, grad_last: bool = False
    ) -> LIFConfig:
        return LIFConfig(
            max_spikes_per_dt=float(self.max_spikes_per_dt),
            learning_window=float(self.learning_window),
            surrogate=self._surrogate,
            integer=integer,
            cuda_graphs=bool(self.cuda_graphs),
            grad_last=grad_last,
        )

    def _hardware_leak(self, hw: HardwareOptions) -> tuple:
        """Integer bit-shifts and their straight-through decay factors ``1 - 2**-dash``."""
        n_out, n_syn = self.size_out, self.n_synapses
        dashes, decays = [], []
        for name, shape in (("dash_mem", (n_out,)), ("dash_syn", (n_out, n_syn))):
            dash = self._derived(name).expand(shape)  # the native value in bitshifts mode
            dash_int = dash.detach().round().clamp(0, hw.max_dash)
            dashes.append(dash_int)
            decays.append(1.0 - torch.pow(2.0, -(dash + (dash_int - dash).detach())))
        return dashes, decays

    def _hardware_inputs(self, data: Any, hw: HardwareOptions) -> tuple:
        """Split a hardware weight layer's ``(B, T, Nin, 3)`` output into currents and bounds."""
        if isinstance(data, torch.Tensor) and data.dim() == 4 and data.shape[-1] == 3:
            current, lo, hi = data.unbind(-1)
            return current, lo, hi
        return data, None, None

    def forward(self, data: Any) -> torch.Tensor:
        """Evolve over ``(B, T, Nin)`` input; returns spike counts ``(B, T, Nout)``."""
        n_out, n_syn = self.size_out, self.n_synapses
        hw, integer, offset = self.hardware, None, self.__dict__.pop("_spike_offset", None)
        lo = hi = None
        if hw is not None:
            data, lo, hi = self._hardware_inputs(data, hw)
        data, (vmem, isyn, spikes) = self._auto_batch(
            data, (self.vmem, self.isyn, self.spikes), ((n_out,), (n_out, n_syn), (n_out,))
        )
        batch, steps, _ = data.shape
        if data.is_cpu and torch.is_grad_enabled():
            reuse_freed_memory_for_training()  # once per process (SNNQAT_REUSE_FREED_MEMORY=0: not)
        if hw is None:
            alpha, beta = self.leak_factors()
        else:
            (dash_mem, dash_syn), (alpha, beta) = self._hardware_leak(hw)
            shape4 = (batch, steps, n_out, n_syn)
            integer = IntegerSemantics(
                dash_mem,
                dash_syn,
                hw.state_min,
                hw.state_max,
                x_lo=None if lo is None else lo.reshape(shape4),
                x_hi=None if hi is None else hi.reshape(shape4),
                spike_offset=None if offset is None else offset.detach(),
            )
        noise = None
        if self.noise_std > 0 and hw is None:
            scale = self.noise_std * math.sqrt(self.dt)
            noise = scale * torch.randn(batch, steps, n_out, device=data.device, dtype=data.dtype)
        capture = _capture.active()  # a caller that needs the final states differentiable
        res = lif_scan(
            data.reshape(batch, steps, n_out, n_syn),
            vmem.to(data.dtype),
            isyn.to(data.dtype),
            spikes.to(data.dtype),
            alpha,
            beta,
            self.bias.expand(n_out),
            self.threshold.clamp(min=THRESHOLD_MIN).expand(n_out),
            self.w_rec if self._has_rec else None,
            noise,
            self._config(integer, grad_last=capture is not None),
            record=self._record,
        )
        # the new states, straight into their buffers (what assigning them does, without the
        # registration checks on every call)
        last = (res.vmem_last, res.isyn_last, res.spikes_last)
        if capture is not None:  # the new states with their history; the buffers get them detached
            _capture.put(capture, self, last)
            last = tuple(t.detach() for t in last)
        states = self._buffers
        states["vmem"], states["isyn"], states["spikes"] = last
        out = res.spikes
        if offset is not None:  # aliased spikes pass their gradient straight through
            out = out + (offset - offset.detach())
        if self._record:
            irec = res.irec if res.irec is not None else torch.zeros_like(res.isyn)
            self._record_dict = {
                "vmem": res.vmem,
                "isyn": res.isyn,
                "irec": irec,
                "spikes": out,
            }
        return out


def nn_getattr(mod: torch.nn.Module, name: str) -> Any:
    """Attribute lookup through torch's registries, bypassing derived names."""
    return torch.nn.Module.__getattr__(mod, name)


_TAU, _DECAY, _DASH = "tau", "decay", "dash"


def _convert(value: torch.Tensor, mode: str, kind: str, dt: float) -> torch.Tensor:
    """Convert a leak value given in ``mode``'s native representation into ``kind``.

    ``-dt / v`` is written as ``v.reciprocal() * -dt``: the operations torch's ``__rdiv__``
    performs (the same values and gradients), without its Python wrapper (this runs twice per
    LIF layer and forward call).
    """
    if mode == "taus":
        decay = torch.exp(value.reciprocal() * -dt)
    elif mode == "decays":
        decay = value
    else:
        decay = 1.0 - torch.pow(2.0, -value)
    if kind == _DECAY:
        return decay
    if kind == _TAU:
        return value if mode == "taus" else torch.log(decay).reciprocal() * -dt
    # decay >= 1 (a time constant trained to <= 0) maps to the slowest leak, never to NaN
    return value if mode == "bitshifts" else -torch.log2((1.0 - decay).clamp_min(2.0**-30))


def _check_lif_shape(shape: Any) -> tuple[int, int]:
    if isinstance(shape, int):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not 1 <= len(shape) <= 2:
        raise ValueError(f"shape: LIFTorch expects N, (N,) or (Nin, Nout), got {shape!r}.")
    if not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"shape: expected positive ints, got {shape!r}.")
    n_in, n_out = (shape[0], shape[0]) if len(shape) == 1 else tuple(shape)
    if n_in % n_out != 0:
        raise ValueError(
            f"shape: Nin must be a multiple of Nout (Nin = Nsyn * Nout), got (Nin, Nout) = "
            f"({n_in}, {n_out}). Use e.g. ({2 * n_out}, {n_out}) for two synapses per neuron."
        )
    return int(n_in), int(n_out)


def _check_leak_args(mode: Any, leak: dict) -> None:
    if mode not in LEAK_MODES:
        raise ValueError(f"leak_mode: expected one of {sorted(LEAK_MODES)}, got {mode!r}.")
    wrong = [k for k, v in leak.items() if v is not None and k not in LEAK_MODES[mode]]
    if wrong:
        raise ValueError(
            f"leak arguments {wrong} do not belong to leak_mode={mode!r}, whose leak "
            f"parameters are {list(LEAK_MODES[mode])}. Pass those, or choose the leak_mode "
            "that matches your arguments."
        )


def _check_positive(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}.")


def _check_range(name: str, value: torch.Tensor, lo: float, hi: float) -> None:
    if not ((value > lo) & (value < hi)).all():
        raise ValueError(f"{name}: expected values in ({lo}, {hi}), got {value.tolist()}.")
