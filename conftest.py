"""Repository-level pytest configuration (doctest collection of ``src/snnqat``).

The compiled CPU loops import numba at module level; without numba (an optional extra,
``pip install snnqat[fast]``) their modules are not collected, and the rest of the package
runs its pure-torch paths.
"""

import importlib.util

collect_ignore = []
if importlib.util.find_spec("numba") is None:
    collect_ignore += [
        "src/snnqat/kernels/_numba_lif.py",
        "src/snnqat/transform/_fused_kernels.py",
    ]
