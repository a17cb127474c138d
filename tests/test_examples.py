"""The examples run and print what they promise."""

import runpy
from pathlib import Path

EXAMPLES = Path(__file__).parents[1] / "examples"


def test_deploy_digits_keeps_accuracy_on_the_simulator(capsys):
    runpy.run_path(str(EXAMPLES / "deploy_digits.py"), run_name="__main__")
    out = capsys.readouterr().out
    cells = [line.split("|")[1:4] for line in out.splitlines() if line.startswith("| ")]
    rows = {f"{a.strip()}/{b.strip()}": c for a, b, c in cells if "accuracy" not in c}
    qat_torch = float(rows["hardware_faithful (QAT)/torch"])
    qat_sim = float(rows["hardware_faithful (QAT), exported/XyloSim"])
    assert qat_sim == qat_torch and qat_sim > 0.85
    assert "identical predictions torch vs simulator: 1.0000" in out
