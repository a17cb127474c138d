"""The module substrate: registries of parameters, states and sub-modules, families, naming.

Every snnqat module is called as ``output, new_state, record = mod(input, record=False)``.
Registered attributes carry a *kind* (``Parameter``, ``State``, ``SimulationParameter``) and a
*family*; :meth:`ModuleBase.parameters` selects them by family and returns nested dicts that
mirror the module tree.

Example:
    >>> import numpy as np
    >>> from snnqat.parameters import Parameter
    >>> class Gain(Module):
    ...     def __init__(self, n):
    ...         super().__init__(shape=(n, n))
    ...         self.gain = Parameter(np.ones(n), family="weights")
    ...     def evolve(self, x, record=False):
    ...         return x * self.gain, self.state(), {}
    >>> out, state, rec = Gain(2)(np.ones((1, 3, 2)))
    >>> out.shape
    (1, 3, 2)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from snnqat.parameters import (
    ParameterBase,
    SimulationParameter,
    State,
    canonical_families,
)

__all__ = ["ModuleBase", "Module", "AttributeInfo"]

_KINDS = ("Parameter", "State", "SimulationParameter")


@dataclass
class AttributeInfo:
    """What a module knows about one registered attribute (the value lives on the module)."""

    kind: str
    family: str | None
    init_func: Any
    shape: tuple[int, ...] | None
    permitted_shapes: list[tuple[int, ...]] | None = None


def _kind_of(value: ParameterBase) -> str:
    if isinstance(value, State):
        return "State"
    if isinstance(value, SimulationParameter):
        return "SimulationParameter"
    return "Parameter"


def _family_matches(attr_family: str | None, wanted: tuple[str, ...] | None) -> bool:
    if wanted is None:
        return True
    if attr_family is None:
        return False
    try:
        fam = canonical_families(attr_family)[0]
    except ValueError:
        return attr_family in wanted
    return fam in wanted


class ModuleBase:
    """Shared machinery of :class:`Module` and :class:`~snnqat.nn.modules.TorchModule`.

    Args:
        shape: an int ``n`` (becomes ``(n,)``) or an iterable of ints; ``shape[0]`` is the
            input size, ``shape[-1]`` the output size.
        spiking_input: whether the module expects spike counts.
        spiking_output: whether the module emits spike counts.
    """

    _registry_name = "_snn_attributes"

    def _init_registry(
        self, shape: Any = None, spiking_input: bool = False, spiking_output: bool = False
    ) -> None:
        object.__setattr__(self, "_snn_attributes", {})
        object.__setattr__(self, "_name", None)
        object.__setattr__(self, "_shape", _normalise_module_shape(shape))
        object.__setattr__(self, "_spiking_input", bool(spiking_input))
        object.__setattr__(self, "_spiking_output", bool(spiking_output))

    # ---------------------------------------------------------------- registry hooks
    def _submodule_dict(self) -> dict[str, ModuleBase]:
        """Ordered mapping of registered sub-modules (overridden by TorchModule)."""
        return self.__dict__.setdefault("_snn_submodules", OrderedDict())

    def _register_attribute(self, name: str, value: ParameterBase) -> None:
        self._snn_attributes[name] = AttributeInfo(
            kind=_kind_of(value),
            family=value.family,
            init_func=value.init_func,
            shape=tuple(np.shape(value.data)) if value.data is not None else value.shape,
            permitted_shapes=value.permitted_shapes,
        )

    # ---------------------------------------------------------------- queries
    def _query(self, kind: str, family: Any) -> dict:
        wanted = canonical_families(family)
        out = self._make_tree()
        for name, info in self._snn_attributes.items():
            if info.kind == kind and _family_matches(info.family, wanted):
                out[name] = getattr(self, name)
        for name, mod in self._submodule_dict().items():
            if not isinstance(mod, ModuleBase):
                continue
            sub = mod._query(kind, family)
            if wanted is None or sub:
                out[name] = sub
        return out

    def _make_tree(self) -> dict:
        return {}

    def parameters(self, family: str | Iterable[str] | None = None) -> dict:
        """Nested dict of this module's ``Parameter``\\ s (optionally of some families)."""
        return self._query("Parameter", family)

    def state(self, family: str | Iterable[str] | None = None) -> dict:
        """Nested dict of this module's ``State``\\ s."""
        return self._query("State", family)

    def simulation_parameters(self, family: str | Iterable[str] | None = None) -> dict:
        """Nested dict of this module's ``SimulationParameter``\\ s."""
        return self._query("SimulationParameter", family)

    def attributes_named(self, name: str | Iterable[str]) -> dict:
        """Nested dict of the registered attributes with the given name(s), across the tree."""
        names = (name,) if isinstance(name, str) else tuple(name)
        out = self._make_tree()
        for n in self._snn_attributes:
            if n in names:
                out[n] = getattr(self, n)
        for k, mod in self._submodule_dict().items():
            if isinstance(mod, ModuleBase):
                sub = mod.attributes_named(names)
                if sub:
                    out[k] = sub
        return out

    def modules(self) -> OrderedDict:
        """The direct sub-modules, ``OrderedDict(name -> module)`` in registration order."""
        return OrderedDict(self._submodule_dict())

    def set_attributes(self, new_attributes: dict) -> ModuleBase:
        """Set registered attributes from a nested dict (shapes are checked); returns self."""
        updates: list = []
        self._collect_updates(new_attributes, updates)
        for mod, name, value in updates:  # all checked first: nothing is half-set on error
            setattr(mod, name, value)
        return self

    def _collect_updates(self, new_attributes: Any, updates: list) -> None:
        if not isinstance(new_attributes, dict):
            raise TypeError(
                f"new_attributes: expected a nested dict, got {type(new_attributes).__name__}."
            )
        subs = self._submodule_dict()
        for k, v in new_attributes.items():
            if k in subs and isinstance(v, dict):
                subs[k]._collect_updates(v, updates)
            elif k in self._snn_attributes:
                _check_assigned_shape(k, v, self._snn_attributes[k])
                updates.append((self, k, v))

    def reset_state(self) -> ModuleBase:
        """Re-initialise every ``State`` (recursively); returns self."""
        return self._reset("State")

    def reset_parameters(self) -> ModuleBase:
        """Re-initialise every ``Parameter`` (recursively); returns self."""
        return self._reset("Parameter")

    def _reset(self, kind: str) -> ModuleBase:
        for name, info in self._snn_attributes.items():
            if info.kind == kind and info.init_func is not None:
                self._reset_attribute(name, info)
        for mod in self._submodule_dict().values():
            if isinstance(mod, ModuleBase):
                mod._reset(kind)
        return self

    def _reset_attribute(self, name: str, info: AttributeInfo) -> None:
        setattr(self, name, info.init_func(info.shape))

    # ---------------------------------------------------------------- properties
    @property
    def class_name(self) -> str:
        """The class name, e.g. ``'LIFTorch'``."""
        return type(self).__name__

    @property
    def name(self) -> str:
        """The display name: ``"'0_LinearTorch'"``, or ``""`` for an unnamed module."""
        return f"'{self._name}'" if self._name else ""

    @property
    def full_name(self) -> str:
        """``f"{class_name} {name}"``."""
        return f"{self.class_name} {self.name}"

    @property
    def shape(self) -> tuple:
        """The module shape ``(size_in, ..., size_out)``."""
        return self._shape

    @property
    def size_in(self) -> int | None:
        """The number of input channels."""
        return self._shape[0] if self._shape else None

    @property
    def size_out(self) -> int | None:
        """The number of output channels."""
        return self._shape[-1] if self._shape else None

    @property
    def spiking_input(self) -> bool:
        """Whether this module expects spike counts as input."""
        return self._spiking_input

    @property
    def spiking_output(self) -> bool:
        """Whether this module emits spike counts."""
        return self._spiking_output

    def _repr_lines(self, indent: str = "") -> str:
        line = f"{indent}{self.full_name} with shape {self.shape}"
        subs = [m for m in self._submodule_dict().values() if isinstance(m, ModuleBase)]
        if not subs:
            return line
        inner = "\n".join(m._repr_lines(indent + "    ") for m in subs)
        return f"{line} {{\n{inner}\n{indent}}}"

    def __repr__(self) -> str:
        return self._repr_lines()

    # ---------------------------------------------------------------- calling
    def __call__(self, input_data: Any, *args: Any, **kwargs: Any) -> tuple:
        """Evolve the module: returns ``(output, new_state, record)``.

        A 3-tuple from a previous call may be passed instead of an input: its output is used
        and this module's state and record are merged into its dicts under ``self.name``.
        """
        if isinstance(input_data, tuple) and len(input_data) == 3:
            data, state, record = input_data
            out, s, r = self.evolve(data, *args, **kwargs)
            return out, {**state, self.name: s}, {**record, self.name: r}
        return self.evolve(input_data, *args, **kwargs)

    def evolve(self, input_data: Any, record: bool = False) -> tuple:
        """Run the module over an input; subclasses implement it."""
        raise NotImplementedError(f"{self.class_name} does not implement `evolve`.")

    def as_graph(self) -> Any:
        """A computational-graph description of the module (used by exporters)."""
        raise NotImplementedError(f"{self.class_name} has no graph representation.")


def _normalise_module_shape(shape: Any) -> tuple:
    if shape is None:
        return ()
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    if isinstance(shape, Iterable):
        return tuple(shape)
    raise TypeError(f"shape: expected an int or an iterable of ints, got {type(shape).__name__}.")


class Module(ModuleBase):
    """A plain-Python (numpy) module with the registry of :class:`ModuleBase`.

    Registered attribute values live in the instance ``__dict__``.
    """

    def __init__(
        self,
        shape: Any = None,
        spiking_input: bool = False,
        spiking_output: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        self._init_registry(shape, spiking_input, spiking_output)

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, ParameterBase):
            self._register_attribute(name, value)
            value = value.data
        elif isinstance(value, ModuleBase):
            self._submodule_dict()[name] = value
            object.__setattr__(value, "_name", name)
        elif name in self.__dict__.get("_snn_attributes", {}):
            _check_assigned_shape(name, value, self._snn_attributes[name])
        object.__setattr__(self, name, value)

    def _auto_batch(self, data: Any) -> np.ndarray:
        """``(T,)`` -> ``(1, T, size_in)``; ``(T, N)`` -> ``(1, T, N)``; ``(B, T, N)`` kept."""
        data = np.asarray(data)
        if data.ndim == 1:
            data = np.broadcast_to(data[None, :, None], (1, data.shape[0], self.size_in or 1))
        elif data.ndim == 2:
            data = data[None]
        if data.ndim != 3:
            raise ValueError(
                f"input: expected shape (T,), (T, Nin) or (B, T, Nin), got {data.shape}."
            )
        return data


def _check_assigned_shape(name: str, value: Any, info: AttributeInfo) -> None:
    if info.kind == "State" or info.shape is None:
        return
    got = tuple(np.shape(value))
    allowed = [info.shape] + list(info.permitted_shapes or [])
    if got not in allowed:
        raise ValueError(
            f"The new value assigned to {name} must be of shape {info.shape} (got {got})."
        )
