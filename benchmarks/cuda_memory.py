"""GPU memory of a training step of the benchmark network, with and without CUDA graphs (of
the LIF loops and of the rounding quantizers: both on, or both off).

For each size: the memory that stays allocated after two training steps beyond the network,
its data and its gradients (what the captured graphs keep: their input and output buffers and
the shared pool), and the peak of one further step above that. Each configuration runs in a
fresh process, so nothing is shared between them.

Usage (on a machine with a GPU)::

    python benchmarks/cuda_memory.py --sizes M L
    python benchmarks/cuda_memory.py --sizes M L --variant param+act
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import torch


def _child(size: str, graphs: bool, variant: str) -> dict:
    import train_step as ts

    from snnqat.nn.modules import LIFTorch
    from snnqat.transform import set_quantizer_cuda_graphs

    LIFTorch.cuda_graphs = graphs
    set_quantizer_cuda_graphs(graphs)
    ts.DEVICE = torch.device("cuda")
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    train, _ = ts.make_steps("snnqat", ts.SIZES[size], variant)
    torch.cuda.synchronize()
    built = torch.cuda.memory_allocated()
    train()
    train()
    torch.cuda.synchronize()
    kept = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    train()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    mb = 2**20
    return {
        "network_and_data_mb": (built - before) / mb,
        "kept_after_steps_mb": (kept - built) / mb,
        "peak_extra_of_a_step_mb": (peak - kept) / mb,
        "reserved_mb": torch.cuda.memory_reserved() / mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["M", "L"])
    parser.add_argument("--variant", default="plain", help="a variant of train_step.py")
    parser.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        print(json.dumps(_child(args._child[0], args._child[1] == "on", args.variant)))
        return
    print(f"variant {args.variant}\n")
    print("| size | CUDA graphs | kept after 2 steps MB | peak extra of a step MB | total MB |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        for graphs in ("off", "on"):
            cmd = [sys.executable, __file__, "--_child", size, graphs, "--variant", args.variant]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            kept, peak = r["kept_after_steps_mb"], r["peak_extra_of_a_step_mb"]
            print(f"| {size} | {graphs} | {kept:.0f} | {peak:.0f} | {kept + peak:.0f} |")


if __name__ == "__main__":
    main()
