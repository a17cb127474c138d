"""The final states of the stateful layers, differentiable, for :mod:`snnqat.nn.checkpoint`.

A layer's new state goes into its buffers detached (a state never carries one training step's
graph into the next). While :func:`capturing` is active, each stateful layer also puts its
final states *with* their autograd history into the active dict, keyed by the layer, in the
order and shapes of its state buffers (:data:`STATE_NAMES`), so that a caller that runs a
sequence in segments can send gradients from one segment into the one before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

_ACTIVE: ContextVar[dict | None] = ContextVar("snnqat_capture_final_states", default=None)


def active() -> dict | None:
    """The dict the stateful layers put their final states into, or ``None`` (not capturing)."""
    return _ACTIVE.get()


def put(found: dict, layer: torch.nn.Module, states: tuple[torch.Tensor, ...]) -> None:
    """Put ``layer``'s final states into ``found`` (from :func:`active`).

    Raises:
        RuntimeError: ``layer`` already ran in this block: a layer used twice in one network
            has two sets of final states, which a segment cannot pass on.
    """
    if layer in found:
        raise RuntimeError(
            f"checkpoint_in_time: the stateful layer {type(layer).__name__} ran twice in one "
            "call of the network; each stateful layer must run once per time step (use two "
            "layers, or call the network without checkpoint_in_time)."
        )
    found[layer] = states


@contextmanager
def capturing() -> Iterator[dict[torch.nn.Module, tuple[torch.Tensor, ...]]]:
    """Collect ``{layer: final states}`` from the stateful layers run inside the block."""
    found: dict[torch.nn.Module, tuple[torch.Tensor, ...]] = {}
    token = _ACTIVE.set(found)
    try:
        yield found
    finally:
        _ACTIVE.reset(token)
