"""CI smoke test: ``benchmarks/train_step.py --smoke`` runs and prints its table (not timed)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

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
