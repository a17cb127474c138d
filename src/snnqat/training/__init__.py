"""Training: spike-encoded data, the float -> QAT -> export -> simulate pipeline, reports.

* :mod:`~snnqat.training.config`: self-validating settings (TOML or built in).
* :mod:`~snnqat.training.data`: the bundled ``digits`` as spike-count rasters.
* :mod:`~snnqat.training.model`: the Xylo-compatible network, readout, stage transforms.
* :mod:`~snnqat.training.loop`: epochs, evaluation, data order.
* :mod:`~snnqat.training.distributed`: process group, DDP.
* :mod:`~snnqat.training.checkpoint`: atomic checkpoints, random-number states.
* :mod:`~snnqat.training.report`: ``report.json``, ``report.md``, plots.
* :mod:`~snnqat.training.pipeline`: :func:`run`, the whole job.
"""

from snnqat.training.config import TrainConfig, demo_config, load_config, tiny_config
from snnqat.training.pipeline import run

__all__ = ["TrainConfig", "demo_config", "load_config", "tiny_config", "run"]
