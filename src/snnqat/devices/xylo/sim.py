r"""Bit-exact integer simulator of a Xylo-class core.

:class:`XyloSim` runs an :class:`~snnqat.devices.xylo.XyloSpec` on integer spike-count rasters
exactly as the vendor simulator (``xylosim.v2``) does; ``docs/dev/xylo_semantics.md`` derives
every rule below from its source. All states are integers in ``[lo, hi] = [-2**15, 2**15-1]``.

Two element-wise primitives, also exported here:

* ``safe_add(x, y)``: saturate toward the limit that ``y`` points to; equal to
  ``clip(x + y, lo, hi)`` for ``x`` in range.
* ``decay(v, dash)``: the *change* of a leaky state, ``dv = v >> dash`` (arithmetic, floor),
  and ``dv = sign(v)`` when that is 0 while ``v != 0``; the leak is ``v <- v - dv``.

One time step ``t`` (``sat`` = clip to ``[lo, hi]``; ``s_{t-1}`` = hidden spike counts of the
previous step):

1. Inputs, channel by channel (channel order matters when saturating):
   ``n = min(x_t[c], 15)`` and ``isyn[j, k] <- sat(isyn[j, k] + n * (w_in[c, j, k] << shift_in))``.
2. Last step's hidden spikes, neuron by neuron: ``isyn[j, k] <- sat(isyn[j, k] + s_{t-1}[i] *
   (w_rec[i, j, k] << shift_rec))`` and ``isyn_out[o] <- sat(isyn_out[o] + s_{t-1}[i] *
   (w_out[i, o] << shift_out))``. So each hidden->hidden or hidden->output hop costs one step.
3. Hidden neurons, in index order:
   ``isyn_k <- isyn_k - decay(isyn_k, dash_syn_k)``;
   ``dv <- sat(-decay(v, dash_mem) + sum_k isyn_k)`` (the sum itself is not saturated);
   ``dv <- sat(dv + bias)``; ``v <- sat(v + dv)``.
   The neuron starts from the spikes ``a`` that aliases already put on it this step and emits
   ``e = min(floor(v / threshold), 31 - a)`` (if ``v >= threshold``), ``v <- v - e * threshold``;
   its count ``a + e`` is then added to each alias target's count, capped at 31.
4. Output neurons: the same update (one synapse, no aliases) with a cap of 1 spike.

One quirk is reproduced on purpose: ``-decay(v, dash_mem)`` is stored in the 16-bit state type,
so with ``dash_mem = 0`` and ``v = -32768`` it wraps to ``-32768`` instead of ``+32768``.

Example:
    A chain input -> hidden 0 -> hidden 1 -> output; each hop costs one step:

    >>> import numpy as np
    >>> from snnqat.devices.xylo import XyloSim, XyloSpec
    >>> spec = XyloSpec.zeros(
    ...     1, 2, 1, dash_mem=[1, 1], dash_syn=[1, 1], threshold=[50, 50],
    ...     dash_mem_out=[1], dash_syn_out=[1], threshold_out=[50],
    ... )
    >>> spec.weights_in[0, 0, 0] = 127
    >>> spec.weights_rec[0, 1, 0] = 127
    >>> spec.weights_out[1, 0] = 127
    >>> sim = XyloSim.from_spec(spec)
    >>> out, state, rec = sim(np.array([[1], [0], [0], [0]]), record=True)
    >>> rec["Spikes"].T.tolist(), out.T.tolist()
    ([[1, 0, 0, 0], [0, 1, 0, 0]], [[0, 0, 1, 0]])
    >>> rec["Vmem"][:, 0].tolist()   # 127 -> isyn 64 -> v 64 -> spike, 14; then leak
    [14, 39, 36, 26]
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from . import _kernels
from ._kernels import SimState
from .limits import XyloLimits
from .spec import XyloSpec

__all__ = ["XyloSim", "safe_add", "decay"]

Output = tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]


def safe_add(x: Any, y: Any, limits: XyloLimits | None = None) -> np.ndarray:
    """Saturating addition of the vendor: ``x + y`` unless that passes the limit ``y`` points to.

    With ``L = state_max`` if ``y >= 0`` else ``state_min``: the result is ``L`` when
    ``|L - x| <= |y|`` and ``x + y`` otherwise. For ``x`` inside the state range this is
    ``clip(x + y, state_min, state_max)``.

    Args:
        x: Integer array or scalar (a state).
        y: Integer array or scalar (the increment).
        limits: Gives the state range. Default: ``XyloLimits()`` (int16).

    Returns:
        ``int64`` array of the broadcast shape.

    Example:
        >>> safe_add([32000, -32000, 5], [1000, -1000, -7]).tolist()
        [32767, -32768, -2]
    """
    limits = XyloLimits() if limits is None else limits
    x, y = np.asarray(x, np.int64), np.asarray(y, np.int64)
    limit = np.where(y < 0, limits.state_min, limits.state_max)
    return np.where(np.abs(limit - x) > np.abs(y), x + y, limit)


def decay(v: Any, dash: Any) -> np.ndarray:
    """The change ``dv`` of one bit-shift leak step, ``v <- v - dv``.

    ``dv = v >> dash`` (arithmetic shift: floor for negative ``v``); when that is 0 but
    ``v != 0``, ``dv = sign(v)``, so small states still reach 0 (linearly).

    Example:
        >>> decay([100, 3, -3, -100, 0], 4).tolist()   # 100 >> 4 = 6, 3 >> 4 = 0 -> 1
        [6, 1, -1, -7, 0]
    """
    return _kernels.decay(np.asarray(v, np.int64), np.asarray(dash, np.int64))


class XyloSim:
    """Integer simulator of one :class:`XyloSpec` (see the module docstring for the maths).

    Like the vendor's module it is stateful: a call continues from the state the previous
    call ended in; :meth:`reset_state` goes back to all zeros. A batched call ``(B, T, Nin)``
    can follow a reset or an unbatched call (whose state is then used for every batch
    element) or a call with the same ``B``.

    Args:
        spec: The network. It is validated against ``limits`` and copied.
        limits: The core. Default: ``XyloLimits()``.

    Raises:
        ValueError: If ``spec`` does not pass :meth:`XyloSpec.validate`.
    """

    def __init__(self, spec: XyloSpec, limits: XyloLimits | None = None) -> None:
        limits = XyloLimits() if limits is None else limits
        if not isinstance(spec, XyloSpec):
            raise TypeError(f"XyloSim: expected an XyloSpec, got {type(spec).__name__}.")
        spec.validate(limits)
        self._spec = copy.deepcopy(spec)
        self._limits = limits
        self._plan = _kernels.build_plan(self._spec, limits)
        self._state: SimState | None = None
        self._batched = False

    @classmethod
    def from_spec(cls, spec: XyloSpec, limits: XyloLimits | None = None) -> XyloSim:
        """Build a simulator for ``spec`` (same as ``XyloSim(spec, limits)``)."""
        return cls(spec, limits)

    @property
    def spec(self) -> XyloSpec:
        """A copy of the simulated spec."""
        return copy.deepcopy(self._spec)

    @property
    def limits(self) -> XyloLimits:
        """The core's limits (spike caps and state range come from here)."""
        return self._limits

    @property
    def dt(self) -> float:
        """Seconds per time step (``spec.dt``)."""
        return self._spec.dt

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(Nin, Nhid, Nout)``."""
        return self._spec.n_inputs, self._spec.n_hidden, self._spec.n_outputs

    def __repr__(self) -> str:
        nin, nhid, nout = self.shape
        return f"XyloSim(Nin={nin}, Nhid={nhid}, Nout={nout}, Nsyn={self._spec.n_synapses})"

    def __call__(
        self, raster: Any, *, record: bool = False, state: dict[str, Any] | None = None
    ) -> Output:
        """Same as :meth:`evolve`."""
        return self.evolve(raster, record=record, state=state)

    def evolve(
        self, raster: Any, *, record: bool = False, state: dict[str, Any] | None = None
    ) -> Output:
        """Simulate a raster of input spike counts.

        Args:
            raster: Non-negative integer counts (NumPy array, nested list or torch tensor;
                integral floats and bools accepted), shape ``(T, Nin)`` or ``(B, T, Nin)``.
                Counts above ``max_input_spikes`` (15) are capped, as on the chip.
            record: Also return per-step traces.
            state: Start from this state (a dict as returned) instead of the stored one.

        Returns:
            ``(output_spikes, state, record)``: output spike counts ``(B?, T, Nout)``; the final
            state ``{"Vmem", "Isyn", "Spikes", "Vmem_out", "Isyn_out"}`` (``Spikes`` are the
            hidden counts delivered in the next step); and, if ``record``, traces with the same
            keys, shapes ``(B?, T, Nhid)``, ``(B?, T, Nhid, Nsyn)``, ``(B?, T, Nhid)``,
            ``(B?, T, Nout)``, ``(B?, T, Nout)`` (values after the step), else ``{}``.
            ``B`` is present iff the raster had it. All arrays are ``int32``.

        Raises:
            TypeError: If the raster is not numeric.
            ValueError: If the raster has the wrong shape or negative/non-integer values, or
                ``state`` is malformed or its batch size does not fit.
        """
        counts, batched = _counts(raster, self._spec.n_inputs, self._limits.max_input_spikes)
        start = self._start_state(state, counts.shape[0])
        out, final, traces = _kernels.run(self._plan, counts, start, record)
        self._state, self._batched = final, batched
        squeeze = (lambda a: a) if batched else (lambda a: a[0])
        state_out = {k: squeeze(v.astype(np.int32)) for k, v in zip(_KEYS, final)}
        return squeeze(out), state_out, {k: squeeze(v) for k, v in traces.items()}

    def state(self) -> dict[str, np.ndarray]:
        """The stored state (copies, ``int32``); batched iff the last call was batched.

        Before any call (or after :meth:`reset_state`) it is the unbatched zero state.
        """
        current = self._zero_state(1) if self._state is None else self._state
        squeeze = (lambda a: a) if self._batched else (lambda a: a[0])
        return {k: squeeze(v).astype(np.int32) for k, v in zip(_KEYS, current)}

    def reset_state(self) -> XyloSim:
        """Forget the stored state (all zeros again). Returns ``self``."""
        self._state, self._batched = None, False
        return self

    def _zero_state(self, batch: int) -> SimState:
        nhid, nsyn, nout = self._spec.n_hidden, self._spec.n_synapses, self._spec.n_outputs
        hidden = np.zeros((batch, nhid), np.int64)
        return SimState(
            hidden, np.zeros((batch, nhid, nsyn), np.int64), hidden.copy(),
            np.zeros((batch, nout), np.int64), np.zeros((batch, nout), np.int64),
        )  # fmt: skip

    def _start_state(self, given: dict[str, Any] | None, batch: int) -> SimState:
        if given is not None:
            current = _state_from_dict(given, self._zero_state(1), self._limits)
        elif self._state is None:
            return self._zero_state(batch)
        else:
            current = self._state
        stored = current.vmem.shape[0]
        if stored not in (1, batch):
            raise ValueError(
                f"XyloSim: the state has batch size {stored} but the raster has {batch}. "
                f"Fix: call reset_state() first, or pass state= with a matching batch."
            )
        return SimState(*(np.broadcast_to(v, (batch, *v.shape[1:])).copy() for v in current))


_KEYS = ("Vmem", "Isyn", "Spikes", "Vmem_out", "Isyn_out")


# ---------------------------------------------------------------------- input checks
def _counts(raster: Any, n_inputs: int, cap: int) -> tuple[np.ndarray, bool]:
    """Validate a raster; return capped ``int64`` counts ``(B, T, Nin)`` and whether batched."""
    array = _as_array(raster)
    if array.ndim not in (2, 3) or array.shape[-1] != n_inputs:
        raise ValueError(
            f"XyloSim: expected a raster of shape (T, Nin) or (B, T, Nin) with Nin = "
            f"{n_inputs}, got shape {array.shape}."
        )
    _check_counts(array)
    counts = np.minimum(array, cap).astype(np.int64)
    return (counts, True) if array.ndim == 3 else (counts[None], False)


def _as_array(raster: Any) -> np.ndarray:
    if hasattr(raster, "detach") and hasattr(raster, "cpu"):  # torch.Tensor, without import
        raster = raster.detach().cpu().numpy()
    array = np.asarray(raster)
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"XyloSim: expected a numeric raster of spike counts, got dtype {array.dtype}."
        )
    return array


def _check_counts(array: np.ndarray) -> None:
    if array.dtype.kind == "f":
        bad = ~np.isfinite(array) | (array != np.floor(array))
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"XyloSim: expected integer spike counts, got {array[index]} at index {index}. "
                f"Fix: round the raster, or pass an integer array."
            )
    if array.dtype.kind in "if" and (array < 0).any():
        index = tuple(int(i) for i in np.argwhere(array < 0)[0])
        raise ValueError(
            f"XyloSim: expected non-negative spike counts, got {array[index]} at index {index}."
        )


def _state_from_dict(given: dict[str, Any], zero: SimState, limits: XyloLimits) -> SimState:
    if not isinstance(given, dict) or set(given) != set(_KEYS):
        got = sorted(given) if isinstance(given, dict) else type(given).__name__
        raise ValueError(f"XyloSim: expected a state dict with keys {list(_KEYS)}, got {got}.")
    caps = {"Spikes": (0, limits.max_hidden_spikes)}
    arrays = []
    for key, template in zip(_KEYS, zero):
        low, high = caps.get(key, (limits.state_min, limits.state_max))
        arrays.append(_state_array(key, given[key], template.shape[1:], low, high))
    batches = {a.shape[0] for a in arrays}
    if len(batches) != 1:
        raise ValueError(f"XyloSim: state arrays disagree on the batch size: {sorted(batches)}.")
    return SimState(*arrays)


def _state_array(key: str, value: Any, shape: tuple[int, ...], low: int, high: int) -> np.ndarray:
    array = np.asarray(value)
    if array.shape == shape:
        array = array[None]
    if array.shape[1:] != shape or array.ndim != len(shape) + 1:
        raise ValueError(
            f"XyloSim: state[{key!r}]: expected shape {shape} or (B, *{shape}), got {array.shape}."
        )
    if array.dtype.kind not in "iu":
        raise ValueError(f"XyloSim: state[{key!r}]: expected an integer dtype, got {array.dtype}.")
    if array.size and (array.min() < low or array.max() > high):
        raise ValueError(
            f"XyloSim: state[{key!r}]: expected integers in [{low}, {high}], got values in "
            f"[{array.min()}, {array.max()}]."
        )
    return array.astype(np.int64)
