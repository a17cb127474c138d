"""A run killed with SIGKILL mid-training and resumed ends exactly like an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from snnqat.cli import main

# Stochastic transforms in both stages: resuming must restore the random-number states.
CONFIG = textwrap.dedent(
    """
    seed = 5
    device = "cpu"
    [data]
    n_class = 4
    limit_samples = 96
    [model]
    hidden = [12]
    [float]
    epochs = 2
    batch_size = 24
    lr = 1e-2
    [float.transforms.weights]
    name = "dropout"
    dropout_prob = 0.1
    [qat]
    epochs = 2
    batch_size = 24
    [qat.transforms.weights]
    name = "dropout"
    dropout_prob = 0.05
    """
)
TIMING_KEYS = {"wall_s", "wall_s_including_earlier_processes"}


def _start(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # The run sleeps 3 s after each checkpoint: time enough to see it and kill the run there.
    cmd = [sys.executable, "-m", "snnqat", *args, "-q", "--no-plots", "--checkpoint-delay", "3"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _kill_at(proc: subprocess.Popen, info_path, stage: str, epoch: int, timeout: float = 90):
    """SIGKILL ``proc`` once the checkpoint of ``stage``/``epoch`` is on disk."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"run ended early: {proc.communicate()[1].decode()[-2000:]}")
            if info_path.exists():
                info = json.loads(info_path.read_text())
                if (info["stage"], info["epoch"]) == (stage, epoch):
                    return
            time.sleep(0.05)
        pytest.fail(f"no checkpoint {stage}/{epoch} within {timeout} s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()


def _strip(report: dict) -> dict:
    """The report without wall times (of the run and of each epoch)."""
    out = {k: v for k, v in report.items() if k not in TIMING_KEYS}
    for stage in ("float", "qat"):
        out["history"][stage] = [
            {k: v for k, v in e.items() if k != "seconds"} for e in out["history"][stage]
        ]
    return out


def test_resume_after_kill_matches_uninterrupted(tmp_path):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(CONFIG)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    info = killed / "checkpoints" / "latest.json"
    # Killed in the float stage after epoch 1, then in the QAT stage after its epoch 1.
    _kill_at(_start(["train", "--config", str(cfg), "--out", str(killed)]), info, "float", 1)
    _kill_at(_start(["train", "--resume", str(killed)]), info, "qat", 1)
    assert not (killed / "report.json").exists()
    assert main(["train", "--resume", str(killed), "-q", "--no-plots"]) == 0
    assert main(["train", "--config", str(cfg), "--out", str(clean), "-q", "--no-plots"]) == 0

    a = torch.load(killed / "checkpoints" / "final.pt", weights_only=True)["model"]
    b = torch.load(clean / "checkpoints" / "final.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    report_a = json.loads((killed / "report.json").read_text())
    report_b = json.loads((clean / "report.json").read_text())
    assert _strip(report_a) == _strip(report_b)
    assert (killed / "xylo_spec.npz").read_bytes() == (clean / "xylo_spec.npz").read_bytes()


def test_resume_rejects_other_settings(tmp_path, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(CONFIG.replace("epochs = 2", "epochs = 0"))
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(out), "-q", "--no-plots"]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--seed", "6"]) == 2
    assert "settings differ from the run's saved ones at seed (saved 5, given 6)" in (
        capsys.readouterr().err
    )
    # Resuming a finished run only rebuilds its report.
    assert main(["train", "--resume", str(out), "-q", "--no-plots"]) == 0


def test_resume_before_first_checkpoint_starts_over(tmp_path):
    import shutil

    cfg = tmp_path / "tiny.toml"
    cfg.write_text(CONFIG.replace("epochs = 2", "epochs = 0"))
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(out), "-q", "--no-plots"]) == 0
    first = json.loads((out / "report.json").read_text())
    shutil.rmtree(out / "checkpoints")  # as if killed before the first checkpoint
    (out / "report.json").unlink()
    assert main(["train", "--resume", str(out), "-q", "--no-plots"]) == 0
    assert _strip(json.loads((out / "report.json").read_text())) == _strip(first)
