"""The whole job: float training -> hardware-faithful QAT -> ``apply_T`` -> export -> XyloSim.

:func:`run` trains the network of a :class:`~snnqat.training.config.TrainConfig` on the
spike-encoded ``digits`` and writes, into the output folder (rank 0 only):

* ``config.json``: the settings;
* ``checkpoints/latest.pt`` (+ ``latest.json``): after every epoch, atomically;
  ``checkpoints/float.pt``, ``checkpoints/final.pt``: the float and the burned-in network;
* ``xylo_spec.npz``: the exported :class:`~snnqat.devices.xylo.XyloSpec`;
* ``report.json``, ``report.md`` and PNG plots (see :mod:`snnqat.training.report`).

A run killed at any point continues with ``run(..., resume=True)`` from its last completed
epoch and ends with the same weights and report as an uninterrupted run: the checkpoint
holds the model, the optimizer, the random-number states, the stage and the epoch, and the
data order depends only on the seed and the epoch.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import snnqat.transform.torch_transform as tt
from snnqat.kernels import release_cuda_graphs
from snnqat.nn import TimeCheckpointed
from snnqat.training import report as reporting
from snnqat.training.checkpoint import (
    CHECKPOINT_FORMAT,
    load_checkpoint,
    rng_state,
    save_atomic,
    seed_everything,
    set_rng_state,
    write_json_atomic,
)
from snnqat.training.config import StageConfig, TrainConfig
from snnqat.training.data import N_INPUTS, SpikeData, load_digits_spikes
from snnqat.training.distributed import DistContext, torch_api, wrap_ddp
from snnqat.training.loop import epoch_batches, evaluate, lr_at, train_epoch
from snnqat.training.model import (
    accuracy,
    attach_transforms,
    build_network,
    check_families,
    detach_transforms,
    set_trainable,
    trainable_parameters,
)

__all__ = ["run", "RunPaths"]

log = logging.getLogger(__name__)

STAGES = ("float", "qat", "done")


class RunPaths:
    """The files of a run folder."""

    def __init__(self, out: str | os.PathLike[str]) -> None:
        self.out = Path(out)
        self.checkpoints = self.out / "checkpoints"
        self.latest = self.checkpoints / "latest.pt"
        self.latest_info = self.checkpoints / "latest.json"
        self.float_ckpt = self.checkpoints / "float.pt"
        self.final_ckpt = self.checkpoints / "final.pt"
        self.config = self.out / "config.json"
        self.spec = self.out / "xylo_spec.npz"


def _xylo() -> Any:
    import snnqat.devices.xylo as xylo

    missing = [n for n in ("hardware_faithful", "export") if not hasattr(xylo, n)]
    if missing:  # pragma: no cover - only while the device package is incomplete
        raise ImportError(f"snnqat.devices.xylo lacks {missing}: the QAT stage cannot run.")
    return xylo


def run(
    config: TrainConfig,
    out_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    checkpoint_delay: float = 0.0,
    plots: bool = True,
) -> dict[str, Any]:
    """Run (or resume) the pipeline; returns the report (on every process).

    Args:
        config: The settings.
        out_dir: The run folder.
        resume: Continue the run in ``out_dir`` from its last checkpoint. Its saved config
            must equal ``config``.
        checkpoint_delay: Seconds to sleep after each checkpoint (a test hook: it leaves
            time to kill the process).
        plots: Write the PNG plots (tests switch them off to save time).

    Raises:
        FileExistsError: ``out_dir`` holds a checkpoint but ``resume`` is false.
        FileNotFoundError: ``resume`` but ``out_dir`` has no checkpoint.
        ValueError: ``resume`` with a config that differs from the saved one.
    """
    ctx = DistContext.from_env(config.device).setup()
    try:
        return _Run(config, RunPaths(out_dir), ctx, checkpoint_delay, plots).execute(resume)
    finally:
        ctx.close()


class _Run:
    def __init__(
        self, cfg: TrainConfig, paths: RunPaths, ctx: DistContext, delay: float, plots: bool
    ) -> None:
        self.cfg, self.paths, self.ctx, self.delay, self.plots = cfg, paths, ctx, delay, plots
        self.history: dict[str, Any] = {"float": [], "qat": [], "steps": {"float": [], "qat": []}}
        self.wall_before = 0.0
        self.start = time.perf_counter()

    # ------------------------------------------------------------------ orchestration
    def execute(self, resume: bool) -> dict[str, Any]:
        cfg, paths, ctx = self.cfg, self.paths, self.ctx
        probe = build_network(cfg.model, N_INPUTS, cfg.data.n_class)
        check_families(probe, {"float": cfg.float, "qat": cfg.qat})  # before any file is written
        saved = self._open(resume)
        seed_everything(cfg.seed)
        data = load_digits_spikes(cfg.data, cfg.seed)
        data = _to_device(data, ctx.device)
        torch.manual_seed(cfg.seed)
        net = build_network(cfg.model, N_INPUTS, data.n_class).to(ctx.device)
        stage, epoch = "float", 0
        if saved is not None:
            stage, epoch = saved["stage"], saved["epoch"]
            self.history = saved["history"]
            self.wall_before = saved["wall_s"]
            log.info("resuming %s at stage %r, epoch %d", paths.out, stage, epoch)

        if stage == "float":
            net = self._train_stage("float", net, cfg.float, data, epoch, saved, None)
            float_state = _cpu_state(net)
            if ctx.is_main:
                save_atomic({"format": CHECKPOINT_FORMAT, "model": float_state}, paths.float_ckpt)
            stage, epoch, saved = "qat", 0, None
        else:
            net.load_state_dict(saved["float_model"])
            float_state = saved["float_model"]

        xylo = _xylo()
        float_eval = evaluate(net, data.x_test, data.y_test)
        log.info("float model: test accuracy %.4f", float_eval.acc)
        ptq = self._integer_check(xylo, net, data, "ptq")
        hf = xylo.hardware_faithful(net, method=cfg.qat.method, limits=self._limits(xylo))
        if stage == "qat":
            hf = self._train_stage("qat", hf, cfg.qat, data, epoch, saved, float_state)
        else:
            hf.load_state_dict(saved["model"])
        if ctx.is_main and stage != "done":
            self._checkpoint("done", cfg.qat.epochs, hf, None, float_state)
        return self._finish(xylo, net, hf, data, float_eval, ptq)

    def _open(self, resume: bool) -> dict[str, Any] | None:
        paths, ctx = self.paths, self.ctx
        if resume and not paths.latest.exists():
            if not paths.config.exists():
                raise FileNotFoundError(
                    f"--resume {paths.out}: no run there (no config.json, no checkpoint). Start "
                    "the run without --resume."
                )
            # Killed before its first checkpoint: start again with the same settings.
            self._check_same(json.loads(paths.config.read_text()))
            log.info("%s has no checkpoint yet: starting the run from the beginning", paths.out)
            resume = False
        elif not resume and paths.latest.exists():
            raise FileExistsError(
                f"{paths.out} already holds a run (checkpoints/latest.pt). Continue it with "
                "--resume, or choose another --out folder."
            )
        if not resume:
            if ctx.is_main:
                paths.out.mkdir(parents=True, exist_ok=True)
                write_json_atomic(self.cfg.to_dict(), paths.config)
            ctx.barrier()
            return None
        saved = load_checkpoint(paths.latest)
        if saved.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(
                f"{paths.latest}: expected a checkpoint of format {CHECKPOINT_FORMAT!r}, got "
                f"{saved.get('format')!r}."
            )
        self._check_same(saved["config"])
        return saved

    def _check_same(self, saved_config: dict[str, Any]) -> None:
        if saved_config != self.cfg.to_dict():
            diff = _diff(saved_config, self.cfg.to_dict())
            raise ValueError(
                f"--resume {self.paths.out}: the settings differ from the run's saved ones at "
                f"{diff}. Resume with the same settings (or none: they are read from the run)."
            )

    # ------------------------------------------------------------------ one stage
    def _train_stage(
        self,
        name: str,
        net: Any,
        stage: StageConfig,
        data: SpikeData,
        start_epoch: int,
        saved: dict[str, Any] | None,
        float_state: dict[str, torch.Tensor] | None,
    ) -> Any:
        ctx = self.ctx
        net, wrappers = attach_transforms(net, stage)
        set_trainable(net, stage.trainable)
        params = trainable_parameters(net)
        if not params:
            raise ValueError(
                f"{name}.trainable: the network has no parameter of the families "
                f"{list(stage.trainable)}."
            )
        optimizer = torch.optim.Adam(params, lr=stage.lr)
        if saved is not None:
            net.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            set_rng_state(saved["rng"])
        with torch_api(net):
            lean = stage.segment_steps > 0  # (DDP goes around the segments, not inside)
            model = wrap_ddp(TimeCheckpointed(net, stage.segment_steps) if lean else net, ctx)
            for epoch in range(start_epoch, stage.epochs):
                lr = lr_at(stage.lr, epoch, stage.epochs, stage.schedule)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                batches = epoch_batches(
                    len(data.y_train), stage.batch_size, epoch, self.cfg.seed, ctx.rank,
                    ctx.world_size,
                )  # fmt: skip
                desc = f"{name} {epoch + 1}/{stage.epochs}"
                stats = train_epoch(
                    model, net, data.x_train, data.y_train, batches, optimizer, ctx, desc
                )
                test = evaluate(net, data.x_test, data.y_test)
                entry = {
                    "epoch": epoch + 1,
                    "lr": lr,
                    "train_loss": stats.loss,
                    "train_acc": stats.acc,
                    "test_loss": test.loss,
                    "test_acc": test.acc,
                    "seconds": stats.seconds,
                }
                self.history[name].append(entry)
                self.history["steps"][name].extend(stats.step_losses)
                log.info(
                    "%s epoch %d/%d: loss %.4f, train acc %.4f, test acc %.4f (%.1f s)",
                    name, epoch + 1, stage.epochs, stats.loss, stats.acc, test.acc,
                    stats.seconds,
                )  # fmt: skip
                if ctx.is_main:
                    self._checkpoint(name, epoch + 1, net, optimizer, float_state)
                if self.delay:
                    time.sleep(self.delay)
        # On a GPU: the stage's CUDA graphs (LIF loops, quantizers) keep their buffers; the
        # next stage's network has other call structures, so they would only hold memory.
        released = release_cuda_graphs()
        if released:
            log.debug("%s: released %d CUDA graphs", name, released)
        return detach_transforms(net, wrappers)

    def _checkpoint(
        self,
        stage: str,
        epoch: int,
        net: Any,
        optimizer: torch.optim.Optimizer | None,
        float_state: dict[str, torch.Tensor] | None,
    ) -> None:
        state = {
            "format": CHECKPOINT_FORMAT,
            "config": self.cfg.to_dict(),
            "stage": stage,
            "epoch": epoch,
            "model": _cpu_state(net),
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "float_model": float_state,
            "rng": rng_state(),
            "history": self.history,
            "wall_s": self.wall_before + time.perf_counter() - self.start,
        }
        save_atomic(state, self.paths.latest)
        write_json_atomic({"stage": stage, "epoch": epoch}, self.paths.latest_info)

    # ------------------------------------------------------------------ integer side
    def _limits(self, xylo: Any) -> Any:
        """Xylo's limits with the spike caps of the config (Xylo's own by default: 31, 1)."""
        model = self.cfg.model
        return xylo.XyloLimits().replace(
            max_hidden_spikes=model.hidden_max_spikes, max_output_spikes=model.output_max_spikes
        )

    def _integer_check(self, xylo: Any, net: Any, data: SpikeData, label: str) -> dict[str, Any]:
        """Export ``net``, simulate the test split; accuracy, outputs and export report."""
        method, limits = self.cfg.qat.method, self._limits(xylo)
        spec, rep = xylo.export(_on_cpu(net), method=method, limits=limits, report=True)
        sim = xylo.XyloSim.from_spec(spec, limits)
        raster = data.x_test.cpu().numpy().astype(np.int64)
        out, _, _ = sim.evolve(raster)
        counts = torch.as_tensor(out.sum(axis=1), dtype=torch.float32)
        acc = accuracy(counts, data.y_test.cpu())
        log.info("%s: integer-simulator test accuracy %.4f", label, acc)
        return {"spec": spec, "report": rep, "outputs": out, "acc": acc}

    def _finish(
        self,
        xylo: Any,
        net: Any,
        hf: Any,
        data: SpikeData,
        float_eval: Any,
        ptq: dict[str, Any],
    ) -> dict[str, Any]:
        cfg, paths, ctx = self.cfg, self.paths, self.ctx
        hf_eval = evaluate(hf, data.x_test, data.y_test)
        burned = tt.apply_T(hf)
        burned_eval = evaluate(burned, data.x_test, data.y_test)
        final = self._integer_check(xylo, burned, data, "qat")
        torch_out = burned_eval.outputs.numpy().astype(np.int64)
        agreement = float((torch_out == final["outputs"]).mean())
        before = float((hf_eval.outputs == burned_eval.outputs).float().mean())
        rep = final["report"]
        result = {
            "float_test_accuracy": float_eval.acc,
            "qat_test_accuracy": hf_eval.acc,
            "qat_burned_in_test_accuracy": burned_eval.acc,
            "integer_sim_test_accuracy": final["acc"],
            "ptq_integer_sim_test_accuracy": ptq["acc"],
            "spike_agreement": agreement,
            "burn_in_spike_agreement": before,
            "integer_minus_float_pp": 100.0 * (final["acc"] - float_eval.acc),
            "world_size": ctx.world_size,
            "wall_s": float("nan"),
            "wall_s_including_earlier_processes": float("nan"),
            "bits": dict(rep.bits),
            "clipped": dict(rep.clipped),
            "clipped_total": int(sum(rep.clipped.values())),
            "ptq_clipped_total": int(sum(ptq["report"].clipped.values())),
            # The burned-in network already holds integers (scale 1); the float network's
            # export scales say how float units map to the integers.
            "scales": {k: list(map(float, v)) for k, v in rep.scales.items()},
            "ptq_scales": {k: list(map(float, v)) for k, v in ptq["report"].scales.items()},
            "export_notes": list(rep.notes),
            "test_tie_fraction": {
                "float": _tie_fraction(float_eval.counts),
                "qat": _tie_fraction(hf_eval.counts),
                "integer_sim": _tie_fraction(torch.as_tensor(final["outputs"].sum(axis=1))),
            },
            "n_train": len(data.y_train),
            "n_test": len(data.y_test),
            "n_class": data.n_class,
            "time_steps": data.steps,
            "readout": "argmax of summed output spikes; a tie for the most spikes is wrong",
            "epochs": {"float": cfg.float.epochs, "qat": cfg.qat.epochs},
            "seed": cfg.seed,
            "device": str(ctx.device),
            "torch": torch.__version__,
            "spec_file": paths.spec.name,
            "config": cfg.to_dict(),
        }
        if ctx.is_main:
            final["spec"].save(paths.spec)
            save_atomic(
                {"format": CHECKPOINT_FORMAT, "model": _cpu_state(burned)}, paths.final_ckpt
            )
            if self.plots:
                inputs = reporting.PlotInputs(
                    float_net=_on_cpu(net),
                    spec=final["spec"],
                    ptq_spec=ptq["spec"],
                    sample=data.x_test[0].cpu().numpy().astype(np.int64),
                    label=int(data.y_test[0]),
                    limits=self._limits(xylo),
                )
                reporting.write_plots(paths.out, result, self.history, inputs)
        wall = time.perf_counter() - self.start
        result["wall_s"] = wall
        result["wall_s_including_earlier_processes"] = self.wall_before + wall
        if ctx.is_main:
            reporting.write_reports(paths.out, result, self.history, self.plots)
        ctx.barrier()
        return result


def _tie_fraction(counts: torch.Tensor) -> float:
    counts = torch.as_tensor(counts, dtype=torch.float32)
    top = counts.max(dim=1, keepdim=True).values
    return float(((counts == top).sum(dim=1) > 1).float().mean())


def _cpu_state(net: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}


def _on_cpu(net: Any) -> Any:
    first = next(iter(torch.nn.Module.parameters(net)), None)
    if first is None or first.device.type == "cpu":
        return net
    import copy

    return copy.deepcopy(net).cpu()  # pragma: no cover - no GPU in CI


def _to_device(data: SpikeData, device: torch.device) -> SpikeData:
    if device.type == "cpu":
        return data
    return SpikeData(  # pragma: no cover - no GPU in CI
        data.x_train.to(device),
        data.y_train.to(device),
        data.x_test.to(device),
        data.y_test.to(device),
        data.n_class,
    )


def _diff(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return _diff(a.get(key), b.get(key), f"{path}.{key}" if path else key)
    return f"{path or '<root>'} (saved {a!r}, given {b!r})"
