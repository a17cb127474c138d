"""Whether ``torch.autocast`` is active for a device type, on every supported torch."""

from __future__ import annotations

import torch

__all__ = ["autocast_on"]


def autocast_on(device_type: str) -> bool:
    """Whether autocast is active for ``device_type`` (torch >= 2.4 takes the device type;
    before, one switch per device family).

    Example:
        >>> autocast_on("cpu")
        False
        >>> with torch.autocast("cpu"):
        ...     autocast_on("cpu")
        True
    """
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4
        if device_type == "cpu":
            return torch.is_autocast_cpu_enabled()
        return torch.is_autocast_enabled()
