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
