"""Replaying the pure-torch LIF loops (and the rounding quantizers) as CUDA graphs.

On a GPU the time loops of :mod:`snnqat.kernels.lif` are bound by kernel launches: about 11
small kernels per step forward and 6 backward, each costing more to launch than to run. A
CUDA graph records the kernels of one call once and replays them with one launch. The rounding
quantizers use the same cache (:mod:`snnqat.transform._graphed_rounding`).

:func:`run_graphed` keeps, per *structure* of a call (shapes, dtypes, which inputs are
``None``, the static configuration), a captured graph with its own input buffers: the second
call of a structure captures it, later calls copy their inputs into those buffers and replay
the graph. Its outputs are the graph's own buffers, which the next replay (of any graph) may
overwrite, so the caller copies out what it keeps at once. The loops take no data-dependent
branch and make no host-device synchronisation, which is what replaying them requires.

Memory: every structure keeps its input and output buffers until :func:`release_cuda_graphs`,
up to :data:`MAX_GRAPHS` structures (the least recently used are dropped). The graphs'
intermediate tensors live in one memory pool per device, shared by all graphs: a replay may
overwrite what another graph left there, which is safe because every call copies out what it
keeps before the next replay.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import torch
from torch import Tensor

from snnqat.kernels._autocast import autocast_on

__all__ = ["MAX_GRAPHS", "clear", "graphs_supported", "release_cuda_graphs", "run_graphed"]

MAX_GRAPHS = 64
"""Captured structures kept at most (least recently used dropped first). A training step
replays two per LIF layer and two per quantizer call (forward and backward): 22 for the
benchmark's ``param+act`` network; a cache smaller than a step's graphs would capture again on
every call."""

_CACHE: OrderedDict[Hashable, _Replay] = OrderedDict()
_SEEN: OrderedDict[Hashable, None] = OrderedDict()
_FAILED: set[Hashable] = set()
_POOLS: dict[torch.device, Any] = {}


def graphs_supported(x: Tensor) -> bool:
    """Whether a call on ``x`` can be captured: a CUDA tensor, outside ``torch.compile``,
    autocast (a replay would repeat the captured call's autocast choices) and another
    capture."""
    device = x.device.type
    if device not in _DEVICES or torch.compiler.is_compiling():
        return False
    if autocast_on(device):
        return False
    return not (x.is_cuda and torch.cuda.is_current_stream_capturing())


def clear() -> None:
    """Drop every captured graph and its buffers."""
    _CACHE.clear()
    _SEEN.clear()
    _FAILED.clear()
    _POOLS.clear()


def release_cuda_graphs() -> int:
    """Drop the CUDA graphs of the LIF loops and of the rounding quantizers, and the GPU memory
    they keep.

    Each captured call structure keeps its input and output buffers (see this module's
    docstring); after training, or before a phase that needs the memory, this frees them
    (the caching allocator then holds the memory for reuse; ``torch.cuda.empty_cache()``
    returns it to the driver). Later calls capture again when a structure comes twice.

    Returns:
        How many captured graphs were dropped.

    Example:
        >>> from snnqat.kernels import release_cuda_graphs
        >>> release_cuda_graphs()  # nothing captured on a CPU
        0
    """
    count = len(_CACHE)
    clear()
    return count


class _Replay:
    """One captured structure: static inputs, the graph and its static outputs."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Tensor | None, ...]) -> None:
        self.fn = fn
        self.static = tuple(None if a is None else a.detach().clone() for a in args)
        self.outputs = self._capture()

    def _capture(self) -> Any:
        self.device = device = next(a.device for a in self.static if a is not None)
        with torch.cuda.device(device):  # (the tensors' GPU, whichever is current)
            stream = torch.cuda.Stream(device)
            stream.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(stream):  # warm-up outside the capture (library handles)
                self.fn(*self.static)
            torch.cuda.current_stream(device).wait_stream(stream)
            self.graph = torch.cuda.CUDAGraph()
            pool = _POOLS.setdefault(device, torch.cuda.graph_pool_handle())
            with torch.cuda.graph(self.graph, pool=pool, capture_error_mode="thread_local"):
                return self.fn(*self.static)

    def _replay(self) -> None:
        with torch.cuda.device(self.device):
            self.graph.replay()

    def __call__(self, args: tuple[Tensor | None, ...]) -> Any:
        for static, arg in zip(self.static, args):
            if static is not None:
                static.copy_(arg)
        self._replay()
        return self.outputs


class _EagerReplay(_Replay):
    """What a replay does, without a GPU (for the tests): ``fn`` runs again on the static
    inputs and its results are copied into the outputs of the first run."""

    def _capture(self) -> Any:
        return self.fn(*self.static)

    def _replay(self) -> None:
        fresh = self.fn(*self.static)
        flat_out, flat_fresh = _flatten(self.outputs), _flatten(fresh)
        for out, new in zip(flat_out, flat_fresh, strict=True):
            out.copy_(new)


def _flatten(tree: Any) -> list[Tensor]:
    if isinstance(tree, Tensor):
        return [tree]
    if isinstance(tree, (tuple, list)):
        return [t for item in tree for t in _flatten(item)]
    return []


_DEVICES = ("cuda",)
_REPLAY = _Replay


def run_graphed(
    key: Hashable,
    fn: Callable[..., Any],
    args: tuple[Tensor | None, ...],
    name: str = "the LIF loops",
    switch: str = "LIFConfig(cuda_graphs=False)",
) -> tuple[Any, bool]:
    """``fn(*args)``, through the captured graph of ``key`` from the key's second call on.

    Args:
        key: Everything that decides which kernels ``fn`` launches: shapes, dtypes, devices,
            the ``None`` pattern of ``args`` and the static configuration. A key is captured
            the second time it comes (the first call runs eagerly), so that a shape seen once
            (the last, shorter batch of an epoch, say) costs no capture and no buffers.
        fn: Runs the computation on its tensor arguments and returns its output tensors; it
            must allocate nothing outside them and take no data-dependent branch.
        args: The tensor arguments (``None`` passes through).
        name: What ``fn`` computes, for the warning of a failed capture.
        switch: How a user switches the capture off, for that warning.

    Returns:
        ``(outputs, graphed)``: with ``graphed`` true the outputs are the graph's buffers
        (valid until the next replay of any graph: copy out what you keep); else ``fn`` ran
        eagerly (first sighting of the key, or its capture failed: then it runs eagerly from
        now on) and the outputs are its own.
    """
    if key in _FAILED:
        return fn(*args), False
    replay = _CACHE.get(key)
    if replay is None and key not in _SEEN:  # a structure is captured when it comes again
        _SEEN[key] = None
        while len(_SEEN) > 4 * MAX_GRAPHS:
            _SEEN.popitem(last=False)
        return fn(*args), False
    if replay is None:
        try:
            replay = _REPLAY(fn, args)
        except RuntimeError as err:
            _FAILED.add(key)
            warnings.warn(
                f"snnqat: capturing {name} as a CUDA graph failed ({err}); it runs eagerly "
                f"for this shape from now on ({switch} skips the capture).",
                RuntimeWarning,
                stacklevel=3,
            )
            return fn(*args), False
        _CACHE[key] = replay
        while len(_CACHE) > MAX_GRAPHS:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    return replay(args), True
