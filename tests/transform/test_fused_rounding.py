"""The one-pass rounding of the quantizers equals the reference composition it replaced.

``_reference`` below is the composition of differentiable torch operations and straight-through
Functions that ``stochastic_rounding`` / ``deterministic_rounding`` /
``stochastic_channel_rounding`` used to be (frozen here, independent of the module). The new
implementation must give the same values bitwise (signed zeros included) and the same
gradients to float rounding, also the term that a data-derived range sends into the extreme
elements, on both of its paths: the compiled loops (numba) and the in-place torch chain.
"""

import functools
import itertools
import math

import numpy as np
import pytest
import torch

import snnqat.transform._fused_rounding as fr
from snnqat.transform._rounding import (
    _quantize_composite,
    deterministic_rounding,
    stochastic_channel_rounding,
    stochastic_rounding,
)
from snnqat.transform._ste import clipped_round_passthrough, floor_passthrough

# -- the reference composition (frozen) -------------------------------------------------------


def _safe(x):
    return torch.where(x != 0, x, torch.ones_like(x))


def _grid_step(lo, hi, n, top):
    inf = torch.full_like(lo, math.inf)
    up = torch.where(n > 0, hi / n.clamp(min=1), inf)
    down = torch.where(n < top, -lo / (top - n).clamp(min=1), inf)
    return torch.minimum(up, down)


def _zero_grid(lo, hi, num_levels):
    top = num_levels - 1
    n_star = top * hi / _safe(hi - lo)
    n0 = torch.floor(n_star).clamp(0, top).detach()
    n1 = (n0 + 1).clamp(max=top)
    q0, q1 = _grid_step(lo, hi, n0, top), _grid_step(lo, hi, n1, top)
    n = torch.where(q1 > q0, n1, n0)
    return torch.maximum(q0, q1), n - top


def _zero_index(x, in_lo, in_hi, out_lo, out_hi, num_levels):
    step, base = _zero_grid(out_lo, out_hi, num_levels)
    span_in = in_hi - in_lo
    gain = torch.where(span_in > 0, (out_hi - out_lo) / _safe(span_in), torch.ones_like(span_in))
    return x * gain / _safe(step) - base, step, base, torch.zeros_like(step)


def _affine_index(x, in_lo, in_hi, out_lo, out_hi, num_levels):
    q_in = (in_hi - in_lo) / (num_levels - 1)
    q_out = (out_hi - out_lo) / (num_levels - 1)
    lev = torch.where(q_in > 0, (x - in_lo) / _safe(q_in), (x - out_lo) / _safe(q_out))
    return lev, q_out, torch.zeros_like(q_out), out_lo


def _index_of(value, data, input_range, output_range, num_levels, maintain_zero, dims=None):
    """``(lev, step, base, origin, out_lo, out_hi)`` of ``value``: the range is ``input_range``
    or, when it is ``None``, that of ``data`` over ``dims`` (all by default)."""
    if input_range is None:
        dims = tuple(range(data.ndim)) if dims is None else dims
        if maintain_zero:
            m = data.abs().amax(dim=dims, keepdim=True)
            in_lo, in_hi = -m, m
        else:
            in_lo = data.amin(dim=dims, keepdim=True)
            in_hi = data.amax(dim=dims, keepdim=True)
    else:
        in_lo, in_hi = (value.new_tensor(b) for b in input_range)
    out_lo, out_hi = (
        (in_lo, in_hi) if output_range is None else (value.new_tensor(b) for b in output_range)
    )
    x = torch.clamp(value, in_lo, in_hi)
    index = _zero_index if maintain_zero else _affine_index
    return (*index(x, in_lo, in_hi, out_lo, out_hi, num_levels), out_lo, out_hi)


def _reference(
    value,
    input_range=None,
    output_range=None,
    num_levels=256,
    maintain_zero=True,
    generator=None,
    stochastic=False,
    dims=None,
):
    lev, step, base, origin, out_lo, out_hi = _index_of(
        value, value, input_range, output_range, num_levels, maintain_zero, dims
    )
    if stochastic:
        lev = torch.clamp(lev, 0, num_levels - 1)
        low = floor_passthrough(lev)
        u = torch.rand(lev.shape, dtype=lev.dtype, device=lev.device, generator=generator)
        k = low + ((lev.detach() - low.detach()) > u).to(lev.dtype)
    else:
        k = clipped_round_passthrough(lev, 0, num_levels - 1)
    y = origin + (k + base) * step
    return y + (torch.clamp(y, out_lo, out_hi) - y).detach()


# -- helpers ----------------------------------------------------------------------------------

_INT = {torch.float64: torch.int64, torch.float32: torch.int32}
_INT.update({torch.float16: torch.int16, torch.bfloat16: torch.int16})


def assert_same_bits(new, ref):
    """Bitwise equality (NaN payloads and signed zeros included)."""
    assert new.shape == ref.shape and new.dtype == ref.dtype
    assert torch.equal(new.detach().view(_INT[new.dtype]), ref.detach().view(_INT[ref.dtype]))


def assert_grad_close(new, ref, g):
    """Gradients equal to float rounding.

    The term through a data-derived range is a sum over the tensor of ``|g| * gain`` at most,
    so it is compared with an absolute tolerance of that size times a few ulps.
    """
    eps = torch.finfo(ref.dtype).eps
    gain = float(ref.abs().max() / g.abs().max().clamp(min=1e-30))
    scale = g.abs().sum().item() * max(gain, 1.0)
    torch.testing.assert_close(new, ref, rtol=64 * eps, atol=64 * eps * scale)


@pytest.fixture(params=["fused", "torch"])
def path(request, monkeypatch):
    """Run a test on the compiled loops and on the torch chain."""
    if request.param == "fused":
        if not fr.fused_available():
            pytest.skip("numba is not installed")
    else:
        monkeypatch.setattr(fr, "_kernels", lambda: None)
    return request.param


def run_both(call, reference, x, g, seed=3):
    """Values and gradients of ``call`` and ``reference`` on the same input and seed."""
    results = []
    for fn in (call, reference):
        leaf = x.detach().clone().requires_grad_()
        out = fn(leaf, torch.Generator().manual_seed(seed))
        out.backward(g)
        results.append((out, leaf.grad))
    return results


def data_cases(shape, dtype, seed):
    """Random data, data with ties at both extremes, zeros (both signs), constants."""
    gen = torch.Generator().manual_seed(seed)
    x = 3 * torch.randn(shape, dtype=torch.float64, generator=gen).to(dtype)
    yield "random", x
    if x.numel() >= 4:
        ties = x.clone()
        flat = ties.view(-1)
        m = flat.abs().max()
        flat[:3] = torch.stack([m, -m, m])
        yield "ties", ties
        yield "integers", torch.randint(-3, 4, shape, generator=gen).to(dtype)
    yield "zeros", torch.zeros(shape, dtype=dtype)
    yield "negative-zeros", -torch.zeros(shape, dtype=dtype)
    yield "constant", torch.full(shape, 0.3, dtype=dtype)
    yield "negative-constant", torch.full(shape, -2.5, dtype=dtype)


RANGES = [
    # (input_range, output_range, num_levels)
    (None, None, 256),
    (None, None, 4),
    (None, (-128.0, 127.0), 256),
    (None, (-7.0, 8.0), 16),
    ((-1.5, 2.0), None, 256),
    ((-1.0, 1.0), (-128.0, 127.0), 256),
    ((-0.7, 0.3), (-1.0, 1.0), 3),
]


# -- values and gradients, old vs new ---------------------------------------------------------


def rounding_and_reference(kwargs, stochastic):
    """``stochastic_rounding`` (or ``deterministic_rounding``) with ``kwargs`` and the
    reference with the same arguments, both as ``f(value, generator)``."""

    def call(v, gen):
        if stochastic:
            return stochastic_rounding(v, **kwargs, generator=gen)
        return deterministic_rounding(v, **kwargs)

    def reference(v, gen):
        return _reference(v, **kwargs, generator=gen, stochastic=stochastic)

    return call, reference


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(), (7,), (3, 4, 5)], ids=["0d", "1d", "3d"])
@pytest.mark.parametrize("maintain_zero", [True, False])
@pytest.mark.parametrize("stochastic", [False, True], ids=["det", "sto"])
def test_rounding_equals_reference(path, dtype, shape, maintain_zero, stochastic):
    for input_range, output_range, num_levels in RANGES:
        if not maintain_zero:
            input_range = None if input_range is None else (0.2, 2.0)
            output_range = None if output_range is None else (1.0, 9.0)
        kwargs = dict(
            input_range=input_range,
            output_range=output_range,
            num_levels=num_levels,
            maintain_zero=maintain_zero,
        )
        call, reference = rounding_and_reference(kwargs, stochastic)
        for name, x in data_cases(shape, dtype, seed=len(shape)):
            g = torch.randn(shape, dtype=torch.float64).to(dtype)
            (out, grad), (ref_out, ref_grad) = run_both(call, reference, x, g)
            assert_same_bits(out, ref_out)
            assert_grad_close(grad, ref_grad, g)
            assert name and out.shape == x.shape  # (keeps the case name in the traceback)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("input_range", "output_range"),
    [(None, (-8.0, 7.0)), ((-0.5, 0.5), (-8.0, 7.0)), (None, (-1.0, 1.0))],
)
@pytest.mark.parametrize("maintain_zero", [True, False])
def test_channel_rounding_equals_reference(path, dtype, input_range, output_range, maintain_zero):
    if not maintain_zero:
        output_range = (-9.0, -1.0)
    for name, x in data_cases((5, 3, 4), dtype, seed=11):
        x = x.clone()
        x[:, 1] = 0.0  # an all-zero channel
        g = torch.randn(x.shape, dtype=torch.float64).to(dtype)
        call = lambda v, gen: stochastic_channel_rounding(
            v, output_range, 16, maintain_zero, input_range=input_range, generator=gen
        )
        reference = lambda v, gen: _reference(
            v, input_range, output_range, 16, maintain_zero, gen, stochastic=True, dims=(0, 2)
        )
        (out, grad), (ref_out, ref_grad) = run_both(call, reference, x, g)
        assert_same_bits(out, ref_out)
        assert_grad_close(grad, ref_grad, g)
        assert name


@pytest.mark.parametrize("maintain_zero", [True, False])
def test_values_outside_the_input_range_and_on_its_bounds(path, maintain_zero):
    x = torch.tensor([-5.0, -1.0, -0.999, 0.0, 0.4, 1.0, 1.001, 7.0], dtype=torch.float64)
    g = torch.arange(1.0, 9.0, dtype=torch.float64)
    for stochastic in (False, True):
        kwargs = dict(
            input_range=(-1.0, 1.0),
            output_range=(-10.0, 10.0),
            num_levels=21,
            maintain_zero=maintain_zero,
        )
        call, reference = rounding_and_reference(kwargs, stochastic)
        (out, grad), (ref_out, ref_grad) = run_both(call, reference, x, g)
        assert_same_bits(out, ref_out)
        assert torch.equal(grad, ref_grad)
        assert grad.tolist() == [0, 20, 30, 40, 50, 60, 0, 0]  # gain 10 on [-1, 1]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_values_equal_reference(path, dtype):
    x = 3 * torch.randn(6, 5, dtype=torch.float64).to(dtype)
    g = torch.randn(6, 5).to(dtype)
    for input_range, output_range, num_levels in RANGES:
        for maintain_zero in (True, False):
            if not maintain_zero and input_range is not None:
                continue
            kwargs = dict(
                input_range=input_range,
                output_range=output_range,
                num_levels=num_levels,
                maintain_zero=maintain_zero,
            )
            (out, grad), (ref_out, ref_grad) = run_both(
                lambda v, gen, kw=kwargs: stochastic_rounding(v, **kw, generator=gen),
                lambda v, gen, kw=kwargs: _reference(v, **kw, generator=gen, stochastic=True),
                x,
                g,
            )
            assert_same_bits(out, ref_out)
            # each step of the reference rounds to 8 or 11 bits: compare to that precision
            scale = ref_grad.abs().max().float().item() + g.abs().sum().float().item()
            torch.testing.assert_close(grad.float(), ref_grad.float(), rtol=0.05, atol=scale / 64)


def test_nan_in_the_data_gives_nan_values_like_the_reference(path):
    x = torch.tensor([0.5, float("nan"), -2.0, 1.0])
    for kwargs in (
        {},
        {"output_range": [-128, 127]},
        {"maintain_zero": False},
        {"input_range": [-1, 1], "output_range": [-8, 7], "num_levels": 16},
    ):
        out = deterministic_rounding(x, **kwargs)
        ref_kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
        assert_same_bits(out, _reference(x, **ref_kwargs))


def test_seeded_stochastic_draws_are_those_of_the_reference(path):
    # the same uniform draws, from the generator and from the global generator
    x = torch.randn(40, 30)
    kwargs = dict(output_range=(-7.0, 8.0), num_levels=16)
    out = stochastic_rounding(x, **kwargs, generator=torch.Generator().manual_seed(9))
    ref = _reference(x, **kwargs, generator=torch.Generator().manual_seed(9), stochastic=True)
    assert_same_bits(out, ref)
    torch.manual_seed(5)
    out = stochastic_rounding(x, num_levels=8)
    torch.manual_seed(5)
    assert_same_bits(out, _reference(x, num_levels=8, stochastic=True))


# -- the paths of round_onto_grid -------------------------------------------------------------


def test_no_grad_non_contiguous_and_leaf_inputs(path):
    base = 3 * torch.randn(6, 8, dtype=torch.float64)
    for x in (base, base.t(), base[:, ::2], base.requires_grad_()):
        ref = _reference(x.detach(), output_range=(-8.0, 7.0), num_levels=16)
        assert_same_bits(deterministic_rounding(x, output_range=[-8, 7], num_levels=16), ref)
        with torch.no_grad():
            out = deterministic_rounding(x, output_range=[-8, 7], num_levels=16)
        assert_same_bits(out, ref)
        assert out.grad_fn is None


def test_output_requires_grad_only_with_the_input():
    x = torch.randn(5)
    assert not deterministic_rounding(x).requires_grad
    assert deterministic_rounding(x.requires_grad_()).requires_grad


@pytest.mark.skipif(not fr.fused_available(), reason="numba is not installed")
@pytest.mark.parametrize("maintain_zero", [True, False])
@pytest.mark.parametrize("output_range", [None, (-128.0, 127.0)])
def test_threaded_pieces_equal_one_piece(monkeypatch, maintain_zero, output_range):
    # several pieces (one per thread) and several blocks per piece, ties in two pieces
    x = torch.randn(9000, dtype=torch.float64)
    x[10], x[8000] = 5.0, 5.0
    x[4000] = -5.0
    g = torch.randn(9000, dtype=torch.float64)
    kwargs = dict(output_range=output_range, maintain_zero=maintain_zero)
    threads = torch.get_num_threads()
    results = []
    monkeypatch.setattr(fr, "ONE_CALL_MAX", 0)  # the threaded pieces, not the one-call path
    for min_chunk, n_threads in ((1 << 30, 1), (1000, 3)):
        monkeypatch.setattr(fr, "MIN_CHUNK", min_chunk)
        torch.set_num_threads(n_threads)
        try:
            results += run_both(
                lambda v, gen: stochastic_rounding(v, **kwargs, generator=gen),
                lambda v, gen: _reference(v, **kwargs, generator=gen, stochastic=True),
                x,
                g,
            )
        finally:
            torch.set_num_threads(threads)
    (one, one_grad), (ref, ref_grad), (many, many_grad), _ = results
    assert_same_bits(one, ref)
    assert_same_bits(many, ref)
    assert_grad_close(many_grad, ref_grad, g)
    assert_grad_close(one_grad, ref_grad, g)


@pytest.mark.parametrize(
    ("input_range", "output_range", "maintain_zero"),
    [((-1.0, 1.0), (-8.0, 7.0), True), (None, (-8.0, 7.0), True), (None, None, False)],
)
def test_create_graph_keeps_the_gradient_differentiable(
    path, input_range, output_range, maintain_zero
):
    # d(grad x)/d(grad out) is the transposed straight-through Jacobian, as in the reference
    x = torch.randn(5, 4, dtype=torch.float64)
    w = torch.randn(5, 4, dtype=torch.float64)
    kwargs = dict(input_range=input_range, output_range=output_range, num_levels=16)
    results = []
    for fn in (deterministic_rounding, _reference):
        leaf = x.clone().requires_grad_()
        g = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        g.requires_grad_()
        out = fn(leaf, **kwargs, maintain_zero=maintain_zero)
        (grad_x,) = torch.autograd.grad(out, leaf, g, create_graph=True)
        results.append((grad_x.detach(), torch.autograd.grad((grad_x * w).sum(), g)[0]))
    (grad_x, second), (ref_grad_x, ref_second) = results
    assert_grad_close(grad_x, ref_grad_x, g.detach())
    assert_grad_close(second, ref_second, w)


def test_composite_path_equals_reference():
    # what runs under torch.func and torch.compile
    x = torch.randn(4, 6, dtype=torch.float64)
    g = torch.randn(4, 6, dtype=torch.float64)
    for input_range, output_range, num_levels in RANGES:
        for maintain_zero, stochastic in itertools.product((True, False), (True, False)):
            if not maintain_zero and input_range is not None:
                continue
            args = (input_range, output_range, num_levels, maintain_zero)
            (out, grad), (ref, ref_grad) = run_both(
                lambda v, gen, a=args, s=stochastic: _quantize_composite(v, *a, gen, stochastic=s),
                lambda v, gen, a=args, s=stochastic: _reference(v, *a, gen, stochastic=s),
                x,
                g,
            )
            assert_same_bits(out, ref)
            assert torch.equal(grad, ref_grad)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_torch_func_uses_the_composition():
    x = torch.randn(3, 5, dtype=torch.float64)
    fn = functools.partial(deterministic_rounding, output_range=[-8, 7], num_levels=16)
    leaf = x.clone().requires_grad_()
    fn(leaf).sum().backward()
    assert torch.allclose(torch.func.grad(lambda v: fn(v).sum())(x), leaf.grad)
    assert torch.equal(torch.func.vmap(fn)(x), torch.stack([fn(row) for row in x]))
    jac = torch.func.jacrev(fn)(x[0])
    assert torch.allclose(jac.sum(0), torch.func.grad(lambda v: fn(v).sum())(x[0]))
    assert torch.allclose(torch.func.jacfwd(fn)(x[0]), jac)


# -- gradcheck of the straight-through gradient -----------------------------------------------


def straight_through(fn, surrogate):
    """``fn``'s value, ``surrogate``'s numeric Jacobian, ``fn``'s analytic one."""

    def check(x):
        y = fn(x)
        return y - y.detach() + surrogate(x).detach()

    return check


def ste_surrogate(x0, input_range, output_range, num_levels, maintain_zero, range_term=True):
    """A smooth function whose derivative at ``x0`` is the straight-through gradient.

    The reference with the rounded index ``k0``, the mask and ``lev0`` frozen at ``x0``:
    ``S(v) = origin + (k0 + base) step + step mask0 (lev(v) - lev0)``, where ``origin``,
    ``step`` and ``lev`` follow the range of ``v`` (of the data, when it is not given). Its
    derivative is ``step mask0 dlev + (k0 + base) dstep + d origin``: the documented gradient,
    the term through a data-derived range included (left out with ``range_term=False``).
    """

    def parts(v):
        data = v if range_term else x0  # the range of v, or frozen at x0
        return _index_of(v, data, input_range, output_range, num_levels, maintain_zero)[:4]

    top = num_levels - 1
    lev0 = parts(x0)[0].detach()
    mask0 = (lev0 >= 0) & (lev0 <= top)
    k0 = torch.clamp(torch.round(lev0), 0, top)

    def surrogate(v):
        lev, step, base, origin = parts(v)
        return origin + (k0 + base) * step + step * mask0 * (lev - lev0)

    return surrogate


@pytest.mark.parametrize(
    ("input_range", "output_range", "num_levels", "maintain_zero"),
    [
        (None, None, 256, True),
        (None, (-128.0, 127.0), 256, True),
        (None, None, 16, False),
        (None, (-2.0, 5.0), 16, False),
        ((-1.0, 1.5), (-8.0, 7.0), 16, True),
        ((-1.0, 1.5), None, 9, False),
    ],
)
def test_gradcheck_straight_through_with_range_term(
    path, input_range, output_range, num_levels, maintain_zero
):
    gen = torch.Generator().manual_seed(7)
    x = (2 * torch.rand(12, dtype=torch.float64, generator=gen) - 0.8).requires_grad_()
    kwargs = dict(
        input_range=input_range,
        output_range=output_range,
        num_levels=num_levels,
        maintain_zero=maintain_zero,
    )
    fn = functools.partial(deterministic_rounding, **kwargs)
    surrogate = ste_surrogate(x.detach().clone(), **kwargs)
    assert torch.equal(fn(x), surrogate(x).detach())
    assert torch.autograd.gradcheck(straight_through(fn, surrogate), (x,))


@pytest.mark.parametrize("maintain_zero", [True, False])
def test_gradcheck_detects_a_missing_range_term(path, maintain_zero):
    # without the term through the data-derived range the check fails: the one above is not
    # vacuous
    x = (2 * torch.rand(12, dtype=torch.float64) - 0.8).requires_grad_()
    kwargs = dict(input_range=None, output_range=None, num_levels=16, maintain_zero=maintain_zero)
    fn = functools.partial(deterministic_rounding, **kwargs)
    surrogate = ste_surrogate(x.detach().clone(), **kwargs, range_term=False)
    assert not torch.autograd.gradcheck(
        straight_through(fn, surrogate), (x,), raise_exception=False
    )


# -- kernels ----------------------------------------------------------------------------------


@pytest.mark.skipif(not fr.fused_available(), reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_rounding_is_ties_to_even(dtype):
    from snnqat.transform import _fused_kernels as kernels

    lev = np.array([0.5, 1.5, 2.5, 3.49, 254.5, 253.5, 0.0, 255.0, 7.0], dtype=dtype)
    nmant = np.finfo(dtype).nmant
    params = np.array([-1e3, 1e3, 0, 1, 1, 0, 255, 1, 0, -1e3, 1e3, 2.0**nmant, 0, 1], dtype)
    out = np.empty_like(lev)
    kernels.forward(lev, None, out, None, params)
    assert out.tolist() == np.round(lev).tolist() == [0, 2, 2, 3, 254, 254, 0, 255, 7]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("kind", ["det", "sto", "chan"])
def test_cuda_equals_reference(kind):
    x = (3 * torch.randn(64, 200, 16, device="cuda")).requires_grad_()
    g = torch.randn(x.shape, device="cuda")
    for input_range, output_range, num_levels in RANGES:
        if kind == "chan" and output_range is None:
            continue
        args = (input_range, output_range, num_levels, True)
        if kind == "det":
            call = lambda v, gen, a=args: deterministic_rounding(v, *a)
        elif kind == "sto":
            call = lambda v, gen, a=args: stochastic_rounding(v, *a, generator=gen)
        else:
            call = lambda v, gen, a=args: stochastic_channel_rounding(
                v, a[1], a[2], input_range=a[0], generator=gen
            )
        dims = (0, 2) if kind == "chan" else None
        results = []
        reference = functools.partial(_reference, stochastic=kind != "det", dims=dims)
        for fn in (call, lambda v, gen, a=args, ref=reference: ref(v, *a, gen)):
            leaf = x.detach().clone().requires_grad_()
            out = fn(leaf, torch.Generator(device="cuda").manual_seed(1))
            out.backward(g)
            results.append((out, leaf.grad))
        (out, grad), (ref, ref_grad) = results
        assert out.device == x.device
        assert_same_bits(out, ref)
        assert_grad_close(grad, ref_grad, g)


# -- the one-call path for a range taken from the data ----------------------------------------


def _bounds_strategy():
    from hypothesis import strategies as st

    special = st.sampled_from([0.0, -0.0, 1e-38, -1e-38, 1e-300, math.inf, -math.inf, math.nan])
    return st.one_of(st.floats(-1e6, 1e6, allow_subnormal=True), special)


@pytest.mark.skipif(not fr.fused_available(), reason="numba is not installed")
def test_grid_is_the_same_in_python_and_compiled():
    # fill_grid runs as Python on numpy scalars and compiled inside the loops: the same bits
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from snnqat.transform import _fused_kernels, _grid

    compiled = _fused_kernels._fill_grid

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(_bounds_strategy(), min_size=4, max_size=4),
        st.sampled_from([np.float32, np.float64]),
        st.integers(2, 256),
        st.booleans(),
    )
    def check(bounds, ftype, num_levels, maintain_zero):
        with np.errstate(all="ignore"):
            b = [ftype(v) for v in bounds]
            py, nb = _grid.template(ftype, num_levels), _grid.template(ftype, num_levels)
            _grid.fill_grid(py, *b, maintain_zero)
        compiled(nb, *b, maintain_zero)
        assert py.tobytes() == nb.tobytes(), dict(zip(_grid.LAYOUT, zip(py, nb)))

    check()


def test_grid_of_a_known_range():
    from snnqat.transform import _grid

    p = _grid.template(np.float64, 256, -128.0, 127.0)
    _grid.fill_grid(p, -2.0, 2.0, -128.0, 127.0, True)
    g = fr.grid_of(p, True)
    assert (g.step, g.base, g.gain, g.factor, g.top) == (1.0, -128.0, 63.75, 63.75, 255.0)
    assert dict(zip(_grid.LAYOUT, p.tolist()))["spread"] == 4.0 / 255


@pytest.mark.skipif(not fr.fused_available(), reason="numba is not installed")
def test_weights_take_the_one_call_path_and_others_do_not(monkeypatch):
    import snnqat.transform._rounding as rounding

    resolved = []
    real = rounding._resolve_grid
    monkeypatch.setattr(rounding, "_resolve_grid", lambda *a: resolved.append(1) or real(*a))
    w = torch.randn(64, 64, requires_grad=True)
    for fn in (deterministic_rounding, stochastic_rounding):
        fn(w, num_levels=16).sum().backward()
        fn(w, output_range=[-8, 7], num_levels=16)
    assert resolved == []  # range, grid and rounding were one compiled call
    big = torch.randn(fr.ONE_CALL_MAX + 1)
    for call in (
        lambda: deterministic_rounding(big),  # torch's reduction, threaded pieces instead
        lambda: deterministic_rounding(w.detach().t()),  # not contiguous
        lambda: deterministic_rounding(w, maintain_zero=False),
        lambda: deterministic_rounding(w, input_range=[-1, 1]),
        lambda: stochastic_channel_rounding(w, output_range=[-8, 7]),
    ):
        before = len(resolved)
        call()
        assert len(resolved) == before + 1


@pytest.mark.skipif(not fr.fused_available(), reason="numba is not installed")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("output_range", [None, (-8.0, 7.0)])
def test_one_call_path_equals_the_resolved_grid_path(monkeypatch, dtype, output_range):
    # the same values bitwise and the same gradients as resolving the grid first (ties included)
    x = 3 * torch.randn(40, 30, dtype=torch.float64).to(dtype)
    x.view(-1)[:3] = torch.stack([x.abs().max(), -x.abs().max(), x.abs().max()])
    g = torch.randn(40, 30, dtype=torch.float64).to(dtype)
    kwargs = dict(output_range=output_range, num_levels=16)
    results = []
    for fusable in (fr.data_range_fusable, lambda v: False):
        monkeypatch.setattr("snnqat.transform._rounding.data_range_fusable", fusable)
        results += run_both(
            lambda v, gen: stochastic_rounding(v, **kwargs, generator=gen),
            lambda v, gen: deterministic_rounding(v, **kwargs),
            x,
            g,
        )
    (sto, sto_g), (det, det_g), (sto_ref, sto_g_ref), (det_ref, det_g_ref) = results
    assert_same_bits(sto, sto_ref)
    assert_same_bits(det, det_ref)
    assert torch.equal(sto_g, sto_g_ref) and torch.equal(det_g, det_g_ref)


@pytest.mark.skipif(not fr.fused_available(), reason="numba is not installed")
@pytest.mark.parametrize("ftype", [np.float32, np.float64])
def test_abs_max_of_the_one_call_path(ftype):
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    from snnqat.transform._fused_kernels import abs_max

    utype, magnitude = fr._BITS[ftype]
    width = 32 if ftype is np.float32 else 64
    specials = st.sampled_from([-0.0, np.inf, -np.inf, np.nan, -np.nan])
    elements = st.floats(width=width, allow_nan=True) | specials

    @settings(max_examples=300, deadline=None)
    @given(arrays(ftype, st.integers(1, 70), elements=elements))
    def check(x):
        got, nan = abs_max(x, x.view(utype), magnitude)
        assert nan == bool(np.isnan(x).any())
        if nan:
            assert np.isnan(got)
        else:
            assert got == np.abs(x).max() and not np.signbit(got)

    check()
