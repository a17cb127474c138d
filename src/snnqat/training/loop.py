"""One epoch of training, evaluation, and the data order.

The loss is the cross-entropy of the summed output spike counts (used as logits). Neuron
states are reset before every batch. The data order of epoch ``e`` is the permutation that
``DistributedSampler(seed=seed)`` draws for epoch ``e``: it depends only on the seed and the
epoch, so a resumed run sees the same batches, and the processes of a distributed run split
exactly the global batches a one-process run would use.

Example:
    >>> order = epoch_batches(10, batch_size=4, epoch=0, seed=0, rank=0, world_size=1)
    >>> [len(b) for b in order]      # the last, partial batch is dropped
    [4, 4]
    >>> two = [epoch_batches(10, 4, 0, 0, r, 2) for r in (0, 1)]
    >>> [sorted(a + b) for a, b in zip(*two)] == [sorted(b) for b in order]
    True
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data.distributed import DistributedSampler

from snnqat.training.distributed import DistContext
from snnqat.training.model import accuracy

__all__ = [
    "EpochStats",
    "Evaluation",
    "epoch_batches",
    "train_epoch",
    "evaluate",
    "lr_at",
    "forward_output",
]

log = logging.getLogger(__name__)


@dataclass
class EpochStats:
    """Metrics of one training epoch (over all processes).

    Attributes:
        loss: Mean training loss.
        acc: Training accuracy (on the batches as seen, in training mode).
        step_losses: The global mean loss of every step.
        seconds: Wall time of the epoch.
    """

    loss: float
    acc: float
    step_losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Evaluation:
    """A network's outputs on a split.

    Attributes:
        outputs: ``(N, T, C)`` output spike counts.
        counts: ``(N, C)`` summed counts.
        loss: Mean cross-entropy.
        acc: Accuracy (ties are wrong).
    """

    outputs: torch.Tensor
    counts: torch.Tensor
    loss: float
    acc: float


class _Range:
    """``range(n)`` that ``DistributedSampler`` can size."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


def epoch_batches(
    n: int, batch_size: int, epoch: int, seed: int, rank: int, world_size: int
) -> list[list[int]]:
    """This process's sample indices for every step of an epoch.

    ``DistributedSampler`` gives process ``r`` the positions ``r, r + W, r + 2W, ...`` of
    one seeded permutation (``W = world_size``); cutting that into batches of ``B / W`` makes
    step ``k`` use positions ``[k*B, (k+1)*B)`` over all processes: exactly the one-process
    batch of the global batch size ``B``. The last, partial global batch is dropped.

    Raises:
        ValueError: ``batch_size`` is not a multiple of ``world_size``, or the split has
            fewer samples than one global batch.
    """
    if batch_size % world_size:
        raise ValueError(
            f"batch_size: expected a multiple of the number of processes ({world_size}), got "
            f"{batch_size}. Fix: choose a global batch size divisible by {world_size}."
        )
    if n < batch_size:
        raise ValueError(
            f"batch_size: expected at most the number of training samples ({n}), got "
            f"{batch_size}. Fix: lower the batch size or use more samples."
        )
    sampler = DistributedSampler(
        _Range(n), num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
    )
    sampler.set_epoch(epoch)
    mine = list(sampler)  # positions rank, rank + world_size, ... of the permutation
    local = batch_size // world_size
    return [mine[k * local : (k + 1) * local] for k in range(n // batch_size)]


def lr_at(base: float, epoch: int, epochs: int, schedule: str) -> float:
    """The learning rate of ``epoch`` (``"cosine"`` decays from ``base`` toward 0).

    Example:
        >>> [round(lr_at(1.0, e, 4, "cosine"), 3) for e in range(4)]
        [1.0, 0.854, 0.5, 0.146]
    """
    if schedule == "constant" or epochs <= 0:
        return base
    return base * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def forward_output(net: Any, x: torch.Tensor) -> torch.Tensor:
    """The output of ``net`` on ``x`` under either call convention."""
    out = net(x)
    return out[0] if isinstance(out, tuple) else out


def _progress(total: int, desc: str, ctx: DistContext) -> Any:
    from tqdm.auto import tqdm

    quiet = not (ctx.is_main and sys.stderr.isatty())
    return tqdm(total=total, desc=desc, disable=quiet, leave=False, dynamic_ncols=True)


def train_epoch(
    model: Any,
    net: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    batches: list[list[int]],
    optimizer: torch.optim.Optimizer,
    ctx: DistContext,
    desc: str = "",
) -> EpochStats:
    """Train one epoch.

    Args:
        model: What to call (the network, or its DDP wrapper), torch convention.
        net: The network itself (its states are reset before each batch).
        x: ``(N, T, Nin)`` training rasters on the device.
        y: ``(N,)`` labels on the device.
        batches: This process's index lists (see :func:`epoch_batches`).
        optimizer: The optimizer.
        ctx: The process's place in the run.
        desc: Progress bar label.

    Returns:
        The epoch's metrics, reduced over all processes.
    """
    start = time.perf_counter()
    totals = [0.0, 0.0, 0.0]  # loss sum, correct, samples
    step_losses = []
    bar = _progress(len(batches), desc, ctx)
    with bar:
        for idx in batches:
            index = torch.as_tensor(idx, device=x.device)
            xb, yb = x[index], y[index]
            net.reset_state()
            counts = forward_output(model, xb).sum(dim=1)
            loss = F.cross_entropy(counts, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            n = len(yb)
            local = [loss.item() * n, accuracy(counts.detach(), yb) * n, float(n)]
            step = ctx.sum(local)
            step_losses.append(step[0] / step[2])
            totals = [a + b for a, b in zip(totals, step)]
            bar.update(1)
            bar.set_postfix(loss=f"{totals[0] / totals[2]:.3f}", acc=f"{totals[1] / totals[2]:.3f}")
    samples = max(totals[2], 1.0)
    return EpochStats(
        totals[0] / samples, totals[1] / samples, step_losses, time.perf_counter() - start
    )


@torch.no_grad()
def evaluate(net: Any, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> Evaluation:
    """Outputs, loss and accuracy of ``net`` on a whole split (no gradients)."""
    outs = []
    for k in range(0, len(x), batch_size):
        net.reset_state()
        outs.append(forward_output(net, x[k : k + batch_size]).detach())
    net.reset_state()
    outputs = torch.cat(outs).cpu()
    counts = outputs.sum(dim=1)
    labels = y.cpu()
    loss = float(F.cross_entropy(counts, labels)) if len(labels) else float("nan")
    return Evaluation(outputs, counts, loss, accuracy(counts, labels))
