"""The bundled scikit-learn ``digits`` images as spike-count rasters (no download).

Each 8x8 image (pixel intensities 0..16) becomes a raster of ``T = 8 * steps_per_row +
pad_steps`` steps and 16 input channels: at step ``t`` (image row ``r = t // steps_per_row``)
channels 0-7 carry row ``r`` and channels 8-15 carry column ``r`` of the image, each pixel
as a spike count ``min(intensity, 15)`` (Xylo delivers at most 15 input spikes per channel
and step). The image is thus scanned top-down and left-right at the same time. The silent
steps at the end let the last spikes travel through the network: on the chip each
hidden -> output hop costs one step.

Example:
    >>> import numpy as np
    >>> img = np.arange(64).reshape(8, 8) % 17
    >>> r = encode_images(img[None], steps_per_row=2, pad_steps=1)
    >>> r.shape, r.dtype, int(r.max())
    ((1, 17, 16), dtype('int64'), 15)
    >>> r[0, 2, :8].tolist() == np.minimum(img[1], 15).tolist()   # step 2 shows row 1
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from snnqat.training.config import DataConfig

__all__ = ["SpikeData", "encode_images", "load_digits_spikes", "MAX_INPUT_SPIKES", "N_INPUTS"]

MAX_INPUT_SPIKES = 15
"""Input spikes one channel delivers per step on Xylo."""

N_INPUTS = 16
"""Input channels of the encoding (Xylo has 16)."""


@dataclass
class SpikeData:
    """A train/test split of spike rasters.

    Attributes:
        x_train: ``(N, T, 16)`` float tensor of integer spike counts.
        y_train: ``(N,)`` int64 labels.
        x_test: ``(M, T, 16)`` float tensor of integer spike counts.
        y_test: ``(M,)`` int64 labels.
        n_class: Number of classes.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_class: int

    @property
    def steps(self) -> int:
        """Time steps per sample."""
        return int(self.x_train.shape[1])


def encode_images(images: np.ndarray, steps_per_row: int = 2, pad_steps: int = 4) -> np.ndarray:
    """Encode ``(N, 8, 8)`` images with intensities ``>= 0`` as ``(N, T, 16)`` spike counts.

    See the module docstring for the layout.

    Args:
        images: ``(N, 8, 8)`` non-negative intensities (the digits use 0..16).
        steps_per_row: Steps each row/column pair is shown for.
        pad_steps: Silent steps appended.

    Returns:
        ``int64`` counts in ``[0, 15]``, ``T = 8 * steps_per_row + pad_steps``.

    Raises:
        ValueError: ``images`` is not ``(N, 8, 8)`` or has negative values.
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (8, 8):
        raise ValueError(f"images: expected shape (N, 8, 8), got {images.shape}.")
    if (images < 0).any():
        raise ValueError("images: expected non-negative intensities, got negative values.")
    counts = np.minimum(np.rint(images), MAX_INPUT_SPIKES).astype(np.int64)
    frames = np.concatenate([counts, counts.swapaxes(1, 2)], axis=2)  # (N, 8 rows, 16)
    frames = np.repeat(frames, steps_per_row, axis=1)
    pad = np.zeros((len(frames), pad_steps, N_INPUTS), np.int64)
    return np.concatenate([frames, pad], axis=1)


def load_digits_spikes(cfg: DataConfig, seed: int) -> SpikeData:
    """Load ``digits`` (classes ``0..n_class-1``), encode and split it (stratified, seeded).

    Args:
        cfg: Data settings.
        seed: Seeds the subsample (``limit_samples``) and the split.

    Returns:
        The split, with rasters as float tensors (integer values).

    Example:
        >>> d = load_digits_spikes(DataConfig(n_class=8), seed=0)
        >>> d.x_train.shape, d.x_test.shape, d.n_class
        (torch.Size([1082, 20, 16]), torch.Size([361, 20, 16]), 8)
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits(n_class=cfg.n_class)
    images, labels = digits.images, digits.target.astype(np.int64)
    if cfg.limit_samples:
        keep, _ = train_test_split(
            np.arange(len(labels)),
            train_size=cfg.limit_samples,
            stratify=labels,
            random_state=seed,
        )
        images, labels = images[np.sort(keep)], labels[np.sort(keep)]
    raster = encode_images(images, cfg.steps_per_row, cfg.pad_steps)
    x_tr, x_te, y_tr, y_te = train_test_split(
        raster, labels, test_size=cfg.test_fraction, stratify=labels, random_state=seed
    )
    as_x = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    return SpikeData(
        as_x(x_tr), torch.as_tensor(y_tr), as_x(x_te), torch.as_tensor(y_te), cfg.n_class
    )
