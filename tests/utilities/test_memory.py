"""reuse_freed_memory: freed large tensors are reused instead of page-faulted again."""

import resource
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc setting")

MB40 = 40 * 2**20  # above glibc's largest dynamic mmap threshold (32 MB)

# How glibc serves one live 40 MB tensor: bytes in mmap-ed chunks (mallinfo2's hblkhd).
# glibc's record of the bytes it serves from mmap-ed chunks (mallinfo2's hblkhd), then how it
# serves one live 40 MB tensor.
MALLINFO = """
import ctypes, sys, torch
class Info(ctypes.Structure):
    names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    _fields_ = [(f, ctypes.c_size_t) for f in names.split()]
libc = ctypes.CDLL("libc.so.6")
if not hasattr(libc, "mallinfo2"):
    print(-1); sys.exit()
libc.mallinfo2.restype = Info
"""
TENSOR_40MB = """
before = libc.mallinfo2().hblkhd
x = torch.empty(40 * 2**20 // 4)
print(libc.mallinfo2().hblkhd - before)
"""
MMAPPED_CHILD = (
    MALLINFO
    + """
from snnqat.utilities import reuse_freed_memory
if sys.argv[1] == "on":
    assert reuse_freed_memory()
"""
    + TENSOR_40MB
)

# Minor page faults of 16 fresh 40 MB tensors, after a warm-up in which the heap settles.
FAULTS_CHILD = """
import resource, sys, torch
from snnqat.utilities import reuse_freed_memory
if sys.argv[1] == "on":
    assert reuse_freed_memory()
n = 40 * 2**20 // 4
for _ in range(4):  # warm-up: the heap grows until a freed block fits the next tensor
    x = torch.empty(n); x.fill_(1); del x
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(16):
    x = torch.empty(n); x.fill_(1); del x
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _child(code: str, mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", code, mode], capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip())


def test_large_tensors_come_from_the_heap_instead_of_mmap():
    off = _child(MMAPPED_CHILD, "off")
    if off < 0:
        pytest.skip("glibc without mallinfo2 (< 2.33)")
    assert off >= MB40  # glibc's default: a fresh mmap for the tensor, unmapped on free
    assert _child(MMAPPED_CHILD, "on") == 0  # served from (and freed back to) the heap


def _thp_always() -> bool:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[always]" in f.read()
    except OSError:
        return False


@pytest.mark.skipif(_thp_always(), reason="huge pages: a fresh tensor costs few page faults")
def test_freed_large_tensors_are_reused_without_page_faults():
    pages = MB40 // resource.getpagesize()
    off = _child(FAULTS_CHILD, "off")
    on = _child(FAULTS_CHILD, "on")
    assert off >= 12 * pages  # every fresh 40 MB tensor is faulted in again
    # The freed block is reused. (A tensor can still land on new heap pages when small
    # allocations have split the freed block, so allow a few of the 16 to fault.)
    assert on <= off // 4


# A LIF layer's first call (training or not), then where a 40 MB tensor comes from.
LIF_CHILD = (
    MALLINFO
    + """
from snnqat.nn.modules import LIFTorch
with torch.set_grad_enabled(sys.argv[1] == "train"):
    LIFTorch(2)(torch.ones(1, 3, 2))
"""
    + TENSOR_40MB
)


@pytest.mark.parametrize(
    ("mode", "env", "applied"),
    [("train", None, True), ("train", "0", False), ("infer", None, False)],
)
def test_a_lif_layer_applies_it_at_its_first_training_call(monkeypatch, mode, env, applied):
    if env is None:
        monkeypatch.delenv("SNNQAT_REUSE_FREED_MEMORY", raising=False)
    else:
        monkeypatch.setenv("SNNQAT_REUSE_FREED_MEMORY", env)
    mmapped = _child(LIF_CHILD, mode)
    if mmapped < 0:
        pytest.skip("glibc without mallinfo2 (< 2.33)")
    assert (mmapped == 0) == applied


def test_for_training_applies_once(monkeypatch):
    import snnqat.utilities.memory as memory

    calls = []
    monkeypatch.setattr(memory, "reuse_freed_memory", lambda: calls.append(1) or True)
    monkeypatch.setattr(memory, "_TRAINING_DONE", False)
    monkeypatch.delenv("SNNQAT_REUSE_FREED_MEMORY", raising=False)
    assert memory.reuse_freed_memory_for_training() is True
    assert memory.reuse_freed_memory_for_training() is False
    assert calls == [1]
