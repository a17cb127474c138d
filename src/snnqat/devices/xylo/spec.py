"""The integer network specification of a Xylo-class core, and its file format.

An :class:`XyloSpec` holds every integer a Xylo core needs: weights, bit-shift decays
("dashes"), thresholds, biases, per-layer weight shifts and aliases. It is what export
produces, what :class:`~snnqat.devices.xylo.XyloSim` runs and what is saved to disk.

Shapes (``Nin`` inputs, ``Nhid`` hidden neurons, ``Nout`` outputs, ``Nsyn`` synapses per hidden
neuron):

==================  ====================  ==================================================
field               shape                 meaning
==================  ====================  ==================================================
``weights_in``      ``(Nin, Nhid, Nsyn)`` input channel -> hidden synapse
``weights_rec``     ``(Nhid, Nhid, Nsyn)`` hidden -> hidden synapse (one step of delay)
``weights_out``     ``(Nhid, Nout)``      hidden -> output neuron (one step of delay)
``dash_mem``        ``(Nhid,)``           membrane decay ``v <- v - (v >> dash)``
``dash_syn``        ``(Nhid, Nsyn)``      synaptic decay, per synapse
``dash_mem_out``    ``(Nout,)``           output membrane decay
``dash_syn_out``    ``(Nout,)``           output synaptic decay (outputs have one synapse)
``threshold``       ``(Nhid,)``           firing threshold, ``>= 1``
``threshold_out``   ``(Nout,)``           output firing threshold, ``>= 1``
``bias``            ``(Nhid,)``           added to the membrane every step
``bias_out``        ``(Nout,)``           added to the output membrane every step
==================  ====================  ==================================================

plus ``weight_shift_in/rec/out`` (every weight of that layer is used as ``w << shift``),
``aliases`` (for each hidden neuron, the hidden neurons its spikes are also counted on) and
``dt`` (seconds per step).

``weights_out`` is the full ``(Nhid, Nout)`` matrix: row ``i`` holds the weights from hidden
neuron ``i``. (The vendor's ``XyloSim.from_specification`` also accepts a shorter
``(OEN, Nout)`` matrix whose rows belong to the *last* ``OEN`` hidden neurons; pad such a
matrix with ``Nhid - OEN`` zero rows on top to get ours.) For convenience a 2-D
``weights_in``/``weights_rec`` or a 1-D ``dash_syn`` (one synapse, as the mapper returns them)
gets a trailing synapse axis of size 1.

File format (``.npz``, version 1)
---------------------------------
:meth:`XyloSpec.save` writes an uncompressed NumPy ``.npz`` archive (no pickled objects) to
exactly the given path, with these members:

* ``format``: the string ``"snnqat.devices.xylo.XyloSpec"``;
* ``format_version``: the integer ``1``;
* the eleven arrays of the table above under their field names, in their own integer dtype;
* ``weight_shift_in``, ``weight_shift_rec``, ``weight_shift_out``: 0-d integer arrays;
* ``dt``: a 0-d ``float64`` array;
* ``alias_offsets`` (``(Nhid + 1,)`` int64) and ``alias_targets`` (int64): the aliases in
  compressed-row form, ``aliases[i] == alias_targets[alias_offsets[i]:alias_offsets[i + 1]]``.

:meth:`XyloSpec.load` refuses (``ValueError``) a file that is not such an archive, has another
``format`` or a ``format_version`` it does not know, or lacks a member. Members it does not
know are ignored, so later versions may add some.

Example:
    >>> import numpy as np
    >>> from snnqat.devices.xylo import XyloSpec
    >>> spec = XyloSpec.zeros(n_inputs=2, n_hidden=3, n_outputs=1)
    >>> spec.weights_in[0, 0, 0] = 100
    >>> spec.validate()
    >>> spec
    XyloSpec(Nin=2, Nhid=3, Nout=1, Nsyn=1, weight_shift=(0, 0, 0), aliased=0, dt=0.001)
    >>> spec.weights_in[0, 0, 0] = 300
    >>> spec.validate()
    Traceback (most recent call last):
    ...
    ValueError: XyloSpec.weights_in: expected values in [-128, 127] (XyloLimits.weight_bits=8), ...
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .limits import XyloLimits

__all__ = ["XyloSpec", "SPEC_FORMAT", "SPEC_FORMAT_VERSION"]

SPEC_FORMAT = "snnqat.devices.xylo.XyloSpec"
"""Value of the ``format`` member of a saved :class:`XyloSpec`."""

SPEC_FORMAT_VERSION = 1
"""The ``format_version`` that :meth:`XyloSpec.save` writes and :meth:`XyloSpec.load` reads."""

# field name -> dimension names of its shape
_SHAPES: dict[str, tuple[str, ...]] = {
    "weights_in": ("Nin", "Nhid", "Nsyn"),
    "weights_rec": ("Nhid", "Nhid", "Nsyn"),
    "weights_out": ("Nhid", "Nout"),
    "dash_mem": ("Nhid",),
    "dash_syn": ("Nhid", "Nsyn"),
    "dash_mem_out": ("Nout",),
    "dash_syn_out": ("Nout",),
    "threshold": ("Nhid",),
    "threshold_out": ("Nout",),
    "bias": ("Nhid",),
    "bias_out": ("Nout",),
}
_ARRAY_FIELDS = tuple(_SHAPES)
_SHIFT_FIELDS = ("weight_shift_in", "weight_shift_rec", "weight_shift_out")
_SHIFTED = {
    "weight_shift_in": "weights_in",
    "weight_shift_rec": "weights_rec",
    "weight_shift_out": "weights_out",
}
_SIZE_LIMITS = {
    "Nin": "max_inputs",
    "Nhid": "max_hidden",
    "Nout": "max_outputs",
    "Nsyn": "max_synapses",
}


@dataclass(eq=False)
class XyloSpec:
    """Integer parameters of one network on a Xylo-class core (see the module docstring).

    Arrays are copied on construction; nothing is checked until :meth:`validate` (which
    :class:`~snnqat.devices.xylo.XyloSim` and :meth:`save` call), so a spec can be built for
    one chip and checked against the limits of another.

    Equality compares values (not dtypes) of every field.
    """

    weights_in: np.ndarray
    weights_rec: np.ndarray
    weights_out: np.ndarray
    dash_mem: np.ndarray
    dash_syn: np.ndarray
    dash_mem_out: np.ndarray
    dash_syn_out: np.ndarray
    threshold: np.ndarray
    threshold_out: np.ndarray
    bias: np.ndarray
    bias_out: np.ndarray
    weight_shift_in: int = 0
    weight_shift_rec: int = 0
    weight_shift_out: int = 0
    aliases: list[list[int]] = field(default_factory=list)
    dt: float = 1e-3

    def __post_init__(self) -> None:
        for name in _ARRAY_FIELDS:
            setattr(self, name, np.array(getattr(self, name)))
        self._add_synapse_axis()
        for name in _SHIFT_FIELDS:
            setattr(self, name, _plain_int(getattr(self, name)))
        self.aliases = _normalise_aliases(self.aliases, self._n_hidden_guess())

    def _add_synapse_axis(self) -> None:
        for name in ("weights_in", "weights_rec"):
            if getattr(self, name).ndim == 2:
                setattr(self, name, getattr(self, name)[:, :, None])
        if self.dash_syn.ndim == 1:
            self.dash_syn = self.dash_syn[:, None]

    def _n_hidden_guess(self) -> int | None:
        return self.weights_in.shape[1] if self.weights_in.ndim == 3 else None

    # ------------------------------------------------------------------ construction
    @classmethod
    def zeros(
        cls, n_inputs: int, n_hidden: int, n_outputs: int, n_synapses: int = 1, **kwargs: Any
    ) -> XyloSpec:
        """A valid spec with zero weights, biases and dashes and unit thresholds.

        Args:
            n_inputs: ``Nin``.
            n_hidden: ``Nhid``.
            n_outputs: ``Nout``.
            n_synapses: ``Nsyn``.
            **kwargs: Fields to set instead of the defaults.

        Example:
            >>> XyloSpec.zeros(3, 4, 2, n_synapses=2, dt=1e-2).weights_rec.shape
            (4, 4, 2)
        """
        nin, nhid, nout, nsyn = n_inputs, n_hidden, n_outputs, n_synapses
        fields: dict[str, Any] = {
            "weights_in": np.zeros((nin, nhid, nsyn), np.int64),
            "weights_rec": np.zeros((nhid, nhid, nsyn), np.int64),
            "weights_out": np.zeros((nhid, nout), np.int64),
            "dash_mem": np.zeros(nhid, np.int64),
            "dash_syn": np.zeros((nhid, nsyn), np.int64),
            "dash_mem_out": np.zeros(nout, np.int64),
            "dash_syn_out": np.zeros(nout, np.int64),
            "threshold": np.ones(nhid, np.int64),
            "threshold_out": np.ones(nout, np.int64),
            "bias": np.zeros(nhid, np.int64),
            "bias_out": np.zeros(nout, np.int64),
        }
        fields.update(kwargs)
        return cls(**fields)

    # ------------------------------------------------------------------ sizes
    @property
    def n_inputs(self) -> int:
        """``Nin``, the number of input channels (``weights_in.shape[0]``)."""
        return int(self.weights_in.shape[0])

    @property
    def n_hidden(self) -> int:
        """``Nhid``, the number of hidden neurons (``weights_in.shape[1]``)."""
        return int(self.weights_in.shape[1])

    @property
    def n_outputs(self) -> int:
        """``Nout``, the number of output neurons (``weights_out.shape[1]``)."""
        return int(self.weights_out.shape[1])

    @property
    def n_synapses(self) -> int:
        """``Nsyn``, the number of synapses per hidden neuron (``weights_in.shape[2]``)."""
        return int(self.weights_in.shape[2])

    def __repr__(self) -> str:
        try:
            sizes = _dims(self)
        except ValueError:
            return f"XyloSpec(<malformed>, weights_in.shape={self.weights_in.shape})"
        shifts = tuple(getattr(self, n) for n in _SHIFT_FIELDS)
        aliased = sum(bool(a) for a in self.aliases)
        dims = ", ".join(f"{k}={v}" for k, v in sizes.items())
        return f"XyloSpec({dims}, weight_shift={shifts}, aliased={aliased}, dt={self.dt})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, XyloSpec):
            return NotImplemented
        same_arrays = all(
            np.array_equal(getattr(self, n), getattr(other, n)) for n in _ARRAY_FIELDS
        )
        scalars = (*_SHIFT_FIELDS, "dt")
        same_scalars = all(getattr(self, n) == getattr(other, n) for n in scalars)
        return same_arrays and same_scalars and self._alias_ints() == other._alias_ints()

    __hash__ = None  # type: ignore[assignment]  # mutable arrays

    def _alias_ints(self) -> list[list[int]]:
        return [[int(t) for t in a] for a in self.aliases] if self.aliases else []

    # ------------------------------------------------------------------ validation
    def validate(self, limits: XyloLimits | None = None) -> None:
        """Check the spec against the structure rules and the given hardware limits.

        Checks, in this order: every array has an integer dtype; shapes agree (``Nin``,
        ``Nhid`` and ``Nsyn`` are read from ``weights_in``, ``Nout`` from ``weights_out``);
        weight shifts are ints; ``aliases`` has one list of valid hidden indices per hidden
        neuron; ``dt > 0``; then the limits: sizes, weights in ``[weight_min, weight_max]``,
        dashes in ``[0, max_dash]``, thresholds in ``[1, threshold_max]``, biases in the state
        range, shifts in ``[0, max_weight_shift]`` with every ``w << shift`` inside the state
        range, and at most ``max_alias_targets`` aliases per neuron.

        Args:
            limits: The core to check against. Default: ``XyloLimits()`` (Xylo).

        Raises:
            ValueError: Naming the first offending field, what was expected (with the limit)
                and what was found.
        """
        limits = XyloLimits() if limits is None else limits
        self.check_structure()
        _check_sizes(self, limits)
        _check_value_ranges(self, limits)
        _check_shifts(self, limits)
        _check_alias_counts(self, limits)

    def check_structure(self) -> None:
        """Check dtypes, shapes, shift types, aliases and ``dt``, but no hardware limit.

        Raises:
            ValueError: Naming the offending field, what was expected and what was found.
        """
        for name in _ARRAY_FIELDS:
            _check_integer_dtype(name, getattr(self, name))
        dims = _dims(self)
        for name, template in _SHAPES.items():
            _check_shape(name, getattr(self, name), template, dims)
        for name in _SHIFT_FIELDS:
            _check_shift_type(name, getattr(self, name))
        _check_aliases(self.aliases, dims["Nhid"])
        _check_dt(self.dt)

    # ------------------------------------------------------------------ file format
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the spec to ``path`` in the versioned ``.npz`` format (module docstring).

        The file name is used exactly as given (no ``.npz`` suffix is added).

        Raises:
            ValueError: If the spec is structurally broken (see :meth:`check_structure`).

        Example:
            >>> import tempfile, pathlib
            >>> spec = XyloSpec.zeros(2, 3, 1, aliases=[[1], [], []])
            >>> with tempfile.TemporaryDirectory() as d:
            ...     path = pathlib.Path(d) / "net.xylo.npz"
            ...     spec.save(path)
            ...     XyloSpec.load(path) == spec
            True
        """
        self.check_structure()
        members: dict[str, np.ndarray] = {name: getattr(self, name) for name in _ARRAY_FIELDS}
        members.update({name: np.array(getattr(self, name)) for name in _SHIFT_FIELDS})
        members.update(_pack_aliases(self._alias_ints()))
        members["dt"] = np.array(float(self.dt), dtype=np.float64)
        members["format"] = np.array(SPEC_FORMAT)
        members["format_version"] = np.array(SPEC_FORMAT_VERSION, dtype=np.int64)
        with open(path, "wb") as file:
            np.savez(file, **members)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> XyloSpec:
        """Read a spec written by :meth:`save`.

        The result is checked with :meth:`check_structure`; call :meth:`validate` to check it
        against a chip's limits.

        Raises:
            FileNotFoundError: If ``path`` does not exist.
            ValueError: If the file is not a saved ``XyloSpec``, has an unknown
                ``format_version`` or lacks a member.
        """
        with open(path, "rb") as file:
            members = _read_npz(file, path)
        _check_format(members, path)
        _check_members(members, path)
        fields: dict[str, Any] = {name: members[name] for name in _ARRAY_FIELDS}
        fields.update({name: int(members[name]) for name in _SHIFT_FIELDS})
        fields["aliases"] = _unpack_aliases(members["alias_offsets"], members["alias_targets"])
        fields["dt"] = float(members["dt"])
        spec = cls(**fields)
        spec.check_structure()
        return spec


# ---------------------------------------------------------------------- normalisation
def _plain_int(value: Any) -> Any:
    """Turn NumPy integer scalars into ``int``; leave anything else for validation."""
    if isinstance(value, np.integer) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return value.item()
    return value


def _normalise_aliases(aliases: Any, n_hidden: int | None) -> Any:
    if aliases is None or (isinstance(aliases, list) and not aliases and n_hidden):
        return [[] for _ in range(n_hidden or 0)]
    if isinstance(aliases, (str, bytes)) or not isinstance(aliases, Sequence | np.ndarray):
        return aliases  # validation reports it
    return [_plain_list(entry) for entry in aliases]


def _plain_list(entry: Any) -> Any:
    if isinstance(entry, (str, bytes)) or not isinstance(entry, Sequence | np.ndarray):
        return entry
    return [_plain_int(t) for t in entry]


# ---------------------------------------------------------------------- structure checks
def _dims(spec: XyloSpec) -> dict[str, int]:
    if spec.weights_in.ndim != 3:
        raise ValueError(
            "XyloSpec.weights_in: expected a 3-D array (Nin, Nhid, Nsyn) (or 2-D for one "
            f"synapse), got shape {spec.weights_in.shape}."
        )
    if spec.weights_out.ndim != 2:
        raise ValueError(
            f"XyloSpec.weights_out: expected a 2-D array (Nhid, Nout), "
            f"got shape {spec.weights_out.shape}."
        )
    nin, nhid, nsyn = spec.weights_in.shape
    return {"Nin": nin, "Nhid": nhid, "Nout": spec.weights_out.shape[1], "Nsyn": nsyn}


def _check_integer_dtype(name: str, array: np.ndarray) -> None:
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"XyloSpec.{name}: expected an integer dtype, got {array.dtype}. "
            f"Fix: round and cast, e.g. np.round({name}).astype(int)."
        )


def _check_shape(
    name: str, array: np.ndarray, template: tuple[str, ...], dims: dict[str, int]
) -> None:
    expected = tuple(dims[d] for d in template)
    if array.shape != expected:
        raise ValueError(
            f"XyloSpec.{name}: expected shape {_tuple_text(template)} = {expected}, got "
            f"{array.shape}. (Nin, Nhid, Nsyn come from weights_in {tuple(_in_shape(dims))}, "
            f"Nout from weights_out.)"
        )


def _tuple_text(names: tuple[str, ...]) -> str:
    return f"({names[0]},)" if len(names) == 1 else f"({', '.join(names)})"


def _in_shape(dims: dict[str, int]) -> tuple[int, int, int]:
    return dims["Nin"], dims["Nhid"], dims["Nsyn"]


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _check_shift_type(name: str, value: Any) -> None:
    if not _is_int(value):
        raise ValueError(
            f"XyloSpec.{name}: expected an int, got {type(value).__name__} ({value!r})."
        )


def _check_aliases(aliases: Any, n_hidden: int) -> None:
    if not isinstance(aliases, list) or len(aliases) != n_hidden:
        got = f"length {len(aliases)}" if isinstance(aliases, list) else type(aliases).__name__
        raise ValueError(
            f"XyloSpec.aliases: expected a list with one list of target indices per hidden "
            f"neuron (Nhid = {n_hidden}), got {got}. Use [] for a neuron without aliases."
        )
    for i, targets in enumerate(aliases):
        if not isinstance(targets, list) or not all(_is_int(t) for t in targets):
            raise ValueError(
                f"XyloSpec.aliases[{i}]: expected a list of int hidden-neuron indices, "
                f"got {targets!r}."
            )
        bad = [t for t in targets if not 0 <= t < n_hidden]
        if bad:
            raise ValueError(
                f"XyloSpec.aliases[{i}]: expected hidden-neuron indices in [0, {n_hidden - 1}], "
                f"got {bad}."
            )


def _check_dt(dt: Any) -> None:
    ok = isinstance(dt, int | float | np.floating | np.integer) and not isinstance(dt, bool)
    if not ok or not math.isfinite(float(dt)) or float(dt) <= 0:
        raise ValueError(f"XyloSpec.dt: expected a finite number of seconds > 0, got {dt!r}.")


# ---------------------------------------------------------------------- limit checks
def _check_sizes(spec: XyloSpec, limits: XyloLimits) -> None:
    for dim, size in _dims(spec).items():
        limit_name = _SIZE_LIMITS[dim]
        limit = getattr(limits, limit_name)
        if not 1 <= size <= limit:
            raise ValueError(
                f"XyloSpec: expected 1 <= {dim} <= {limit} (XyloLimits.{limit_name}), "
                f"got {dim} = {size}."
            )


def _value_rules(limits: XyloLimits) -> dict[str, tuple[int, int, str]]:
    weights = (limits.weight_min, limits.weight_max, f"weight_bits={limits.weight_bits}")
    dash = (0, limits.max_dash, f"max_dash={limits.max_dash}")
    threshold = (1, limits.threshold_max, f"threshold_bits={limits.threshold_bits}")
    bias = (limits.state_min, limits.state_max, f"state_bits={limits.state_bits}")
    return {
        "weights_in": weights,
        "weights_rec": weights,
        "weights_out": weights,
        "dash_mem": dash,
        "dash_syn": dash,
        "dash_mem_out": dash,
        "dash_syn_out": dash,
        "threshold": threshold,
        "threshold_out": threshold,
        "bias": bias,
        "bias_out": bias,
    }


def _check_value_ranges(spec: XyloSpec, limits: XyloLimits) -> None:
    for name, (low, high, rule) in _value_rules(limits).items():
        _check_range(name, getattr(spec, name), low, high, rule)


def _check_range(name: str, array: np.ndarray, low: int, high: int, rule: str) -> None:
    if array.size == 0:
        return
    outside = (array < low) | (array > high)
    if outside.any():
        index = tuple(int(i) for i in np.argwhere(outside)[0])
        raise ValueError(
            f"XyloSpec.{name}: expected values in [{low}, {high}] (XyloLimits.{rule}), got "
            f"{int(outside.sum())} value(s) outside, e.g. {array[index]} at index {index}. "
            f"Fix: quantise/clip {name} to the range, or check against other XyloLimits."
        )


def _check_shifts(spec: XyloSpec, limits: XyloLimits) -> None:
    for name, weights_name in _SHIFTED.items():
        shift = getattr(spec, name)
        if not 0 <= shift <= limits.max_weight_shift:
            raise ValueError(
                f"XyloSpec.{name}: expected an int in [0, {limits.max_weight_shift}] "
                f"(XyloLimits.max_weight_shift), got {shift}."
            )
        _check_shifted_weights(name, shift, getattr(spec, weights_name), limits)


def _check_shifted_weights(name: str, shift: int, weights: np.ndarray, limits: XyloLimits) -> None:
    if weights.size == 0:
        return
    low, high = int(weights.min()) << shift, int(weights.max()) << shift
    if low < limits.state_min or high > limits.state_max:
        raise ValueError(
            f"XyloSpec.{name}: expected every shifted weight w << {shift} to fit into the "
            f"state range [{limits.state_min}, {limits.state_max}] (the vendor simulator "
            f"wraps such weights around), got shifted weights in [{low}, {high}]. "
            f"Fix: use a smaller {name} or smaller weights."
        )


def _check_alias_counts(spec: XyloSpec, limits: XyloLimits) -> None:
    for i, targets in enumerate(spec.aliases):
        if len(targets) > limits.max_alias_targets:
            raise ValueError(
                f"XyloSpec.aliases[{i}]: expected at most {limits.max_alias_targets} alias "
                f"target(s) per neuron (XyloLimits.max_alias_targets), got {targets}."
            )


# ---------------------------------------------------------------------- file helpers
def _pack_aliases(aliases: list[list[int]]) -> dict[str, np.ndarray]:
    offsets = np.cumsum([0] + [len(a) for a in aliases], dtype=np.int64)
    targets = np.array([t for a in aliases for t in a], dtype=np.int64)
    return {"alias_offsets": offsets, "alias_targets": targets}


def _unpack_aliases(offsets: np.ndarray, targets: np.ndarray) -> list[list[int]]:
    if offsets.ndim != 1 or offsets.size == 0 or offsets[-1] != targets.size:
        raise ValueError(
            "XyloSpec.load: alias_offsets/alias_targets are inconsistent "
            f"(offsets {offsets.tolist()}, {targets.size} targets)."
        )
    return [targets[a:b].tolist() for a, b in zip(offsets[:-1], offsets[1:])]


def _read_npz(file: Any, path: Any) -> dict[str, np.ndarray]:
    not_spec = (
        f"{os.fspath(path)!r} is not a saved XyloSpec: expected a NumPy .npz archive with "
        f"format={SPEC_FORMAT!r}. Write one with XyloSpec.save()."
    )
    try:
        archive = np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(not_spec) from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(not_spec)
    with archive:
        return {name: archive[name] for name in archive.files}


def _check_format(members: dict[str, np.ndarray], path: Any) -> None:
    fmt = members.get("format")
    if fmt is None or fmt.shape != () or str(fmt) != SPEC_FORMAT:
        raise ValueError(
            f"{os.fspath(path)!r} is not a saved XyloSpec: expected member format="
            f"{SPEC_FORMAT!r}, got {None if fmt is None else str(fmt)!r}."
        )
    version = members.get("format_version")
    if version is None or version.shape != () or int(version) != SPEC_FORMAT_VERSION:
        raise ValueError(
            f"{os.fspath(path)!r}: expected XyloSpec format_version {SPEC_FORMAT_VERSION}, got "
            f"{None if version is None else version.tolist()}. This file was written by "
            f"another snnqat version; load it with that version or upgrade snnqat."
        )


def _check_members(members: dict[str, np.ndarray], path: Any) -> None:
    needed = (*_ARRAY_FIELDS, *_SHIFT_FIELDS, "dt", "alias_offsets", "alias_targets")
    missing = [name for name in needed if name not in members]
    if missing:
        raise ValueError(
            f"{os.fspath(path)!r}: saved XyloSpec lacks member(s) {missing}; the file is "
            f"truncated or was not written by XyloSpec.save()."
        )
