"""Where the peak memory of one training step lies: the tensors alive at the peak, and the
running total at each local maximum above a floor.

One training step of ``train_step.py``'s network (after a warm-up step) runs under the torch
profiler with ``profile_memory=True``; its chrome trace holds every CPU allocation and free
(address, bytes) in time order. The peak of the running total is the step's peak extra memory
(what ``train_step.py`` reports), and the allocations not freed by then are what is alive at
the peak, each attributed to the innermost snnqat (or benchmark) source lines and the torch
operation that made it.

Usage::

    python benchmarks/memory_peak.py --size M --variant plain
    python benchmarks/memory_peak.py --size S --variant param+act --impl snnqat --min-mb 0.1

Not a timed benchmark: the numbers are bytes.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_step as ts  # noqa: E402


def trace_step(size: str, impl: str, variant: str) -> tuple[list[dict], list[dict]]:
    """The memory events (time order) and the operator events of one training step."""
    from torch.profiler import ProfilerActivity, profile

    train, _ = ts.make_steps(impl, ts.SIZES[size], variant)
    train()
    gc.collect()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, with_stack=True) as prof:
        train()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(path))
        events = json.loads(path.read_text())["traceEvents"]
    memory = sorted((e for e in events if e.get("name") == "[memory]"), key=lambda e: e["ts"])
    memory = [e for e in memory if "Addr" in e.get("args", {})]
    ops = [e for e in events if e.get("ph") == "X"]
    return memory, ops


def owner(event: dict, ops: list[dict]) -> str:
    """The innermost snnqat / benchmark source lines and the operator around ``event``."""
    around = sorted(
        (
            o
            for o in ops
            if o["tid"] == event["tid"] and o["ts"] <= event["ts"] <= o["ts"] + o["dur"]
        ),
        key=lambda o: o["ts"],
    )
    names = [o["name"] for o in around]
    ours = [n for n in names if ".py(" in n and ("snnqat" in n or "benchmarks" in n)]
    where = " > ".join(n.split("/")[-1] for n in ours[-3:])
    return f"{where or '(autograd engine)'}: {names[-1] if names else '?'}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="M", choices=sorted(ts.SIZES))
    parser.add_argument("--impl", default="snnqat", choices=["snnqat", "rockpool", "snntorch"])
    parser.add_argument("--variant", default="plain", choices=[*ts.VARIANTS, *ts.ACT_PROBES])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--min-mb", type=float, default=0.5, help="list live tensors from this size on"
    )
    parser.add_argument(
        "--floor-mb",
        type=float,
        default=None,
        help="list the local maxima of the running total above this (default: half the peak)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    memory, ops = trace_step(args.size, args.impl, args.variant)
    totals, total = [], 0
    for e in memory:
        total += e["args"]["Bytes"]
        totals.append(total)
    if not totals:
        print("no allocation recorded")
        return
    peak_at = max(range(len(totals)), key=totals.__getitem__)
    mb = 2**20
    print(
        f"{args.impl} {args.variant} at size {args.size}: peak extra {totals[peak_at] / mb:.1f} MB"
    )
    print(f"at: {owner(memory[peak_at], ops)}\n")
    live: dict[int, dict] = {}
    for e in memory[: peak_at + 1]:
        if e["args"]["Bytes"] > 0:
            live[e["args"]["Addr"]] = e
        else:
            live.pop(e["args"]["Addr"], None)
    print("| MB alive at the peak | made by |\n|---|---|")
    rest = 0
    for e in sorted(live.values(), key=lambda e: -e["args"]["Bytes"]):
        if e["args"]["Bytes"] >= args.min_mb * mb:
            print(f"| {e['args']['Bytes'] / mb:.2f} | {owner(e, ops)} |")
        else:
            rest += e["args"]["Bytes"]
    print(f"| {rest / mb:.2f} | (smaller allocations) |\n")
    floor = totals[peak_at] / 2 if args.floor_mb is None else args.floor_mb * mb
    print("| running total MB at a local maximum | during |\n|---|---|")
    shown = None
    for i in range(1, len(totals) - 1):
        if totals[i] >= floor and totals[i] >= totals[i - 1] and totals[i] > totals[i + 1]:
            line = f"| {totals[i] / mb:.1f} | {owner(memory[i], ops)} |"
            if line != shown:  # (a maximum repeated by the same operation)
                print(line)
            shown = line


if __name__ == "__main__":
    main()
