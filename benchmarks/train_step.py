"""Benchmark one training step and one inference pass of the seed's network shape.

Network: Linear(Nin, H) -> LIF(H) -> Residual(Linear(H, H), LIF(H, recurrent)) -> Linear(H, Nout)
-> LIF(Nout). Sizes: S = 16/64/8, B=32, T=100; M = 64/256/16, B=64, T=200; L = 128/512/32,
B=128, T=500. A training step is zero_grad, forward, loss, backward, optimizer step.

Variants of snnqat: ``plain``; ``param`` (stochastic rounding on the weights); ``param+act``
(plus deterministic rounding of the Linear outputs onto 256 levels of their own range);
``bitshift`` (bit-shift leaks). Two probes, run only when named in ``--variants``, bound what
any activity transform can cost: ``param+act-identity`` (the ``param`` network with an
``ActWrapper`` of the identity on each Linear) and ``param+act-scale`` (with ``a * 1.0``, the
cheapest differentiable element-wise transform: one pass forward, one backward). ``lean``,
also only when named: the ``plain`` network trained through
:func:`snnqat.nn.checkpoint_in_time` in :data:`LEAN_SEGMENTS` time segments (exact BPTT,
only the states at the segment starts kept: less memory for a second forward pass).
``--peers`` adds, interleaved in the same run, the reference (PyPI ``rockpool``), snnTorch
(Linear + ``Synaptic``) and the GEMM floor (the network's matrix products alone: forward,
grad-input, grad-weight; the recurrent ones one time step at a time). Each repeat times the
entries in a new order (a seeded shuffle, the same orders in every run), so that no entry always
follows the same one.

The table reports, per size, the training-step time of each entry relative to the plain
snnqat step (``x plain``), the speed-up of snnqat over the reference and snnTorch
(``rockpool / this``, ``snnTorch / this``), the distance to the GEMM floor
(``this / floor``) and the peak extra memory relative to the reference (``mem / rockpool``),
all from the medians; ``x plain (min)`` and ``this / floor (min)`` are the same two ratios from
each entry's fastest step (on a shared machine the slow steps are those that other work
interrupted, and the medians scatter more between runs). ``x plain (paired)`` and
``this / floor (paired)`` are the medians of the ratios formed within each repeat (the entry's
step over the plain step, or over the floor, of the same repeat: a slow phase of the machine,
which lasts longer than a repeat, slows both alike), with a distribution-free 95% confidence
interval of that median in brackets (:func:`median_ci`; ``n/a`` below 6 repeats).

Usage::

    python benchmarks/train_step.py --sizes S M --peers          # full table
    python benchmarks/train_step.py --sizes S M L --peers --csv out.csv
    python benchmarks/train_step.py --smoke                      # seconds; what CI runs
    python benchmarks/train_step.py --sizes M --peers --default-allocator  # glibc's default

Memory: the run starts with ``snnqat.utilities.reuse_freed_memory()`` (glibc keeps freed memory
for reuse instead of returning it to the OS after every step), which snnqat's LIF layers apply at
their first training call anyway; applied first, it holds for every entry alike.
``--default-allocator`` keeps glibc's default for all of them (``SNNQAT_REUSE_FREED_MEMORY=0``).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import gc
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch

SIZES = {
    "S": dict(nin=16, hidden=64, nout=8, batch=32, steps=100),
    "M": dict(nin=64, hidden=256, nout=16, batch=64, steps=200),
    "L": dict(nin=128, hidden=512, nout=32, batch=128, steps=500),
    "tiny": dict(nin=4, hidden=8, nout=2, batch=2, steps=5),
}


# Spike cap of every LIF layer (Xylo's hidden cap). With the uncapped default (2**16) the
# recurrent layer of the seed network fires at the cap and the first SGD step makes the
# parameters NaN at sizes M and L (in rockpool's network as well), which would time NaN data.
MAX_SPIKES = 31.0
RECURRENT_SCALE = 0.05

DEVICE = torch.device("cpu")
"""Where the networks and data live (``--device``); peak memory on CUDA is read from
``torch.cuda.max_memory_allocated`` in the same process."""


# --------------------------------------------------------------------------- networks
def snnqat_net(size: dict, variant: str):
    import snnqat.transform.torch_transform as tt
    from snnqat.nn.combinators import Residual, Sequential
    from snnqat.nn.modules import LIFTorch, LinearTorch

    kw = dict(leak_mode="bitshifts") if variant == "bitshift" else {}
    kw["max_spikes_per_dt"] = MAX_SPIKES
    h = size["hidden"]
    net = Sequential(
        LinearTorch((size["nin"], h)),
        LIFTorch(h, **kw),
        Residual(LinearTorch((h, h)), LIFTorch(h, has_rec=True, **kw)),
        LinearTorch((h, size["nout"])),
        LIFTorch(size["nout"], **kw),
    )
    _tame(net[2][1].w_rec)
    if variant.startswith("param"):
        cfg = tt.make_param_T_config(
            net, lambda p: tt.stochastic_rounding(p, num_levels=2**8), "weights"
        )
        net = tt.make_param_T_network(net, cfg)
    if variant == "param+act":
        # 256 levels spanning each Linear output's own range: the values keep their scale, so
        # the network fires as the plain one does and the ratio to it is the transforms' cost.
        # (With ``output_range=[-128, 127]`` the currents are scaled up to integer levels:
        # another network, firing 2.4x as much in the first LIF layer at size S.)
        acfg = tt.make_act_T_config(
            net, lambda a: tt.deterministic_rounding(a, num_levels=256), LinearTorch
        )
        net = tt.make_act_T_network(net, acfg)
    elif variant in ACT_PROBES:
        acfg = tt.make_act_T_config(net, ACT_PROBES[variant], LinearTorch)
        net = tt.make_act_T_network(net, acfg)
    return net


def _identity(a: torch.Tensor) -> torch.Tensor:
    return a


def _scale(a: torch.Tensor) -> torch.Tensor:
    return a * 1.0


VARIANTS = ("plain", "param", "param+act", "bitshift")
"""The snnqat variants of the table."""

ACT_PROBES = {"param+act-identity": _identity, "param+act-scale": _scale}
LEAN_SEGMENTS = 4
"""Time segments of the ``lean`` variant (:func:`snnqat.nn.checkpoint_in_time`)."""
EXTRA_VARIANTS = (*ACT_PROBES, "lean")
"""Variants that run only when named in ``--variants`` (also ``lean-K``: ``K`` segments)."""


def _lean_segments(variant: str) -> int | None:
    """The segments of a ``lean`` / ``lean-K`` variant, or ``None`` for the others."""
    if variant == "lean":
        return LEAN_SEGMENTS
    if variant.startswith("lean-") and variant[5:].isdigit() and int(variant[5:]) > 0:
        return int(variant[5:])
    return None


def _variant(name: str) -> str:
    """``--variants`` entries: a known variant or ``lean-K`` (argparse type)."""
    if name in (*VARIANTS, *EXTRA_VARIANTS) or _lean_segments(name) is not None:
        return name
    raise argparse.ArgumentTypeError(
        f"unknown variant {name!r}: choose from {[*VARIANTS, *EXTRA_VARIANTS]} or lean-K "
        "(K segments, e.g. lean-8)"
    )


"""The probe variants: the ``param`` network with a trivial activity transform on each Linear
(what the wrappers cost; what the cheapest element-wise transform costs)."""


def _tame(w_rec: torch.Tensor) -> None:
    """Scale the recurrent weights down: at their default scale the adjoint of the
    multi-spike recurrent layer grows over the time steps and the first backward pass
    already overflows to NaN (in rockpool's network as well)."""
    with torch.no_grad():
        w_rec.mul_(RECURRENT_SCALE)


def rockpool_net(size: dict):
    from rockpool.nn.combinators import Residual, Sequential
    from rockpool.nn.modules import LIFTorch, LinearTorch

    h = size["hidden"]
    net = Sequential(
        LinearTorch((size["nin"], h)),
        LIFTorch(h, max_spikes_per_dt=MAX_SPIKES),
        Residual(LinearTorch((h, h)), LIFTorch(h, has_rec=True, max_spikes_per_dt=MAX_SPIKES)),
        LinearTorch((h, size["nout"])),
        LIFTorch(size["nout"], max_spikes_per_dt=MAX_SPIKES),
    )
    _tame(net[2][1].w_rec)
    return net


class SnnTorchNet(torch.nn.Module):
    """The same shape in snnTorch: Linear + Synaptic layers, a Python loop over time."""

    def __init__(self, size: dict) -> None:
        import snntorch as snn

        super().__init__()
        h = size["hidden"]
        self.l0 = torch.nn.Linear(size["nin"], h, bias=False)
        self.n0 = snn.Synaptic(alpha=0.95, beta=0.95)
        self.l1 = torch.nn.Linear(h, h, bias=False)
        self.n1 = snn.RSynaptic(alpha=0.95, beta=0.95, linear_features=h)
        self.l2 = torch.nn.Linear(h, size["nout"], bias=False)
        self.n2 = snn.Synaptic(alpha=0.95, beta=0.95)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0, m0 = self.n0.init_synaptic()
        spk1, s1, m1 = self.n1.init_rsynaptic()
        s2, m2 = self.n2.init_synaptic()
        out = []
        for xt in x.unbind(1):
            a, s0, m0 = self.n0(self.l0(xt), s0, m0)
            spk1, s1, m1 = self.n1(self.l1(a), spk1, s1, m1)
            b, s2, m2 = self.n2(self.l2(a + spk1), s2, m2)
            out.append(b)
        return torch.stack(out, 1)


# --------------------------------------------------------------------------- steps
def make_steps(impl: str, size: dict, variant: str = "plain") -> tuple[Callable, Callable]:
    """Return ``(train_step, inference)`` closures for one implementation."""
    torch.manual_seed(0)
    x = (torch.rand(size["batch"], size["steps"], size["nin"]) < 0.3).float() * 2
    target = torch.rand(size["batch"], size["steps"], size["nout"])
    x, target = x.to(DEVICE), target.to(DEVICE)
    if impl == "snnqat":
        # The torch API (what a PyTorch training loop uses): ``net(x)`` returns the output
        # only, so the per-layer '<name>_output' records are not built (less peak memory).
        from snnqat.nn import checkpoint_in_time

        net = snnqat_net(size, variant).to_torch().to(DEVICE)
        params = list(net.parameters())
        segments = _lean_segments(variant)
        segment = None if segments is None else -(-size["steps"] // segments)

        def forward():
            net.reset_state()
            if segment is not None:
                return checkpoint_in_time(net, x, segment)
            return net(x)
    elif impl == "rockpool":
        net = rockpool_net(size).to(DEVICE)
        params = list(net.parameters().astorch())

        def forward():
            net.reset_state()
            return net(x)[0]
    elif impl == "snntorch":
        net = SnnTorchNet(size).to(DEVICE)
        params = list(net.parameters())

        def forward():
            return net(x)
    elif impl == "gemm":
        return gemm_floor(size, x)
    else:
        raise ValueError(f"unknown implementation {impl!r}")
    opt = torch.optim.SGD(params, lr=1e-4)

    def train_step():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(forward(), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)  # keeps every network in a finite regime
        opt.step()

    def inference():
        with torch.no_grad():
            forward()

    return train_step, inference


def gemm_floor(size: dict, x: torch.Tensor) -> tuple[Callable, Callable]:
    """The matrix products of the network alone (what no implementation can avoid)."""
    b, t, h = size["batch"], size["steps"], size["hidden"]
    shapes = [(size["nin"], h), (h, h), (h, size["nout"])]
    dev = {"device": x.device}
    ws = [torch.randn(i, o, **dev) * 0.1 for i, o in shapes]
    w_rec = torch.randn(h, h, **dev) * 0.1
    acts = [x.reshape(b * t, -1)] + [torch.rand(b * t, i, **dev) for i, _ in shapes[1:]]
    grads = [torch.rand(b * t, o, **dev) for _, o in shapes]
    s_steps = torch.rand(t, b, h, **dev)

    def forward():
        for a, w in zip(acts, ws):
            a @ w
        for st in s_steps.unbind(0):
            st @ w_rec

    def train_step():
        forward()
        for a, w, g in zip(acts, ws, grads):
            g @ w.T
            a.T @ g
        for st in s_steps.unbind(0):
            st @ w_rec.T
        s_steps.reshape(b * t, h).T @ s_steps.reshape(b * t, h)

    return train_step, forward


# --------------------------------------------------------------------------- measurement
def peak_extra_mb(fn: Callable) -> float:
    """Peak of the live tensor memory (MB) that ``fn`` adds, from the allocator's own records.

    Every CPU tensor allocation and free during ``fn`` is recorded by the torch profiler
    (``profile_memory=True``); the peak of the running total minus its value at the start is
    what one step needs, independent of what the C allocator keeps cached or returns to the
    OS (an RSS reading depends on glibc's heap and mmap thresholds: it under-counts the
    reference's many small per-step tensors). Not included: the scratch arrays that the numba
    kernels allocate themselves (under 2 MB at size M).
    """
    from torch.profiler import ProfilerActivity, profile

    gc.collect()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = prof.profiler.kineto_results.events()
    mem = sorted(
        (e.start_ns(), e.nbytes())
        for e in events
        if e.name() == "[memory]" and str(e.device_type()).endswith("CPU")
    )
    total = peak = 0
    for _, nbytes in mem:  # allocations (+) and frees (-) in time order
        total += nbytes
        peak = max(peak, total)
    return peak / 2**20


def measure_memory(size: str, impl: str, variant: str) -> float:
    """Peak extra MB of one training step (after a warm-up step), in a fresh process (on
    CUDA: in this process, from the CUDA allocator's peak statistics)."""
    if DEVICE.type == "cuda":
        train, _ = make_steps(impl, SIZES[size], variant)
        train()
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        train()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    cmd = [sys.executable, __file__, "--_memory", size, impl, variant]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    try:
        return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"])
    except (ValueError, IndexError, KeyError):
        return float("nan")


def _memory_child(size: str, impl: str, variant: str) -> None:
    torch.set_num_threads(2)
    train, _ = make_steps(impl, SIZES[size], variant)
    train()
    print(json.dumps({"peak_mb": peak_extra_mb(train)}))


def time_ms(fn: Callable) -> float:
    cuda = DEVICE.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1e3


def run(
    sizes: list[str], peers: bool, repeats: int, variants: list[str], memory: bool = True
) -> list[dict]:
    """Time every entry of every size (interleaved, in a shuffled order per repeat) and
    measure its peak memory; progress on stderr (:class:`Progress`)."""
    rows = []
    for size_name in sizes:
        size = SIZES[size_name]
        entries = [("snnqat", v) for v in variants]
        if peers:
            entries += [("rockpool", "plain"), ("snntorch", "plain"), ("gemm", "floor")]
        entries = [e for e in entries if _available(e[0])]
        closures = {e: make_steps(e[0], size, e[1]) for e in entries}
        for train, infer in closures.values():  # warm-up (JIT compilation, allocator)
            train()
            infer()
        n_rep = {e: _repeats(e[0], size_name, repeats) for e in entries}
        times = {e: ([], []) for e in entries}
        order = list(closures)
        shuffle = random.Random(0).shuffle  # seeded: the same orders in every run
        steps = sum(n_rep.values()) + (len(closures) if memory else 0)
        progress = Progress(f"size {size_name}", steps)
        for r in range(max(n_rep.values())):  # interleaved, in a new order every repeat
            shuffle(order)  # (no entry always follows the same one: its caches, its threads)
            for e in order:
                if r < n_rep[e]:
                    train, infer = closures[e]
                    times[e][0].append(time_ms(train))
                    times[e][1].append(time_ms(infer))
                    progress.step(f"repeat {r + 1}: {e[0]} {e[1]}")
        for e in closures:
            if memory:
                progress.step(f"peak memory: {e[0]} {e[1]} (a fresh process)", before=True)
            rows.append(
                dict(
                    size=size_name,
                    impl=e[0],
                    variant=e[1],
                    train_med=statistics.median(times[e][0]),
                    train_min=min(times[e][0]),
                    train_times=times[e][0],  # per repeat, for the paired ratios
                    infer_med=statistics.median(times[e][1]),
                    infer_min=min(times[e][1]),
                    peak_mb=measure_memory(size_name, e[0], e[1]) if memory else math.nan,
                )
            )
        progress.close()
        del closures
        gc.collect()
    return rows


class Progress:
    """Progress of a size's timed repeats and memory measurements, on stderr: a ``tqdm`` bar
    where stderr is a terminal and ``tqdm`` is installed, else a line every 10% (and one per
    step that starts a long measurement), so that a log shows how far a long run got.

    Example:
        >>> import contextlib, io
        >>> err = io.StringIO()
        >>> with contextlib.redirect_stderr(err):
        ...     p = Progress("size S", 2)
        ...     p.step("repeat 1: snnqat plain")
        ...     p.step("peak memory: snnqat plain", before=True)
        ...     p.close()
        >>> print(err.getvalue().strip())
        size S: 1/2 repeat 1: snnqat plain
        size S: 2/2 peak memory: snnqat plain
    """

    def __init__(self, desc: str, total: int) -> None:
        self.desc, self.total, self.done, self._bar = desc, max(total, 1), 0, None
        self._next_line = 0.0
        if sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self._bar = tqdm(total=self.total, desc=desc, leave=False, file=sys.stderr)

    def step(self, what: str, before: bool = False) -> None:
        """Count one step (``what`` it was); ``before``: the step is about to start (shown now)."""
        self.done += 1
        if self._bar is not None:
            self._bar.set_postfix_str(what, refresh=False)
            self._bar.update(1)
        elif before or self.done >= self._next_line or self.done == self.total:
            self._next_line = self.done + 0.1 * self.total
            print(f"{self.desc}: {self.done}/{self.total} {what}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _available(impl: str) -> bool:
    if impl in ("snnqat", "gemm"):
        return True
    try:
        __import__(impl)
    except ImportError:
        return False
    return True


def _repeats(impl: str, size: str, repeats: int) -> int:
    """Timed repeats of an entry: fewer for the slow peers at M and L (rockpool's step takes
    30-90 s at L), but at least 3 for snnTorch (about 3 s at L), whose median sets a target.

    Example:
        >>> [_repeats(impl, "L", 5) for impl in ("snnqat", "rockpool", "snntorch")]
        [5, 1, 3]
    """
    if impl == "rockpool" and size in ("M", "L"):
        return max(1, repeats // (5 if size == "M" else 20))
    if impl == "snntorch" and size in ("M", "L"):
        return min(repeats, max(3, repeats // 5))
    return repeats


def median_ci(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(median, low, high)``: the median of ``values`` and a distribution-free confidence
    interval for it.

    The interval is ``[x_(k), x_(n+1-k)]`` of the sorted values (1-based) with the largest
    ``k`` whose coverage, ``1 - 2 P(Binomial(n, 1/2) <= k - 1)``, is at least ``level`` (it
    assumes only independent draws of one distribution); ``low`` and ``high`` are NaN when
    even ``[min, max]`` covers less (fewer than 6 values at 95%).

    Example:
        >>> median_ci([1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9])  # k = 2 (97.9%)
        (1.45, 1.1, 1.8)
        >>> median_ci([1.0, 2.0, 3.0])
        (2.0, nan, nan)
    """
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        return math.nan, math.nan, math.nan
    below = 0  # 2**n P(Binomial(n, 1/2) <= k - 1), grown with k
    best = None
    for k in range(1, n // 2 + 1):
        below += math.comb(n, k - 1)
        if 1 - 2 * below / 2**n < level:
            break
        best = k
    if best is None:
        return statistics.median(xs), math.nan, math.nan
    return statistics.median(xs), xs[best - 1], xs[n - best]


def _paired(row: dict, ref: dict) -> tuple[float, float, float]:
    """:func:`median_ci` of ``row``'s step over ``ref``'s step within each repeat (the first
    repeats, where one of them ran fewer)."""
    a, b = row.get("train_times"), ref.get("train_times")
    if not a or not b:
        return math.nan, math.nan, math.nan
    return median_ci([x / y for x, y in zip(a, b)])


def add_ratios(rows: list[dict]) -> list[dict]:
    """Add the ratio columns (NaN where a reference entry is missing) to every row."""
    by_key = {(r["size"], r["impl"], r["variant"]): r for r in rows}
    nan = {"train_med": math.nan, "train_min": math.nan, "peak_mb": math.nan}
    for r in rows:
        size = r["size"]
        plain = by_key.get((size, "snnqat", "plain"), nan)
        rock = by_key.get((size, "rockpool", "plain"), nan)
        snnt = by_key.get((size, "snntorch", "plain"), nan)
        floor = by_key.get((size, "gemm", "floor"), nan)
        t = r["train_med"]
        r["x_plain"] = t / plain["train_med"]
        r["rockpool_over_this"] = rock["train_med"] / t
        r["snntorch_over_this"] = snnt["train_med"] / t
        r["this_over_floor"] = t / floor["train_med"]
        # the same from the fastest step of each entry (on a shared machine the slow steps are
        # the ones that other work interrupted; the medians scatter more between runs)
        r["x_plain_min"] = r["train_min"] / plain["train_min"]
        r["this_over_floor_min"] = r["train_min"] / floor["train_min"]
        r["mem_over_rockpool"] = r["peak_mb"] / rock["peak_mb"] if rock["peak_mb"] > 0 else math.nan
        for name, ref in (("x_plain", plain), ("this_over_floor", floor)):
            med, lo, hi = _paired(r, ref)
            r[f"{name}_paired"], r[f"{name}_paired_lo"], r[f"{name}_paired_hi"] = med, lo, hi
    return rows


def _fmt_ci(row: dict, name: str) -> str:
    med, lo, hi = (row[f"{name}_paired{end}"] for end in ("", "_lo", "_hi"))
    if math.isnan(med):
        return "n/a"
    ci = "n/a" if math.isnan(lo) else f"{lo:.2f}-{hi:.2f}"
    return f"{med:.2f}x [{ci}]"


def _fmt(value: float, digits: int = 1, suffix: str = "") -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}{suffix}"


def table(rows: list[dict]) -> str:
    """A markdown table of the timings, memory and the ratios (see the module docstring)."""
    lines = [
        "| size | implementation | variant | train median ms | train min ms | infer median ms "
        "| peak extra MB | x plain | rockpool / this | snnTorch / this | this / floor "
        "| mem / rockpool | x plain (min) | this / floor (min) | x plain (paired) "
        "| this / floor (paired) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in add_ratios(rows):
        lines.append(
            f"| {r['size']} | {r['impl']} | {r['variant']} | {_fmt(r['train_med'])} | "
            f"{_fmt(r['train_min'])} | {_fmt(r['infer_med'])} | {_fmt(r['peak_mb'], 0)} | "
            f"{_fmt(r['x_plain'], 2, 'x')} | {_fmt(r['rockpool_over_this'], 1, 'x')} | "
            f"{_fmt(r['snntorch_over_this'], 1, 'x')} | {_fmt(r['this_over_floor'], 2, 'x')} | "
            f"{_fmt(r['mem_over_rockpool'], 2)} | {_fmt(r['x_plain_min'], 2, 'x')} | "
            f"{_fmt(r['this_over_floor_min'], 2, 'x')} | {_fmt_ci(r, 'x_plain')} | "
            f"{_fmt_ci(r, 'this_over_floor')} |"
        )
    return "\n".join(lines)


def write_csv(rows: list[dict], path: str) -> None:
    """Write the rows (with the ratio columns) to ``path`` as CSV."""
    rows = [{k: v for k, v in r.items() if k != "train_times"} for r in add_ratios(rows)]
    fields = list(rows[0]) if rows else []
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def header(threads: int) -> str:
    """Date, thread count and versions, printed above the table."""
    import platform

    versions = [f"torch {torch.__version__}"]
    for name in ("snnqat", "numba", "rockpool", "snntorch"):
        try:
            versions.append(f"{name} {__import__(name).__version__}")
        except (ImportError, AttributeError):
            pass
    if DEVICE.type == "cuda":
        versions.append(f"device {torch.cuda.get_device_name(DEVICE)}")
    return (
        f"{datetime.date.today().isoformat()}, torch.get_num_threads() = {threads}, "
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        + ", ".join(versions)
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["S", "M"], choices=list(SIZES))
    parser.add_argument("--peers", action="store_true", help="also run rockpool, snnTorch, GEMM")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--variants",
        nargs="+",
        default=list(VARIANTS),
        type=_variant,
        help="snnqat variants to time (default: the four of the table; "
        f"{', '.join(EXTRA_VARIANTS)} only when named; lean-K: K segments instead of "
        f"{LEAN_SEGMENTS})",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny size, 2 repeats, no memory (for CI)"
    )
    parser.add_argument(
        "--no-memory", action="store_true", help="skip the per-process memory measurement"
    )
    parser.add_argument("--csv", help="also write the rows to this CSV file")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument(
        "--default-allocator",
        action="store_true",
        help="keep glibc's default (freed memory returned to the OS, page faults for every "
        "fresh large tensor); by default the run starts with "
        "snnqat.utilities.reuse_freed_memory(), which snnqat's LIF layers apply at their "
        "first training call anyway, so that every entry runs alike",
    )
    parser.add_argument(
        "--no-cuda-graphs",
        action="store_true",
        help="on a GPU, launch the LIF loops' kernels step by step (LIFTorch.cuda_graphs=False)",
    )
    parser.add_argument(
        "--no-quantizer-graphs",
        action="store_true",
        help="on a GPU, launch the rounding quantizers' kernels one by one "
        "(snnqat.transform.set_quantizer_cuda_graphs(False))",
    )
    parser.add_argument("--_memory", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._memory:
        _memory_child(*args._memory)
        return
    global DEVICE
    DEVICE = torch.device(args.device)
    if args.no_cuda_graphs:
        from snnqat.nn.modules import LIFTorch

        LIFTorch.cuda_graphs = False
    if args.no_quantizer_graphs:
        from snnqat.transform import set_quantizer_cuda_graphs

        set_quantizer_cuda_graphs(False)
    from snnqat.utilities import reuse_freed_memory
    from snnqat.utilities.memory import ENV_VAR

    if args.default_allocator:
        os.environ[ENV_VAR] = "0"  # also for the memory measurements' child processes
        reused = False
    else:
        reused = reuse_freed_memory()
    torch.set_num_threads(args.threads)
    if args.smoke:
        args.sizes, args.repeats, args.no_memory = ["tiny"], 2, True
    rows = run(args.sizes, args.peers, args.repeats, args.variants, memory=not args.no_memory)
    graphs = ""
    if DEVICE.type == "cuda":
        graphs += ", CUDA graphs of the LIF loops off" if args.no_cuda_graphs else ""
        graphs += ", CUDA graphs of the quantizers off" if args.no_quantizer_graphs else ""
    allocator = ", freed memory reused" if reused else ", glibc's default allocator"
    print(header(torch.get_num_threads()) + allocator + graphs)
    print()
    print(table(rows))
    if args.csv:
        write_csv(rows, args.csv)


if __name__ == "__main__":
    main()
