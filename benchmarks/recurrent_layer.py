"""Time the recurrent LIF layer of the benchmark network, compiled time loop against Python loop.

At the sizes where the recurrent product is one BLAS product per time step (M and L of
``train_step.py``), the numba backend runs each thread's whole time loop as one compiled call
that calls torch's own ``?gemm`` (``snnqat/kernels/_blas.py``). Where torch exports no such
routine, the products are ``torch.mm`` calls from a Python loop between the compiled steps. This
script replays the recurrent layer's real inputs (captured from one training step of the
benchmark network) through both, interleaved, checks that their outputs and gradients are
bitwise equal, and prints the medians and minima of the forward and backward passes::

    python benchmarks/recurrent_layer.py --size M --repeats 16 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_step  # noqa: E402

import snnqat.nn.modules.lif_torch as lif_torch  # noqa: E402
from snnqat.kernels import _numba_lif  # noqa: E402


def capture_recurrent_inputs(size: str) -> tuple[tuple, dict]:
    """The arguments of the recurrent layer's ``lif_scan`` call in one training step."""
    train, _ = train_step.make_steps("snnqat", train_step.SIZES[size], "plain")
    train()
    calls = []
    original = lif_torch.lif_scan

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append((args, kwargs))
        return original(*args, **kwargs)

    lif_torch.lif_scan = spy
    try:
        train()
    finally:
        lif_torch.lif_scan = original
    for args, kwargs in calls:
        if args[8] is not None:  # w_rec
            detached = tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args)
            return detached, kwargs
    raise RuntimeError("the benchmark network has no recurrent layer")


def run(args: tuple, compiled: bool, grad_out: torch.Tensor) -> tuple[float, float, list]:
    """Forward and backward once; returns their times (ms) and the results."""
    routine = _numba_lif._gemm_routine
    if not compiled:
        _numba_lif._gemm_routine = lambda dt: None
    try:
        x, vmem0, isyn0, spikes0, alpha, beta, bias, thr, w_rec, noise = args[:10]
        t0 = time.perf_counter()
        out = _numba_lif.forward(
            x, vmem0, isyn0, spikes0, alpha, beta, bias, thr, w_rec, noise, 31.0, False
        )
        t1 = time.perf_counter()
        spikes, ckpt, a = out[0], out[7], out[8]
        saved = (ckpt, spikes, a, vmem0, spikes0, alpha, beta, thr, w_rec, None, None, bias)
        need = (True, False, False, False, True, True, True, True, True, False, False, False)
        grads_in = (grad_out, None, None, None)
        grads = _numba_lif.backward(saved, grads_in, need, "step_pwl", 0.5, 31.0)
        t2 = time.perf_counter()
    finally:
        _numba_lif._gemm_routine = routine
    results = [t for t in (*out, *grads) if t is not None]
    return (t1 - t0) * 1e3, (t2 - t1) * 1e3, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("tiny", "M", "L"), default="M")  # tiny: CI smoke
    parser.add_argument("--repeats", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    opts = parser.parse_args()
    torch.set_num_threads(opts.threads)
    if _numba_lif._gemm_routine(torch.float32) is None:
        sys.exit("this torch build exports no ?gemm: only the Python loop runs here")
    args, _ = capture_recurrent_inputs(opts.size)
    grad_out = torch.randn(args[0].shape[:3], generator=torch.Generator().manual_seed(0))
    first = {c: run(args, c, grad_out)[2] for c in (True, False)}
    equal = all(torch.equal(a, b) for a, b in zip(first[True], first[False]))
    times = {c: ([], []) for c in (True, False)}
    for r in range(opts.repeats):  # interleaved, alternating the order
        for c in (True, False) if r % 2 else (False, True):
            f, b, _ = run(args, c, grad_out)
            times[c][0].append(f)
            times[c][1].append(b)
    print(f"recurrent layer at {opts.size}, input {tuple(args[0].shape)}, {opts.threads} threads")
    print(f"outputs and gradients bitwise equal: {equal}")
    columns = ("forward median ms", "forward min ms", "backward median ms", "backward min ms")
    print("| time loop | " + " | ".join(columns) + " |")
    print("|---|---|---|---|---|")
    for c, label in ((False, "Python (torch.mm per step)"), (True, "compiled (?gemm inside)")):
        f, b = times[c]
        print(
            f"| {label} | {statistics.median(f):.1f} | {min(f):.1f} | "
            f"{statistics.median(b):.1f} | {min(b):.1f} |"
        )


if __name__ == "__main__":
    main()
