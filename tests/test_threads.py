"""snnqat._threads: the thread split, the worker pool and the flush-to-zero context."""

import threading

import pytest
import torch

from snnqat._threads import DenormalsFlushed, run_pieces, split

SUBNORMAL = 1e-40  # a float32 subnormal (the smallest normal float32 is 1.18e-38)


def _product() -> float:
    return (torch.tensor([SUBNORMAL]) * 1.0).item()


@pytest.fixture
def flushing_supported():
    with DenormalsFlushed() as flushed:
        if not flushed.active:
            pytest.skip("this CPU or C library cannot flush subnormals")


def test_subnormals_are_flushed_inside_and_kept_after(flushing_supported):
    assert _product() == pytest.approx(SUBNORMAL, rel=1e-3)
    with DenormalsFlushed():
        assert _product() == 0.0
    assert _product() == pytest.approx(SUBNORMAL, rel=1e-3)


def test_a_thread_that_already_flushes_keeps_flushing(flushing_supported):
    torch.set_flush_denormal(True)
    try:
        with DenormalsFlushed():
            pass
        assert _product() == 0.0  # the environment before the context is restored
    finally:
        torch.set_flush_denormal(False)
    assert _product() > 0.0


def test_run_pieces_flushes_on_every_thread_and_restores(flushing_supported):
    seen = {}
    barrier = threading.Barrier(3)  # every piece waits for the others: three threads at once

    def piece(c: int, a: int, b: int) -> float:
        seen[c] = threading.get_ident()
        barrier.wait(timeout=30)
        return _product()

    assert run_pieces(piece, [(0, 1), (1, 2), (2, 3)], flush_denormals=True) == [0.0] * 3
    assert len(set(seen.values())) == 3  # the first here, two on the pool
    assert run_pieces(piece, [(0, 1), (1, 2), (2, 3)]) == [pytest.approx(SUBNORMAL, rel=1e-3)] * 3
    assert _product() > 0.0


def test_split_gives_contiguous_balanced_ranges():
    threads = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        assert split(10, 10**9, 1) == [(0, 3), (3, 6), (6, 10)]
        assert split(10, 2 * 100, 100) == [(0, 5), (5, 10)]  # work for two threads only
        assert split(2, 10**9, 1) == [(0, 1), (1, 2)]  # at most one range per unit
        assert split(10, 5, 100) == [(0, 10)]
    finally:
        torch.set_num_threads(threads)


def test_pieces_run_on_several_threads_and_errors_come_back():
    import threading
    import time

    import snnqat._threads as threads

    seen = set()

    def piece(i, a, b):
        seen.add(threading.get_ident())
        time.sleep(0.02)  # (releases the GIL) long enough for the pieces to overlap
        return i

    if torch.get_num_threads() < 2:
        pytest.skip("one thread")
    assert run_pieces(piece, [(0, 1), (1, 2)]) == [0, 1]
    assert len(seen) == 2

    def failing(i, a, b):
        if i == 1:
            raise ValueError("piece 1 failed")
        return i

    with pytest.raises(ValueError, match="piece 1 failed"):
        run_pieces(failing, [(0, 1), (1, 2)])
    # a team smaller than the pieces still runs every piece
    job = threads._Job(lambda i, a, b: (i, a, b), [(0, 1), (1, 2), (2, 3)])
    job.run(0, 1)
    assert job.results == [(0, 0, 1), (1, 1, 2), (2, 2, 3)]


def test_torch_openmp_team_is_used_where_torch_ships_libgomp():
    import glob
    import os

    import snnqat._threads as threads

    shipped = glob.glob(os.path.join(os.path.dirname(torch.__file__), "lib", "libgomp*.so*"))
    openmp = "parallel backend: OpenMP" in torch.__config__.parallel_info()
    assert (threads._openmp() is not None) == bool(shipped and openmp)


def test_a_forked_child_uses_the_pool():
    import os
    import warnings

    import snnqat._threads as threads

    if not hasattr(os, "fork"):
        pytest.skip("no fork")
    threads._openmp()
    with warnings.catch_warnings():  # (3.12+ warns about fork in a threaded process)
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # child: the parent's OpenMP threads do not exist here
        ok = threads._openmp() is None and run_pieces(lambda i, a, b: i, [(0, 1), (1, 2)]) == [0, 1]
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
