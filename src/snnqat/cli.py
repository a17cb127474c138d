"""The ``snnqat`` command: ``snnqat demo`` and ``snnqat train --config FILE``.

Argument parsing only; the work is done by :func:`snnqat.training.run`.

Example:
    >>> build_parser().parse_args(["demo", "--epochs", "2"]).epochs
    2
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser"]

_DESCRIPTION = (
    "Train a spiking network with transformations in training so that it runs unchanged "
    "on integer neuromorphic hardware (Xylo-class)."
)
_PIPELINE = (
    "Stages: float training -> hardware-faithful QAT fine-tuning -> apply_T -> export to an "
    "XyloSpec -> XyloSim on the test split. Writes report.json, report.md, PNG plots, the "
    "spec file (xylo_spec.npz) and checkpoints into the output folder. Run it with "
    "'torchrun --nproc_per_node=N -m snnqat ...' to train with DistributedDataParallel."
)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out",
        metavar="DIR",
        help="output folder (default: runs/<timestamp>)",
    )
    p.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run in DIR from its last checkpoint (e.g. after it was killed); "
        "its settings are read from DIR",
    )
    p.add_argument("--seed", type=int, metavar="S", help="random seed (default 0)")
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    # Test hooks: sleep after each checkpoint (time to kill the run), skip the plots.
    p.add_argument("--checkpoint-delay", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--no-plots", action="store_true", help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``snnqat`` command."""
    parser = argparse.ArgumentParser(prog="snnqat", description=_DESCRIPTION)
    from snnqat import __version__

    parser.add_argument("--version", action="version", version=f"snnqat {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{demo,train}")
    sub.required = True
    demo = sub.add_parser(
        "demo",
        help="the built-in job: 8 digit classes from scikit-learn's bundled digits",
        description="Run the built-in job on scikit-learn's bundled digits (classes 0-7, "
        "spike-encoded, 16 input channels, 8 outputs). " + _PIPELINE,
    )
    _add_common(demo)
    demo.add_argument(
        "--epochs", type=int, metavar="N", help="epochs of both stages (default: float 40, QAT 6)"
    )
    demo.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    train = sub.add_parser(
        "train",
        help="the same pipeline with your settings from a TOML file",
        description="Run the pipeline with the settings of a TOML config file (see "
        "docs/cli.md; every key is optional, the defaults are the demo's). " + _PIPELINE,
    )
    train.add_argument("--config", metavar="FILE", help="TOML settings (required unless --resume)")
    _add_common(train)
    train.add_argument("--epochs", type=int, metavar="N", help="override the epochs of both stages")
    return parser


def _config_from_args(args: argparse.Namespace) -> Any:
    """The config the arguments ask for, or ``None`` if they ask for nothing in particular."""
    from snnqat.training.config import TrainConfig, demo_config, load_config, tiny_config

    if args.command == "demo":
        explicit = args.epochs is not None or args.seed is not None or args.tiny
        if args.resume and not explicit:
            return None
        seed = 0 if args.seed is None else args.seed
        cfg = tiny_config(seed) if args.tiny else demo_config(seed=seed)
    else:
        if args.config is None:
            if args.resume:
                if args.epochs is not None or args.seed is not None:
                    return _override(_saved_config(args.resume), args)
                return None
            raise ValueError("train: --config FILE is required (unless --resume DIR).")
        cfg = load_config(args.config)
    assert isinstance(cfg, TrainConfig)
    return _override(cfg, args)


def _override(cfg: Any, args: argparse.Namespace) -> Any:
    changes: dict[str, Any] = {}
    if args.epochs is not None:
        changes.update({"float.epochs": args.epochs, "qat.epochs": args.epochs})
    if args.seed is not None:
        changes["seed"] = args.seed
    return cfg.replace(**changes) if changes else cfg


def _saved_config(run_dir: str) -> Any:
    from snnqat.training.config import TrainConfig

    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"--resume {run_dir}: no run there ({path} is missing).")
    return TrainConfig.from_dict(json.loads(path.read_text()))


def _out_dir(args: argparse.Namespace) -> str:
    if args.resume:
        if args.out and os.path.abspath(args.out) != os.path.abspath(args.resume):
            raise ValueError(
                f"--out {args.out} and --resume {args.resume} name different folders; a resumed "
                "run continues in its own folder (drop --out)."
            )
        return args.resume
    return args.out or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))


def _summary(report: dict[str, Any], out: str) -> str:
    keys = (
        "float_test_accuracy",
        "ptq_integer_sim_test_accuracy",
        "qat_test_accuracy",
        "integer_sim_test_accuracy",
        "spike_agreement",
        "clipped_total",
        "world_size",
        "wall_s",
    )
    width = max(map(len, keys))
    lines = [f"snnqat: run finished, written to {out}/"]
    for k in keys:
        v = report[k]
        lines.append(f"  {k:<{width}}  {v:.4f}" if isinstance(v, float) else f"  {k:<{width}}  {v}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``snnqat`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    level = logging.WARNING if args.quiet or rank != 0 else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s", force=True)
    try:
        out = _out_dir(args)
        cfg = _config_from_args(args)
        if cfg is None:
            cfg = _saved_config(out)
        from snnqat.training.pipeline import run
        from snnqat.utilities import reuse_freed_memory_for_training

        # no page faults for every fresh activation (unless SNNQAT_REUSE_FREED_MEMORY=0)
        reuse_freed_memory_for_training()
        report = run(
            cfg,
            out,
            resume=bool(args.resume),
            checkpoint_delay=args.checkpoint_delay,
            plots=not args.no_plots,
        )
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"snnqat: error: {err}", file=sys.stderr)
        return 2
    if rank == 0:
        print(_summary(report, out))
    return 0
