"""CI smoke tests of the benchmark scripts (they run and print their tables; not timed)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "train_step.py"


def test_train_step_benchmark_smoke(tmp_path):
    out_csv = tmp_path / "rows.csv"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--csv", str(out_csv)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("| size | implementation | variant |") for line in lines)
    rows = [line for line in lines if line.startswith("| tiny | snnqat |")]
    assert {row.split("|")[3].strip() for row in rows} == {
        "plain",
        "param",
        "param+act",
        "bitshift",
    }
    assert "torch.get_num_threads()" in proc.stdout
    assert out_csv.read_text().startswith("size,impl,variant,train_med")
    # progress on stderr (not a terminal here: lines), ending at the last of 4 x 2 repeats
    assert "size tiny: 1/8 repeat 1: snnqat" in proc.stderr
    assert "size tiny: 8/8 repeat 2: snnqat" in proc.stderr


def test_lean_variant_smoke():
    """The ``lean`` variant (checkpointing in time) runs when named."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--variants", "plain", "lean"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| tiny | snnqat |")]
    assert [row.split("|")[3].strip() for row in rows] == ["plain", "lean"]


def test_transformed_variants_fire_as_the_plain_network(monkeypatch):
    """The ``x plain`` ratios compare the transforms' cost: the ``param`` and ``param+act``
    networks of the benchmark (and the probes) must do the same work as the plain one, i.e.
    fire alike (an activity transform that rescaled the currents made one fire 2.4x as
    much)."""
    import torch

    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    import train_step as ts

    size = ts.SIZES["S"]
    rates = {}
    variants = ("plain", "param", "param+act", *ts.ACT_PROBES)
    for variant in variants:
        torch.manual_seed(0)
        x = (torch.rand(size["batch"], size["steps"], size["nin"]) < 0.3).float() * 2
        net = ts.snnqat_net(size, variant)
        with torch.no_grad():
            _, _, rec = net.evolve(x, record=True)
        rates[variant] = [rec[k].mean().item() for k in sorted(rec) if k.endswith("_output")]
    for variant in variants[1:]:
        for got, want in zip(rates[variant], rates["plain"]):
            assert abs(got - want) <= 0.05 * abs(want), (variant, rates)


def test_recurrent_layer_benchmark_smoke():
    """``benchmarks/recurrent_layer.py`` runs on the tiny size and finds the two time loops
    bitwise equal (not timed)."""
    pytest.importorskip("numba")
    import numpy as np

    from snnqat.kernels import _blas

    if _blas.gemm_address(np.float32) is None:
        pytest.skip("this torch build exports no ?gemm")
    stdout = _run("recurrent_layer.py", "--size", "tiny", "--repeats", "1", "--threads", "1")
    assert "outputs and gradients bitwise equal: True" in stdout
    assert "| compiled (?gemm inside) |" in stdout


def test_memory_peak_smoke():
    """``benchmarks/memory_peak.py`` finds the peak of a tiny step and what is alive there."""
    stdout = _run("memory_peak.py", "--size", "tiny", "--threads", "1", "--min-mb", "0")
    assert "snnqat plain at size tiny: peak extra" in stdout
    assert "| MB alive at the peak | made by |" in stdout
    assert "| running total MB at a local maximum | during |" in stdout


def _run(script: str, *args: str) -> str:
    """Run ``benchmarks/<script>`` with ``args``; its standard output (it must succeed)."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPT.parent / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_median_ci_order_statistics(monkeypatch):
    """The interval of the median is ``[x_(k), x_(n+1-k)]`` with the binomial coverage: at
    95%, ``k = 2`` for 10 values (97.9%; ``k = 3`` would cover 89.1%), ``k = 6`` for 20
    (95.9%), ``[min, max]`` for 6 (96.9%), none for 5 (``[min, max]`` covers 93.8%)."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    import math

    import train_step as ts

    assert ts.median_ci([float(i) for i in range(10)]) == (4.5, 1.0, 8.0)
    assert ts.median_ci([float(i) for i in range(20)]) == (9.5, 5.0, 14.0)
    assert ts.median_ci([float(i) for i in range(6)]) == (2.5, 0.0, 5.0)
    med, lo, hi = ts.median_ci([float(i) for i in range(5)])
    assert med == 2.0 and math.isnan(lo) and math.isnan(hi)
    assert ts.median_ci([3.0, 1.0, 2.0, 6.0, 5.0, 4.0], level=0.99)[1:] != (1.0, 6.0)


def test_paired_ratios_divide_within_each_repeat(monkeypatch):
    """``x plain (paired)``: the entry's step over the plain step of the same repeat, so a
    slowdown that hits both in a repeat cancels; the table prints the median and its interval."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    import math
    import statistics

    import train_step as ts

    plain = [10.0, 30.0, 10.0, 30.0, 10.0, 30.0]  # every other repeat in a slow phase
    param = [11.0, 33.0, 11.0, 33.0, 11.0, 33.0]
    floor = [5.0, 15.0, 5.0, 15.0, 5.0, 15.0]

    def row(variant, impl, times):
        return dict(size="S", impl=impl, variant=variant, train_med=statistics.median(times),
                    train_min=min(times), infer_med=1.0, infer_min=1.0, peak_mb=math.nan,
                    train_times=times)  # fmt: skip

    rows = [row("plain", "snnqat", plain), row("param", "snnqat", param)]
    rows.append(row("floor", "gemm", floor))
    rows.append(row("plain", "rockpool", [99.0]))
    out = {r["impl"] + r["variant"]: r for r in ts.add_ratios(rows)}
    assert out["snnqatparam"]["x_plain_paired"] == out["snnqatparam"]["x_plain_paired_hi"]
    assert math.isclose(out["snnqatparam"]["x_plain_paired"], 1.1)
    assert math.isclose(out["snnqatplain"]["this_over_floor_paired"], 2.0)
    assert math.isnan(out["rockpoolplain"]["x_plain_paired_lo"])  # one repeat: no interval
    text = ts.table(rows)
    assert "| 1.10x [1.10-1.10] | 2.20x [2.20-2.20] |" in text
    assert "| 9.90x [n/a] |" in text
