"""The ``snnqat`` command end to end, in its tiny mode (seconds)."""

import json

import numpy as np
import pytest

from snnqat.cli import main
from snnqat.devices.xylo import XyloSim, XyloSpec
from snnqat.training.report import PLOT_FILES

REPORT_KEYS = {
    "float_test_accuracy",
    "qat_test_accuracy",
    "integer_sim_test_accuracy",
    "ptq_integer_sim_test_accuracy",
    "spike_agreement",
    "world_size",
    "wall_s",
    "bits",
    "clipped",
    "clipped_total",
}


@pytest.mark.parametrize("args", [["--help"], ["demo", "--help"], ["train", "--help"]])
def test_help(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: snnqat" in out
    if args[0] == "demo":
        assert "--epochs" in out and "--out" in out and "--seed" in out and "--resume" in out
        assert "--tiny" not in out  # hidden test option
    if args[0] == "train":
        assert "--config" in out


def test_demo_tiny_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["demo", "--tiny", "--epochs", "1", "--out", str(out), "--seed", "1"]) == 0
    summary = capsys.readouterr().out
    assert "integer_sim_test_accuracy" in summary and str(out) in summary
    report = json.loads((out / "report.json").read_text())
    assert REPORT_KEYS <= set(report)
    assert report["world_size"] == 1
    assert report["bits"]["weights"] == 8
    assert report["history"]["float"][0]["epoch"] == 1 and len(report["history"]["qat"]) == 1
    for name in (*PLOT_FILES, "report.md", "config.json", "xylo_spec.npz"):
        assert (out / name).is_file(), name
    for name in ("latest.pt", "latest.json", "float.pt", "final.pt"):
        assert (out / "checkpoints" / name).is_file(), name
    assert "| integer_sim_test_accuracy |" in (out / "report.md").read_text()
    # The saved spec reproduces the reported integer accuracy's inputs: it loads and runs.
    spec = XyloSpec.load(out / "xylo_spec.npz")
    sim_out, _, _ = XyloSim.from_spec(spec).evolve(np.zeros((2, 5, 16), np.int64))
    assert sim_out.shape == (2, 5, 4)
    # The same folder again without --resume is refused.
    assert main(["demo", "--tiny", "--epochs", "1", "--out", str(out)]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_train_rejects_bad_config_before_training(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[model]\nhidden = [16]\nleak = 3\n")
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'model.leak'" in err and "Valid keys in [model]: hidden" in err
    assert not out.exists()


def test_train_requires_config(capsys):
    assert main(["train"]) == 2
    assert "--config FILE is required" in capsys.readouterr().err


def test_resume_errors(tmp_path, capsys):
    assert main(["demo", "--resume", str(tmp_path / "nothing")]) == 2
    assert "no run there" in capsys.readouterr().err
    assert main(["demo", "--resume", str(tmp_path), "--out", str(tmp_path / "other")]) == 2
    assert "name different folders" in capsys.readouterr().err


def test_train_rejects_missing_family_before_writing(tmp_path, capsys):
    cfg = tmp_path / "taus.toml"
    cfg.write_text('[qat]\ntrainable = ["weights", "taus"]\n')
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "qat.trainable: the network has no parameter of family 'taus'" in err
    assert not out.exists()
