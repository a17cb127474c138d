"""``report.json``, ``report.md`` and the PNG plots of a run.

Plots (matplotlib, ``Agg`` backend, written next to the report):

* ``training_curves.png``: loss and accuracy per epoch, one column per stage;
* ``accuracy_per_stage.png``: test accuracy of the float model, its post-training
  quantization on the simulator, the QAT model in torch and on the simulator;
* ``weight_histograms.png``: float weights after the float stage, and the exported integer
  weights (QAT and, for comparison, post-training quantization);
* ``spike_raster.png``: input, hidden and output spikes of one test sample, simulated by
  :class:`~snnqat.devices.xylo.XyloSim` from the exported spec.

Example:
    >>> print(markdown_table({"float_test_accuracy": 0.9712, "world_size": 1}))
    | metric | value |
    |---|---|
    | float_test_accuracy | 0.9712 |
    | world_size | 1 |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from snnqat.training.checkpoint import write_json_atomic

__all__ = ["PlotInputs", "write_plots", "write_reports", "markdown_table", "PLOT_FILES"]

PLOT_FILES = (
    "training_curves.png",
    "accuracy_per_stage.png",
    "weight_histograms.png",
    "spike_raster.png",
)

_HEADLINE = (
    "float_test_accuracy",
    "ptq_integer_sim_test_accuracy",
    "qat_test_accuracy",
    "integer_sim_test_accuracy",
    "integer_minus_float_pp",
    "spike_agreement",
    "burn_in_spike_agreement",
    "world_size",
    "wall_s",
    "clipped_total",
    "ptq_clipped_total",
    "n_train",
    "n_test",
    "n_class",
    "time_steps",
)


@dataclass
class PlotInputs:
    """What the plots need besides the report and the history.

    Attributes:
        float_net: The network after the float stage.
        spec: The exported spec of the QAT network.
        ptq_spec: The exported spec of the float network (post-training quantization).
        sample: ``(T, Nin)`` integer raster of one test sample.
        label: Its class.
        limits: The core's limits for the simulation (``None``: Xylo's).
    """

    float_net: Any
    spec: Any
    ptq_spec: Any
    sample: np.ndarray
    label: int
    limits: Any = None


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value) if value else "-"
    return str(value)


def markdown_table(rows: dict[str, Any]) -> str:
    """A two-column Markdown table ``metric | value``."""
    lines = ["| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v).replace('|', '/')} |" for k, v in rows.items()]
    return "\n".join(lines)


def write_plots(
    out: str | os.PathLike[str], result: dict[str, Any], history: dict[str, Any], p: PlotInputs
) -> None:
    """Draw the plots of :data:`PLOT_FILES` into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    try:
        _training_curves(plt, history).savefig(out / PLOT_FILES[0], dpi=110)
        _accuracy_bars(plt, result).savefig(out / PLOT_FILES[1], dpi=110)
        _histograms(plt, p).savefig(out / PLOT_FILES[2], dpi=110)
        _raster(plt, p).savefig(out / PLOT_FILES[3], dpi=110)
    finally:
        plt.close("all")


def write_reports(
    out: str | os.PathLike[str],
    result: dict[str, Any],
    history: dict[str, Any],
    plots: bool = True,
) -> None:
    """Write ``report.json`` and ``report.md`` (linking the plots if ``plots``) into ``out``."""
    out = Path(out)
    write_json_atomic({**result, "history": history}, out / "report.json")
    headline = {k: result[k] for k in _HEADLINE if k in result}
    keys = ("bits", "clipped", "scales", "ptq_scales", "test_tie_fraction", "epochs")
    details = {k: result[k] for k in keys}
    details.update(readout=result["readout"], spec_file=result["spec_file"])
    details.update(seed=result["seed"], device=result["device"], torch=result["torch"])
    md = [
        "# snnqat run report",
        "",
        "Spike-encoded scikit-learn `digits` on a Xylo-compatible SNN: float training, "
        "hardware-faithful QAT, `apply_T`, export, integer simulation (`XyloSim`).",
        "",
        "## Results (test split)",
        "",
        markdown_table(headline),
        "",
        "## Export and run details",
        "",
        markdown_table(details),
        "",
        "## Per-epoch history",
        "",
        _history_table(history),
        "",
        "## Plots",
        "",
        *([f"![{name[:-4]}]({name})" for name in PLOT_FILES] if plots else ["(not drawn)"]),
        "",
    ]
    (out / "report.md").write_text("\n".join(md))


def _history_table(history: dict[str, Any]) -> str:
    lines = ["| stage | epoch | lr | train loss | train acc | test loss | test acc | s |"]
    lines.append("|---|---|---|---|---|---|---|---|")
    for stage in ("float", "qat"):
        for e in history.get(stage, []):
            lines.append(
                f"| {stage} | {e['epoch']} | {e['lr']:.2e} | {e['train_loss']:.4f} | "
                f"{e['train_acc']:.4f} | {e['test_loss']:.4f} | {e['test_acc']:.4f} | "
                f"{e['seconds']:.1f} |"
            )
    return "\n".join(lines)


# --------------------------------------------------------------------------- plots
def _training_curves(plt: Any, history: dict[str, Any]) -> Any:
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharex="col", squeeze=False)
    for col, (stage, title) in enumerate(
        (("float", "float training"), ("qat", "hardware-faithful QAT"))
    ):
        rows = history.get(stage, [])
        ep = [r["epoch"] for r in rows]
        ax = axes[0][col]
        ax.plot(ep, [r["train_loss"] for r in rows], "o-", label="train")
        ax.plot(ep, [r["test_loss"] for r in rows], "s--", label="test")
        ax.set_title(f"{title}: loss")
        ax.set_ylabel("cross-entropy of spike counts")
        ax.legend()
        ax = axes[1][col]
        ax.plot(ep, [r["train_acc"] for r in rows], "o-", label="train")
        ax.plot(ep, [r["test_acc"] for r in rows], "s--", label="test")
        ax.set_title(f"{title}: accuracy")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.02)
        ax.legend(loc="lower right")
        if not rows:
            for a in (axes[0][col], axes[1][col]):
                a.text(0.5, 0.5, "no epochs", ha="center", va="center", transform=a.transAxes)
    fig.tight_layout()
    return fig


def _accuracy_bars(plt: Any, r: dict[str, Any]) -> Any:
    labels = ["float\n(torch)", "PTQ\n(XyloSim)", "QAT\n(torch)", "QAT\n(XyloSim)"]
    keys = [
        "float_test_accuracy",
        "ptq_integer_sim_test_accuracy",
        "qat_test_accuracy",
        "integer_sim_test_accuracy",
    ]
    values = [r[k] for k in keys]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    bars = ax.bar(labels, values, color=["#4c72b0", "#dd8452", "#55a868", "#c44e52"])
    for bar, v in zip(bars, values):
        ax.text(bar.get_x() + bar.get_width() / 2, v + 0.01, f"{v:.3f}", ha="center")
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("test accuracy")
    ax.set_title(f"Accuracy per stage (spike agreement {r['spike_agreement']:.4f})")
    fig.tight_layout()
    return fig


def _float_weights(net: Any) -> list[tuple[str, np.ndarray]]:
    import torch

    out = []
    for name, mod in net.named_modules():
        if type(mod).__name__ == "LinearTorch":
            w = torch.nn.Module.__getattr__(mod, "weight")
            out.append((name.replace("._mod", ""), w.detach().cpu().numpy().ravel()))
    return out


def _histograms(plt: Any, p: PlotInputs) -> Any:
    floats = _float_weights(p.float_net)
    ints = [
        ("weights_in", p.spec.weights_in, p.ptq_spec.weights_in),
        ("weights_rec", p.spec.weights_rec, p.ptq_spec.weights_rec),
        ("weights_out", p.spec.weights_out, p.ptq_spec.weights_out),
    ]
    ints = [t for t in ints if np.any(t[1]) or np.any(t[2])]
    cols = max(len(floats), len(ints))
    fig, axes = plt.subplots(2, cols, figsize=(4.2 * cols, 6.5), squeeze=False)
    for i, (name, w) in enumerate(floats):
        ax = axes[0][i]
        ax.hist(w, bins=60, color="#4c72b0", histtype="stepfilled")
        ax.set_title(f"float {name} (before quantization)", fontsize=9)
        ax.set_xlabel("weight")
        ax.set_yscale("log")
    for i, (name, w, w_ptq) in enumerate(ints):
        ax = axes[1][i]
        nz_q, nz_p = np.ravel(w)[np.ravel(w) != 0], np.ravel(w_ptq)[np.ravel(w_ptq) != 0]
        bins = np.arange(-128, 129, 4)
        ax.hist(nz_p, bins=bins, alpha=0.5, color="#dd8452", label="PTQ", histtype="stepfilled")
        ax.hist(
            nz_q,
            bins=bins,
            alpha=0.6,
            color="#c44e52",
            label="QAT (exported)",
            histtype="stepfilled",
        )
        ax.set_title(f"int8 {name} (after quantization, zeros omitted)", fontsize=9)
        ax.set_xlabel("integer weight")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    for row in axes:
        for ax in row:
            if not ax.has_data():
                ax.axis("off")
    fig.tight_layout()
    return fig


def _raster(plt: Any, p: PlotInputs) -> Any:
    from matplotlib.ticker import MaxNLocator

    from snnqat.devices.xylo import XyloSim

    sim = XyloSim.from_spec(p.spec, p.limits)
    out, _, rec = sim.evolve(p.sample, record=True)
    hidden = np.asarray(rec["Spikes"])
    pred = out.sum(axis=0)
    fig, axes = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    panels = [
        (p.sample, "input spike counts (channels 0-7: row, 8-15: column)"),
        (hidden, f"hidden spike counts ({hidden.shape[1]} neurons)"),
        (out, f"output spikes (true class {p.label}; spike counts per class {pred.tolist()})"),
    ]
    for ax, (data, title) in zip(axes, panels):
        im = ax.imshow(
            np.asarray(data).T, aspect="auto", interpolation="nearest", cmap="Greys", origin="lower"
        )
        fig.colorbar(im, ax=ax, pad=0.01)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("channel / neuron")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlabel("time step")
    fig.suptitle("One test sample on XyloSim (exported spec)")
    fig.tight_layout()
    return fig
