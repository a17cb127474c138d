"""torch's BLAS routine called from compiled code (:mod:`snnqat.kernels._blas`)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("numba")

from snnqat.kernels import _blas  # noqa: E402
from snnqat.kernels import _numba_lif as nb  # noqa: E402

needs_gemm = pytest.mark.skipif(
    _blas.gemm_address(np.float32) is None or _blas.gemm_address(np.float64) is None,
    reason="this torch build exports no ?gemm",
)


@needs_gemm
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transposed", [False, True])
def test_gemm_rows_on_strided_rows_equals_numpy(dtype, transposed):
    """Rows 2-5 of step 3 of a (B, T, K) array times W (or Wᵀ), written into rows 1-4 of C."""
    rng = np.random.default_rng(1)
    b, t, k, n = 7, 5, 6, 9
    a = rng.standard_normal((b, t, k)).astype(dtype)
    w = rng.standard_normal((n, k) if transposed else (k, n)).astype(dtype)
    c = np.full((6, n), 7.0, dtype)
    scratch = np.zeros(9, np.int64)
    _blas.gemm_rows(
        _blas.gemm_address(dtype), 4, n, k, a, (2 * t + 3) * k, t * k, w, transposed, c, n, scratch
    )
    expected = a[2:6, 3] @ (w.T if transposed else w)
    np.testing.assert_allclose(c[1:5], expected, rtol=1e-5 if dtype == np.float32 else 1e-12)
    assert (c[0] == 7.0).all() and (c[5] == 7.0).all()  # rows outside C untouched


@needs_gemm
@pytest.mark.parametrize("rows", [4, 32, 64])
def test_gemm_rows_equals_torch_mm_bitwise(rows):
    """The routine torch.mm calls for these float32 products: the same bits."""
    gen = torch.Generator().manual_seed(rows)
    s = torch.randint(0, 4, (rows, 20, 256), generator=gen).float()
    w = torch.randn(256, 256, generator=gen)
    c = np.zeros((rows, 256), np.float32)
    scratch = np.zeros(9, np.int64)
    _blas.gemm_rows(
        _blas.gemm_address(np.float32), rows, 256, 256, s.numpy(), 7 * 256, 20 * 256, w.numpy(),
        False, c, 0, scratch,
    )  # fmt: skip
    assert torch.equal(torch.from_numpy(c), torch.mm(s[:, 7], w))


@needs_gemm
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_time_loop_equals_the_python_loop_bitwise(dtype, monkeypatch):
    """Forward and backward of a recurrent layer with the products in the compiled loop and
    between compiled steps in Python: the same values, bit for bit, on 2 threads."""
    monkeypatch.setattr(nb, "BLAS_STEP_MIN_MACS", 0)
    monkeypatch.setattr(nb, "PY_BLAS_STEP_MIN_MACS", 0)
    monkeypatch.setattr(nb, "MIN_WORK_PER_THREAD", 1)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(0)
    b, t, n = 10, 37, 12
    x = (torch.randn(b, t, n, 1, generator=gen, dtype=dtype) * 0.6 + 0.3).requires_grad_()
    w_rec = (torch.randn(n, n, generator=gen, dtype=dtype) * 0.3).requires_grad_()
    inputs = (
        torch.zeros(b, n, dtype=dtype), torch.zeros(b, n, 1, dtype=dtype),
        torch.zeros(b, n, dtype=dtype), torch.full((n,), 0.9, dtype=dtype),
        torch.full((n, 1), 0.8, dtype=dtype), torch.zeros(n, dtype=dtype),
        torch.ones(n, dtype=dtype),
    )  # fmt: skip
    g = torch.randn(b, t, n, generator=gen, dtype=dtype)
    need = (True, False, False, False, True, True, True, True, True, False, False, False)

    def run():
        out = nb.forward(x, *inputs, w_rec, None, 31.0, False)
        spikes, ckpt, a = out[0], out[7], out[8]
        saved = (ckpt, spikes, a, inputs[0], inputs[2], *inputs[3:5], inputs[6], w_rec, x, None,
                 inputs[5])  # fmt: skip
        grads = nb.backward(saved, (g, None, None, None), need, "step_pwl", 0.5, 31.0)
        return out, grads

    try:
        compiled = run()
        monkeypatch.setattr(nb, "_gemm_routine", lambda dt: None)
        python = run()
    finally:
        torch.set_num_threads(threads)
    assert compiled[0][0].sum() > 0  # the layer spikes
    for got, want in zip((*compiled[0], *compiled[1]), (*python[0], *python[1])):
        assert (got is None) == (want is None)
        if got is not None:
            assert torch.equal(got, want)


def test_importing_the_loops_does_not_run_the_self_check():
    """The self-check (loading the compiled product, about half a second) waits for the first
    layer that needs it: importing the numba loops leaves it undone."""
    code = (
        "import snnqat.kernels._numba_lif\n"
        "from snnqat.kernels import _blas\n"
        "assert _blas._routines.cache_info().currsize == 0\n"
        "_blas.gemm_address(__import__('numpy').float32)\n"
        "assert _blas._routines.cache_info().currsize == 1\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
