"""``TWrapper`` and ``ActWrapper``: modules that transform parameters or outputs of a module.

A :class:`TWrapper` computes ``{name: T(param)}`` once per forward call and evolves the
wrapped module with those tensors swapped in for its parameters during the call, so gradients
reach the original parameters through ``T``.
An :class:`ActWrapper` applies a function to a module's output.

Wrappers are transparent: a wrapper around a wrapper resolves parameter names through the
chain, and a config written for an unwrapped module applies to its wrapped form.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from snnqat.nn.modules import TorchModule
from snnqat.nn.modules.module import ModuleBase

__all__ = ["TWrapper", "ActWrapper", "is_wrapper", "unwrap", "transformed_values"]


def is_wrapper(mod: Any) -> bool:
    """Whether ``mod`` is a :class:`TWrapper` or an :class:`ActWrapper`."""
    return isinstance(mod, _WrapperBase)


def unwrap(mod: Any) -> tuple[Any, str]:
    """Follow ``_mod`` through wrappers: returns ``(innermost module, dotted prefix)``."""
    prefix = ""
    while is_wrapper(mod):
        mod, prefix = mod._mod, prefix + "_mod."
    return mod, prefix


def transformed_values(slot: Any) -> dict[str, torch.Tensor]:
    """The values the innermost module's transformed attributes take in a forward pass.

    ``slot`` is a module or a chain of wrappers around one; the transforms of every
    :class:`TWrapper` in the chain are applied from the outside in, as the forward does.
    """
    leaf, values = unwrap(slot)[0], {}
    node = slot
    while is_wrapper(node):
        for key, fn in getattr(node, "_T_config", {}).items():
            value = values.get(key, _raw_attr(leaf, key))
            values[key] = fn(value) if fn is not None else value
        node = node._mod
    return values


class _WrapperBase(TorchModule):
    """Common construction: shape, flags and name copied from the wrapped module."""

    def __init__(self, mod: TorchModule) -> None:
        if not isinstance(mod, TorchModule):
            raise TypeError(
                f"mod: expected an snnqat TorchModule to wrap, got {type(mod).__name__}. "
                "Convert plain torch modules with TorchModule.from_torch first."
            )
        super().__init__(
            shape=mod.shape, spiking_input=mod.spiking_input, spiking_output=mod.spiking_output
        )
        name = mod._name
        self._mod = mod
        object.__setattr__(self, "_name", name)

    def forward(self, input_data: Any) -> torch.Tensor:
        """The torch API: the transformed output only."""
        return self.evolve(input_data, record=self._record)[0]

    def as_graph(self) -> Any:
        """Delegates to the wrapped module."""
        return self._mod.as_graph()

    def _state_around(self, state: dict) -> dict:
        """:meth:`state` from the state that ``_mod``'s evolution returned (a wrapper holds no
        state of its own: its tree is ``{'_mod': state of _mod}``), without querying again."""
        tree = self._make_tree()
        tree["_mod"] = state
        return tree


class TWrapper(_WrapperBase):
    """Evolve a module with transformed parameters.

    Args:
        mod: the module to wrap (it is registered as ``'_mod'``).
        T_config: ``{attribute name: Callable[[Tensor], Tensor] | None}`` for ``mod``'s
            parameters or buffers. Transforms that are ``nn.Module``\\ s (e.g. a learned-step
            quantizer) are registered so their parameters train and are saved with the network.

    Example:
        >>> import torch
        >>> from snnqat.nn.modules import LinearTorch
        >>> w = TWrapper(LinearTorch((2, 2), weight=torch.ones(2, 2)), {"weight": lambda p: 2 * p})
        >>> w(torch.ones(1, 1, 2))[0]
        tensor([[[4., 4.]]], grad_fn=<UnsafeViewBackward0>)
        >>> w
        TWrapper  with shape (2, 2) {
            LinearTorch '_mod' with shape (2, 2)
        }
    """

    def __init__(self, mod: TorchModule, T_config: dict | None = None, *args: Any, **kwargs: Any):
        super().__init__(mod)
        self._T_config = dict(T_config or {})
        modules = {k: f for k, f in self._T_config.items() if isinstance(f, nn.Module)}
        if modules:
            nn.Module.__setattr__(self, "_T_modules", nn.ModuleDict(modules))

    def _T(self, leaf: nn.Module | None = None) -> dict[str, torch.Tensor]:
        """The transformed attributes of the innermost module ``leaf``, ``{name: T(value)}``."""
        leaf = unwrap(self._mod)[0] if leaf is None else leaf
        return {
            k: (fn(_raw_attr(leaf, k)) if fn is not None else _raw_attr(leaf, k))
            for k, fn in self._T_config.items()
        }

    def evolve(self, input_data: Any, record: bool = False) -> tuple:
        """Evolve ``_mod`` with transformed parameters; returns ``(output, state, record)``.

        The transformed tensors take the place of the innermost module's parameters for the
        call (the parameters are put back afterwards, also when the call raises), as
        ``torch.func.functional_call`` would do, at a fraction of its per-call cost. Only the
        transformed entries are swapped: their names were checked against the module's
        parameters and buffers when the network was patched, so none can fall back to an
        untransformed value. A transformed buffer keeps its end-of-call value (the module's
        state updates during the call are kept).
        """
        leaf = unwrap(self._mod)[0]
        params, restore = leaf._parameters, {}
        try:
            for name, value in self._T(leaf).items():
                if name in params:
                    restore[name] = params[name]
                    params[name] = value
                else:  # a buffer: it keeps its end-of-call value
                    leaf._buffers[name] = value
            if self._mod._torch_call:  # a converted plain torch module: torch call convention
                return self._mod(input_data), self.state(), {}
            out, state, rec = self._mod(input_data, record=record)
        finally:
            params.update(restore)
        return out, self._state_around(state), rec

    def apply_T(self, inplace: bool = True) -> TWrapper:
        """Burn in: set the wrapped module's parameters to their transformed values."""
        leaf, _ = unwrap(self._mod)
        with torch.no_grad():
            leaf.set_attributes(self._T())
        return self


class ActWrapper(_WrapperBase):
    """Apply a function to a module's output.

    The wrapped module's own record is kept (e.g. a LIF's ``vmem``).

    Args:
        mod: the module to wrap (registered as ``'_mod'``).
        trans_Fn: ``Callable[[Tensor], Tensor]`` applied to the output (identity if ``None``).

    Example:
        >>> import torch
        >>> from snnqat.nn.modules import LinearTorch
        >>> a = ActWrapper(LinearTorch((1, 1), weight=torch.ones(1, 1)), torch.round)
        >>> a(torch.full((1, 1, 1), 0.4))[0]
        tensor([[[0.]]], grad_fn=<RoundBackward0>)
    """

    def __init__(self, mod: TorchModule, trans_Fn: Any = None, *args: Any, **kwargs: Any):
        super().__init__(mod)
        self._trans_Fn = trans_Fn if trans_Fn is not None else _identity
        if isinstance(self._trans_Fn, nn.Module):
            nn.Module.__setattr__(self, "_T_modules", nn.ModuleDict({"act": self._trans_Fn}))

    def evolve(self, input_data: Any, record: bool = False) -> tuple:
        """Evolve ``_mod`` and transform its output; returns ``(output, state, record)``."""
        out, state, rec = self._mod.evolve(input_data, record=record)
        return self._trans_Fn(out), self._state_around(state), rec


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _raw_attr(mod: nn.Module, name: str) -> Any:
    """Read a registered parameter or buffer (never a derived property)."""
    if name in mod._parameters:
        return mod._parameters[name]
    if name in mod._buffers:
        return mod._buffers[name]
    raise AttributeError(f"{type(mod).__name__} has no parameter or buffer {name!r}.")


def walk_submodules(mod: ModuleBase) -> dict:
    """The snnqat sub-modules of ``mod`` (skips registered transform modules)."""
    return {k: m for k, m in mod._submodule_dict().items() if isinstance(m, ModuleBase)}
