"""reuse_freed_memory: freed large tensors are reused instead of page-faulted again."""

import resource
import subprocess
import sys

import pytest

CHILD = """
import resource, sys, torch
from snnqat.utilities import reuse_freed_memory
if sys.argv[1] == "on":
    assert reuse_freed_memory()
n = 40 * 2**20 // 4  # 40 MB: above glibc's largest dynamic mmap threshold (32 MB)
for _ in range(2):  # warm-up
    x = torch.empty(n); x.fill_(1); del x
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):
    x = torch.empty(n); x.fill_(1); del x
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc setting")
def test_freed_large_tensors_are_reused_without_page_faults():
    pages = 40 * 2**20 // resource.getpagesize()
    assert _faults("off") >= 6 * pages  # every fresh 40 MB tensor is faulted in again
    assert _faults("on") < 2 * pages  # the freed block is reused
