"""``float.segment_steps``: the float stage trains through checkpoint_in_time, same steps."""

import json

import pytest

import snnqat.nn.checkpoint as ck
from snnqat.training import run, tiny_config


def test_float_stage_in_time_segments_takes_the_same_steps(tmp_path, monkeypatch):
    cfg = tiny_config(seed=4).replace(**{"float.epochs": 1, "qat.epochs": 0})
    plain = run(cfg, tmp_path / "plain", plots=False)
    calls = []
    inner = ck.checkpoint_in_time

    def counted(module, data, segment_steps):
        calls.append((data.shape[1], segment_steps))
        return inner(module, data, segment_steps)

    monkeypatch.setattr(ck, "checkpoint_in_time", counted)
    lean = run(cfg.replace(**{"float.segment_steps": 7}), tmp_path / "lean", plots=False)
    assert calls and all(steps > 7 and seg == 7 for steps, seg in calls)  # several segments
    steps = [
        json.loads((tmp_path / d / "report.json").read_text())["history"]["steps"]["float"]
        for d in ("plain", "lean")
    ]
    assert len(steps[0]) == len(steps[1]) > 1
    # exact BPTT either way: the same losses up to float rounding of the summed gradients
    assert steps[1] == pytest.approx(steps[0], rel=1e-5, abs=1e-6)
    assert lean["config"]["float"]["segment_steps"] == 7
    assert lean["float_test_accuracy"] == pytest.approx(plain["float_test_accuracy"], abs=0.02)
