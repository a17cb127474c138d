"""The training pipeline frees the CUDA graphs of each stage when the stage ends (on a GPU they
keep their buffers; the next stage's network has other call structures)."""

from __future__ import annotations

import textwrap

from snnqat.cli import main
from snnqat.training import pipeline

CONFIG = textwrap.dedent(
    """
    seed = 1
    device = "cpu"
    [data]
    n_class = 3
    limit_samples = 48
    [model]
    hidden = [8]
    [float]
    epochs = 1
    batch_size = 24
    [qat]
    epochs = 1
    batch_size = 24
    """
)


def test_each_stage_releases_its_cuda_graphs(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(pipeline, "release_cuda_graphs", lambda: calls.append(1) or 0)
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(out), "-q", "--no-plots"]) == 0
    assert len(calls) == 2  # after the float stage and after the QAT stage
