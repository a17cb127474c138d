"""Single- or multi-process training: process group, DDP wrapping, reductions.

A run is distributed when it is started by ``torchrun`` (or anything that sets ``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``) with ``WORLD_SIZE > 1``. The backend
is ``nccl`` on CUDA and ``gloo`` on CPU. Each process trains on its share of every global
batch (``DistributedSampler``); DDP averages the gradients, so a step equals the
single-process step on the whole global batch.

Example:
    >>> ctx = DistContext.from_env(device="cpu", env={})
    >>> ctx.world_size, ctx.rank, ctx.is_main, ctx.distributed
    (1, 0, True, False)
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from snnqat.nn.modules import TorchModule

__all__ = ["DistContext", "torch_api", "wrap_ddp"]


@dataclass
class DistContext:
    """Where this process stands in a (possibly one-process) run.

    Attributes:
        rank: This process's rank.
        world_size: Number of processes.
        local_rank: Rank on this machine (selects the GPU).
        device: The torch device this process computes on.
        owns_group: Whether :meth:`setup` created the process group (and so destroys it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files."""
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str = "auto", env: Mapping[str, str] | None = None) -> DistContext:
        """Read ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` and pick the device (no group yet).

        Raises:
            ValueError: ``device="cuda"`` without CUDA, or malformed environment values.
        """
        env = os.environ if env is None else env
        try:
            world = int(env.get("WORLD_SIZE", "1"))
            rank = int(env.get("RANK", "0"))
            local = int(env.get("LOCAL_RANK", str(rank)))
        except ValueError as err:
            raise ValueError(f"distributed environment: expected integers: {err}") from None
        if not 0 <= rank < max(world, 1):
            raise ValueError(f"distributed environment: RANK={rank} with WORLD_SIZE={world}.")
        cuda = torch.cuda.is_available()
        if device == "cuda" and not cuda:
            raise ValueError("device: 'cuda' was asked for but CUDA is not available; use 'cpu'.")
        use_cuda = device == "cuda" or (device == "auto" and cuda)
        dev = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
        return cls(rank=rank, world_size=max(world, 1), local_rank=local, device=dev)

    def setup(self) -> DistContext:
        """Join the process group (if distributed and not joined yet); returns self."""
        if self.distributed and not dist.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            if self.device.type == "cuda":  # pragma: no cover - no GPU in CI
                torch.cuda.set_device(self.device)
            dist.init_process_group(backend, rank=self.rank, world_size=self.world_size)
            self.owns_group = True
        return self

    def close(self) -> None:
        """Leave the process group if :meth:`setup` created it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False

    def barrier(self) -> None:
        """Wait for all processes (no-op in a one-process run)."""
        if self.distributed:
            dist.barrier()

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over all processes (float64)."""
        if not self.distributed:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.cpu().tolist()

    @property
    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")


def _api_flags(net: nn.Module) -> list[tuple[TorchModule, bool, bool]]:
    return [
        (m, m.__dict__["_has_torch_api"], m.__dict__["_torch_call"])
        for m in nn.Module.modules(net)
        if isinstance(m, TorchModule)
    ]


@contextlib.contextmanager
def torch_api(net: TorchModule) -> Iterator[TorchModule]:
    """Switch ``net`` to the plain torch convention (``net.to_torch()``) for a block.

    Inside, ``net(x)`` returns the output only and ``net.parameters()`` is torch's
    generator, as DDP expects; afterwards every module gets its previous convention back.

    Example:
        >>> from snnqat.nn.modules import LinearTorch
        >>> lin = LinearTorch((2, 3))
        >>> with torch_api(lin):
        ...     lin(torch.ones(1, 1, 2)).shape
        torch.Size([1, 1, 3])
        >>> len(lin(torch.ones(1, 1, 2)))   # (output, state, record) again
        3
    """
    saved = _api_flags(net)
    net.to_torch()
    try:
        yield net
    finally:
        for mod, has_api, call in saved:
            mod.__dict__["_has_torch_api"] = has_api
            mod.__dict__["_torch_call"] = call


def wrap_ddp(net: nn.Module, ctx: DistContext) -> nn.Module:
    """Wrap a torch-convention network in ``DistributedDataParallel`` (if distributed).

    Neuron states are buffers that every forward re-creates from zero (the loop calls
    ``reset_state`` per batch), so they are not synchronised in the forward pass
    (``forward_sync_buffers=False``, ``broadcast_buffers=False`` before torch 2.13).
    """
    if not ctx.distributed:
        return net
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.local_rank] if ctx.device.type == "cuda" else None
    # torch >= 2.13 renamed the switch (the old name warns); both keep the sync at init,
    # which is harmless: the states are all zero then.
    params = inspect.signature(DistributedDataParallel.__init__).parameters
    no_sync = (
        {"forward_sync_buffers": False}
        if "forward_sync_buffers" in params
        else {"broadcast_buffers": False}
    )
    return DistributedDataParallel(net, device_ids=ids, **no_sync)
