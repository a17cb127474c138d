"""Quick timing of the fused LIF kernel against the plain-autograd reference (not a test).

Forward + backward of one recurrent LIF layer, B=32, T=100, N=64, S=1, float32, on CPU::

    PYTHONPATH=src python benchmarks/_kernel_quick.py [--threads N] [--repeats R]

The two variants are timed round-robin and the medians reported. With 2 threads on a shared
2-core VM, OpenMP parallel regions of the large batched ops can stall for milliseconds when
the other core is busy, so the default is 1 thread.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "kernels"))

from lif_reference import lif_reference  # noqa: E402

from snnqat.kernels import LIFConfig, lif_scan  # noqa: E402


def make_inputs(b: int, t: int, n: int, s: int, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape: int, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * scale + shift

    return {
        "x": rand(b, t, n, s, scale=1.0, shift=0.3).requires_grad_(),
        "vmem0": torch.zeros(b, n),
        "isyn0": torch.zeros(b, n, s),
        "spikes0": torch.zeros(b, n),
        "alpha": torch.full((n,), 0.95).requires_grad_(),
        "beta": torch.full((n, s), 0.9).requires_grad_(),
        "bias": torch.zeros(n).requires_grad_(),
        "threshold": torch.ones(n).requires_grad_(),
        "w_rec": rand(n, n * s, scale=0.1).requires_grad_(),
        "noise": None,
    }


def fused(p: dict) -> torch.Tensor:
    return lif_scan(**p, config=LIFConfig()).spikes


def reference(p: dict) -> torch.Tensor:
    return lif_reference(**p)["spikes"]


def time_once(fn, p: dict, params: list) -> tuple[float, float]:
    """Forward and forward+backward wall time of one call, in ms."""
    t0 = time.perf_counter()
    out = fn(p)
    t1 = time.perf_counter()
    torch.autograd.grad((out * out).sum(), params)
    t2 = time.perf_counter()
    return 1e3 * (t1 - t0), 1e3 * (t2 - t0)


def time_round_robin(fns, p: dict, repeats: int) -> dict[str, tuple[float, float]]:
    """Median times per function, calling the functions in turn (fair on a noisy machine)."""
    params = [v for v in p.values() if v is not None and v.requires_grad]
    samples: dict[str, list[tuple[float, float]]] = {fn.__name__: [] for fn in fns}
    for _ in range(repeats):
        for fn in fns:
            samples[fn.__name__].append(time_once(fn, p, params))
    return {
        name: (statistics.median(s[0] for s in vals), statistics.median(s[1] for s in vals))
        for name, vals in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1: stable timings)"
    )
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    p = make_inputs(32, 100, 64, 1)
    time_round_robin((fused, reference), p, 3)  # warm-up
    results = time_round_robin((fused, reference), p, args.repeats)
    print(f"B=32 T=100 N=64 S=1 recurrent, float32, threads={torch.get_num_threads()}")
    for name, (fwd, total) in results.items():
        print(f"  {name:9s} forward {fwd:7.2f} ms   forward+backward {total:7.2f} ms")
    ratio = results["reference"][1] / results["fused"][1]
    print(f"  speed-up (forward+backward): {ratio:.2f}x")


if __name__ == "__main__":
    main()
