"""The bridge between snnqat modules and :class:`torch.nn.Module`.

A :class:`TorchModule` is a ``torch.nn.Module`` whose registered ``Parameter``\\ s are
``nn.Parameter``\\ s and whose ``State``\\ s are buffers. Called directly it returns
``(output, new_state, record)``; after :meth:`TorchModule.to_torch` it behaves like a plain
torch module (``net(x)`` returns the output, ``net.parameters()`` is torch's generator).

Example:
    >>> import torch
    >>> from snnqat.nn.modules import LinearTorch
    >>> lin = LinearTorch((2, 3))
    >>> out, state, rec = lin(torch.ones(1, 4, 2))
    >>> out.shape
    torch.Size([1, 4, 3])
    >>> lin.to_torch()(torch.ones(1, 4, 2)).shape
    torch.Size([1, 4, 3])
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from snnqat.nn.modules.module import AttributeInfo, ModuleBase, _check_assigned_shape
from snnqat.parameters import ParameterBase

__all__ = ["TorchModule", "TorchModuleParameters"]

_TORCH_PARAM_FAMILIES = {"weight": "weights", "bias": "biases"}
_CONVERTED: dict[type, type] = {}


class TorchModuleParameters(dict):
    """A nested ``dict`` of tensors returned by ``parameters()``, ``state()``...

    Example:
        >>> import torch
        >>> t = TorchModuleParameters(a=torch.ones(1), b={"c": torch.zeros(1)})
        >>> [x.item() for x in t.astorch()]
        [1.0, 0.0]
    """

    def astorch(self) -> Iterator[torch.Tensor]:
        """Yield the leaf tensors depth-first (e.g. for ``torch.optim.Adam(p.astorch())``)."""
        for v in self.values():
            if isinstance(v, TorchModuleParameters):
                yield from v.astorch()
            elif isinstance(v, dict):
                yield from TorchModuleParameters(v).astorch()
            elif isinstance(v, torch.Tensor):
                yield v


class TorchModule(ModuleBase, nn.Module):
    """Base class of snnqat's torch modules.

    Args:
        shape: the module shape, ``(size_in, ..., size_out)``.
        spiking_input: whether the module expects spike counts.
        spiking_output: whether the module emits spike counts.
        retain_torch_api: if true, behave as a plain torch module from the start.
    """

    def __init__(
        self,
        shape: Any = None,
        spiking_input: bool = False,
        spiking_output: bool = False,
        retain_torch_api: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        nn.Module.__init__(self)
        self._init_registry(shape, spiking_input, spiking_output)
        self._has_torch_api = bool(retain_torch_api)
        self._torch_call = bool(retain_torch_api)
        self._record = False

    # ---------------------------------------------------------------- registration
    def _submodule_dict(self) -> dict:
        return self._modules

    def _make_tree(self) -> dict:
        return TorchModuleParameters()

    def __setattr__(self, name: str, value: Any) -> None:
        reg = self.__dict__.get("_snn_attributes")
        if reg is None:
            nn.Module.__setattr__(self, name, value)
        elif isinstance(value, ParameterBase):
            self._register_and_store(name, value)
        elif isinstance(value, nn.Module):
            self._register_submodule(name, value)
        elif name in reg and _is_array(value):
            self._assign_registered(name, value, reg[name])
        elif isinstance(value, nn.Parameter) and name not in self._parameters:
            reg[name] = AttributeInfo("Parameter", None, None, tuple(value.shape))
            nn.Module.__setattr__(self, name, value)
        else:
            nn.Module.__setattr__(self, name, value)

    def _drop_existing(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            store.pop(name, None)
        self.__dict__.pop(name, None)

    def _register_and_store(self, name: str, value: ParameterBase) -> None:
        self._register_attribute(name, value)
        data = value.data
        kind = self._snn_attributes[name].kind
        self._drop_existing(name)
        if kind == "Parameter":
            nn.Module.register_parameter(self, name, nn.Parameter(_as_float_tensor(data)))
        elif kind == "State":
            nn.Module.register_buffer(self, name, _as_float_tensor(data), persistent=True)
        elif isinstance(data, torch.Tensor):
            nn.Module.register_buffer(self, name, data, persistent=False)
        else:
            object.__setattr__(self, name, data)

    def _register_submodule(self, name: str, value: nn.Module) -> None:
        if not isinstance(value, TorchModule):
            value = TorchModule.from_torch(value, retain_torch_api=True)
        self._snn_attributes.pop(name, None)
        nn.Module.__setattr__(self, name, value)
        object.__setattr__(value, "_name", name)

    def _assign_registered(self, name: str, value: Any, info: AttributeInfo) -> None:
        if info.kind == "Parameter":
            if value is self._parameters.get(name):
                return
            _check_assigned_shape(name, value, info)
            tensor = torch.as_tensor(value).detach().clone()
            if not tensor.is_floating_point():
                tensor = tensor.to(torch.get_default_dtype())
            old = self._parameters.get(name)
            if old is not None:  # an assigned value lives where the module lives
                tensor = tensor.to(old.device)
            self._parameters[name] = nn.Parameter(tensor)
        elif name in self._buffers:
            if info.kind != "State":
                _check_assigned_shape(name, value, info)
            old = self._buffers[name]
            self._buffers[name] = torch.as_tensor(value, device=None if old is None else old.device)
        else:
            _check_assigned_shape(name, value, info)
            object.__setattr__(self, name, value)

    def _reset_attribute(self, name: str, info: AttributeInfo) -> None:
        current = getattr(self, name)
        new = info.init_func(info.shape)
        if isinstance(current, torch.Tensor):
            new = torch.as_tensor(new, dtype=current.dtype, device=current.device)
        if info.kind == "Parameter":
            self._parameters[name] = nn.Parameter(new.detach().clone())
        elif name in self._buffers:
            self._buffers[name] = new
        else:
            object.__setattr__(self, name, new)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any) -> None:
        # States may hold a batch dimension after a call: take the stored shape.
        for name, info in self._snn_attributes.items():
            key = prefix + name
            if info.kind == "State" and key in state_dict and name in self._buffers:
                current = self._buffers[name]
                if current.shape != state_dict[key].shape:  # (on this module's device)
                    self._buffers[name] = torch.empty(
                        state_dict[key].shape, dtype=current.dtype, device=current.device
                    )
        super()._load_from_state_dict(state_dict, prefix, *args)

    # ---------------------------------------------------------------- torch API switches
    def parameters(self, family: Any = None, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Nested dict of ``Parameter``\\ s of a family; torch's generator under ``to_torch()``."""
        if self._has_torch_api:
            recurse = True if family is None else family
            return nn.Module.parameters(self, recurse, *args, **kwargs)
        return ModuleBase.parameters(self, family)

    def modules(self) -> Any:  # type: ignore[override]
        """Direct sub-modules as an ``OrderedDict``; torch's generator under ``to_torch()``."""
        if self._has_torch_api:
            return nn.Module.modules(self)
        return ModuleBase.modules(self)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all torch parameters."""
        for p in nn.Module.parameters(self):
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.zero_()

    def requires_grad_(self, requires_grad: bool = True) -> TorchModule:
        """Set ``requires_grad`` on all torch parameters; returns self."""
        for p in nn.Module.parameters(self):
            p.requires_grad_(requires_grad)
        return self

    def __repr__(self) -> str:
        if self._has_torch_api:
            return nn.Module.__repr__(self)
        return ModuleBase.__repr__(self)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"

    def _get_name(self) -> str:
        return type(self).__name__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._torch_call:
            return nn.Module.__call__(self, *args, **kwargs)
        return ModuleBase.__call__(self, *args, **kwargs)

    def to_torch(self, use_torch_call: bool = True) -> TorchModule:
        """Switch to the torch API (``net(x)`` returns the output only); returns self.

        Children get the torch ``parameters``/``modules``/``repr`` but keep the snnqat call
        convention, which the combinators rely on.
        """
        self._has_torch_api = True
        self._torch_call = bool(use_torch_call)
        for mod in self._modules.values():
            if isinstance(mod, TorchModule):
                mod.to_torch(use_torch_call=False)
        return self

    # ---------------------------------------------------------------- evolution
    def evolve(self, input_data: Any, record: bool = False) -> tuple:
        """Run ``forward`` through torch's call machinery (hooks fire).

        Returns:
            ``(output, self.state(), record_dict)``; the record is ``{}`` unless ``record``.
        """
        attrs = self.__dict__  # a plain flag: no registration checks on every call
        attrs["_record"] = bool(record)
        try:
            out = nn.Module.__call__(self, input_data)
        finally:
            attrs["_record"] = False
        rec = self.__dict__.pop("_record_dict", {})
        return out, self.state(), rec if record else {}

    def _auto_batch(
        self,
        data: Any,
        states: Iterable[torch.Tensor] = (),
        target_shapes: Iterable[tuple] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Bring input to ``(B, T, size_in)`` and states to ``(B, *shape)``.

        ``(T,)`` becomes ``(1, T, 1)`` and ``(T, N)`` becomes ``(1, T, N)``; a last dimension
        of 1 is broadcast to ``size_in``.

        Raises:
            ValueError: wrong number of dimensions, wrong channel count, or a state whose
                batch size differs from the input's.
        """
        data = _as_input_tensor(data, self)
        batch, steps, n = data.shape
        if n == 1 and self.size_in not in (None, 1):
            data = data.expand(batch, steps, self.size_in)
        elif self.size_in is not None and n != self.size_in:
            raise ValueError(
                f"Input has wrong neuron dimension for {self.full_name}: expected "
                f"{self.size_in} channels in the last dimension, got {n} (input shape "
                f"{tuple(data.shape)})."
            )
        states = tuple(states)
        shapes = list(target_shapes) if target_shapes is not None else [s.shape for s in states]
        return data, tuple(_batch_state(s, tuple(t), batch, self) for s, t in zip(states, shapes))

    # ---------------------------------------------------------------- conversion
    @classmethod
    def from_torch(cls, obj: nn.Module, retain_torch_api: bool = False) -> TorchModule:
        """Convert a plain ``torch.nn.Module`` in place so it can live in snnqat networks.

        Its parameters are registered as ``Parameter``\\ s (``weight`` in family ``weights``,
        ``bias`` in ``biases``), its buffers as ``State``\\ s; sub-modules are converted too.

        Raises:
            TypeError: ``obj`` is not a ``torch.nn.Module``.
        """
        if isinstance(obj, TorchModule):
            return obj
        if not isinstance(obj, nn.Module):
            raise TypeError(f"obj: expected a torch.nn.Module, got {type(obj).__name__}.")
        base = type(obj)
        obj.__class__ = _converted_class(base)
        obj._init_registry(_infer_shape(obj))
        for name, p in obj._parameters.items():
            if p is not None:
                fam = _TORCH_PARAM_FAMILIES.get(name)
                obj._snn_attributes[name] = AttributeInfo("Parameter", fam, None, tuple(p.shape))
        for name, b in obj._buffers.items():
            if b is not None:
                obj._snn_attributes[name] = AttributeInfo("State", None, None, tuple(b.shape))
        obj.__dict__["_has_torch_api"] = bool(retain_torch_api)
        obj.__dict__["_torch_call"] = bool(retain_torch_api)
        obj.__dict__["_record"] = False
        for child_name, child in list(obj._modules.items()):
            if child is not None:
                obj._modules[child_name] = TorchModule.from_torch(child, retain_torch_api=True)
                object.__setattr__(obj._modules[child_name], "_name", child_name)
        object.__setattr__(obj, "_name", base.__name__)
        return obj

    def __reduce_ex__(self, protocol: Any) -> Any:
        base = type(self).__dict__.get("_snnqat_torch_base")
        if base is None:
            return super().__reduce_ex__(protocol)
        return (_rebuild_converted, (base, self.__dict__.copy()))


def _converted_class(base: type) -> type:
    if base not in _CONVERTED:
        _CONVERTED[base] = type(
            base.__name__,
            (TorchModule, base),
            {"_snnqat_torch_base": base, "__module__": base.__module__},
        )
    return _CONVERTED[base]


def _rebuild_converted(base: type, state: dict) -> TorchModule:
    cls = _converted_class(base)
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    return obj


def _infer_shape(obj: nn.Module) -> tuple:
    for a, b in (("in_features", "out_features"), ("in_channels", "out_channels")):
        if hasattr(obj, a) and hasattr(obj, b):
            return (getattr(obj, a), getattr(obj, b))
    return (None,)


def _is_array(value: Any) -> bool:
    return isinstance(value, (torch.Tensor, np.ndarray, float, int, np.number))


def _as_float_tensor(data: Any) -> torch.Tensor:
    t = torch.as_tensor(data)
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    return t


def _as_input_tensor(data: Any, mod: TorchModule) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        if not isinstance(data, (np.ndarray, list, tuple, float, int)):
            raise TypeError(
                f"input of {mod.full_name}: expected a tensor of shape (B, T, {mod.size_in}), "
                f"got {type(data).__name__}."
            )
        data = torch.as_tensor(np.asarray(data), dtype=torch.get_default_dtype())
    if data.ndim == 1:
        data = data[None, :, None]
    elif data.ndim == 2:
        data = data[None]
    if data.ndim != 3:
        raise ValueError(
            f"input of {mod.full_name}: expected shape (T,), (T, Nin) or (B, T, Nin), got "
            f"{tuple(data.shape)}."
        )
    return data


def _batch_state(state: torch.Tensor, shape: tuple, batch: int, mod: TorchModule) -> torch.Tensor:
    if tuple(state.shape) == shape:
        return state.expand(batch, *shape)
    if tuple(state.shape) == (batch, *shape):
        return state
    raise ValueError(
        f"state of {mod.full_name}: expected shape {shape} or {(batch, *shape)} for an input "
        f"of batch size {batch}, got {tuple(state.shape)}. The state was left by a call with "
        "another batch size: call `reset_state()` before evolving a different batch."
    )
