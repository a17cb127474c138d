"""``Sequential``: chain modules so that each one's output feeds the next.

Sub-modules are named ``f"{index}_{class_name}"`` (e.g. ``'0_LinearTorch'``), or by the keys of
an ``OrderedDict`` passed first. Calling a sequential network returns the last output, the
nested state, and a record holding each sub-module's record plus its output under
``'<name>_output'`` (with autograd history, so it can enter a loss).

Example:
    >>> import torch
    >>> from snnqat.nn.modules import LinearTorch, LIFTorch
    >>> net = Sequential(LinearTorch((3, 5)), LIFTorch(5))
    >>> net
    TorchSequential  with shape (3, 5) {
        LinearTorch '0_LinearTorch' with shape (3, 5)
        LIFTorch '1_LIFTorch' with shape (5, 5)
    }
    >>> out, state, rec = net(torch.ones(1, 10, 3))
    >>> sorted(rec)
    ['0_LinearTorch', '0_LinearTorch_output', '1_LIFTorch', '1_LIFTorch_output']
"""

from __future__ import annotations

from collections import OrderedDict
from contextvars import ContextVar
from typing import Any

import torch
from torch import nn

from snnqat.nn.modules.module import ModuleBase
from snnqat.nn.modules.torch_module import TorchModule

__all__ = ["Sequential", "TorchSequential"]

_RESERVED = ("shape", "spiking_input", "spiking_output")

# False while a combinator runs under the torch API (``forward``), whose caller never sees
# the record: the ``'<name>_output'`` entries are then not built, so the intermediate
# outputs are not kept alive until the end of the forward pass (only what autograd saves).
_KEEP_OUTPUTS: ContextVar[bool] = ContextVar("snnqat_keep_outputs", default=True)


class TorchSequential(TorchModule):
    """A chain of torch modules; see :func:`Sequential`."""

    def __init__(self, *mods: Any, **kwargs: Any) -> None:
        bad = [k for k in _RESERVED if k in kwargs]
        if bad:
            raise ValueError(
                f"Sequential: {bad} cannot be passed; the shape and spiking flags are taken "
                "from the first and last sub-modules."
            )
        super().__init__(shape=None, **kwargs)
        if mods and isinstance(mods[0], OrderedDict):
            for name, mod in mods[0].items():
                self.append(mod, name)
            mods = mods[1:]
        for mod in mods:
            self.append(mod)

    def append(self, mod: Any, name: str | None = None) -> TorchSequential:
        """Append a module (named ``f"{index}_{class_name}"`` unless ``name`` is given).

        Raises:
            TypeError: ``mod`` is not a torch module.
            ValueError: the name is taken, or the sizes of consecutive modules do not match.
        """
        if not isinstance(mod, nn.Module):
            raise TypeError(
                f"Sequential: expected torch modules (snnqat TorchModule or torch.nn.Module), "
                f"got {type(mod).__name__}."
            )
        index = len(self._modules)
        mod = TorchModule.from_torch(mod, retain_torch_api=True)
        name = f"{index}_{mod.class_name}" if name is None else name
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(
                f"Sequential: module names must be non-empty str without '.', got {name!r}."
            )
        if name in self._modules:
            raise ValueError(
                f"Sequential: a sub-module named {name!r} already exists; names in use: "
                f"{list(self._modules)}."
            )
        if self._modules:
            _check_sizes(list(self._modules.values())[-1], mod, index)
        setattr(self, name, mod)
        self._update_shape()
        return self

    def _update_shape(self) -> None:
        mods = list(self._modules.values())
        object.__setattr__(self, "_shape", (mods[0].size_in, mods[-1].size_out))
        object.__setattr__(self, "_spiking_input", mods[0].spiking_input)
        object.__setattr__(self, "_spiking_output", mods[-1].spiking_output)

    def __getitem__(self, item: int | str) -> TorchModule:
        if isinstance(item, str):
            return self._modules[item]
        return list(self._modules.values())[item]

    def __len__(self) -> int:
        return len(self._modules)

    def evolve(self, input_data: Any, record: bool = False) -> tuple:
        """Evolve each sub-module in order; returns ``(output, state, record)``."""
        x = input_data
        keep = record or _KEEP_OUTPUTS.get()
        state, rec = self._make_tree(), {}
        for name, mod in self._modules.items():
            x, s, r = evolve_child(mod, x, record)
            state[name] = s
            rec[name] = r
            if keep:
                rec[f"{name}_output"] = x
        return x, state, rec

    def forward(self, input_data: Any) -> torch.Tensor:
        """The torch API: the output of the last module.

        The record is not returned here, so its ``'<name>_output'`` entries are not built
        (nested combinators included): intermediate outputs are freed as soon as nothing
        else (autograd) needs them, which lowers the peak memory of a training step.
        """
        if self._record:
            return self.evolve(input_data, record=True)[0]
        token = _KEEP_OUTPUTS.set(False)
        try:
            return self.evolve(input_data)[0]
        finally:
            _KEEP_OUTPUTS.reset(token)


def evolve_child(mod: nn.Module, x: Any, record: bool) -> tuple:
    """Evolve one sub-module with the snnqat convention, whatever its call API."""
    if isinstance(mod, ModuleBase):
        return mod.evolve(x, record=record)
    return mod(x), {}, {}


def _check_sizes(prev: TorchModule, mod: TorchModule, index: int) -> None:
    a, b = prev.size_out, mod.size_in
    if a is not None and b is not None and a != b:
        raise ValueError(
            f"The output of submodule {index - 1} ({prev.class_name}) does not match the input "
            f"shape of submodule {index} ({mod.class_name}): {a} ≠ {b}."
        )


def Sequential(*mods: Any, **kwargs: Any) -> TorchSequential:  # noqa: N802 - factory
    """Build a :class:`TorchSequential` from modules (or an ``OrderedDict`` of them first).

    Extra modules after an ``OrderedDict`` are numbered after the dict's entries.
    Plain ``torch.nn`` modules are converted with ``TorchModule.from_torch``.
    """
    return TorchSequential(*mods, **kwargs)
