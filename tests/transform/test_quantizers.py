"""Element-wise transforms: reference numbers, decisions 11-17 and 26, properties, errors."""

import copy
import functools
import math
import pickle

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from snnqat.transform._quantizers import (
    MAX_DASH,
    LSQQuantizer,
    chain,
    class_calc_q_decay,
    deterministic_rounding,
    dropout,
    gaussian_mismatch,
    int_quant,
    lsq_quantizer,
    magnitude_prune,
    quantization_levels,
    round_bitshift,
    stochastic_channel_rounding,
    stochastic_rounding,
    t_decay,
)
from snnqat.transform._ste import round_passthrough

SLOW = settings(deadline=None, max_examples=60)


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(20240601)


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def t(*values):
    return torch.tensor(values, dtype=torch.float64)


def straight_through(fn, surrogate):
    """Numeric Jacobian of ``surrogate``, analytic Jacobian of ``fn``'s backward (one call)."""

    def check(x):
        y = fn(x)
        return y - y.detach() + surrogate(x).detach()

    return check


def away_from(points, x, margin=1e-3):
    for p in points:
        x = torch.where((x - p).abs() < margin, x + 2 * margin, x)
    return x


def assert_on_levels(out, levels):
    out, levels = out.detach().double().reshape(-1, 1), levels.double().reshape(1, -1)
    distance = (out - levels).abs().min(dim=1).values
    assert distance.max() <= 1e-9 * max(1.0, levels.abs().max().item())


# -- reference numbers ------------------------------------------------------------------------


@pytest.mark.parametrize("maintain_zero", [True, False])
def test_deterministic_rounding_reference_values(maintain_zero):
    out = deterministic_rounding(t(-1, -0.5, 0, 0.5, 1), num_levels=3, maintain_zero=maintain_zero)
    assert out.tolist() == [-1, -1, 0, 1, 1]


def test_int_quant_reference_values():
    x = t(-1, -0.5, 0.25, 0, 0.25, 0.5, 1)
    assert int_quant(x, n_bits=3).tolist() == [-3, -2, 1, 0, 1, 2, 3]
    assert int_quant(x, n_bits=3, map_to_max=True).tolist() == [-127, -64, 32, 0, 32, 64, 127]


def test_t_decay_reference_values_with_decay_one_at_max_shift():
    out = t_decay(t(0.4156, 0.8306, 0.1557, 0.9475, 0.5, 0.99, 1.0, 0.0))
    expected = t(0, 0.75, 0, 0.9375, 0.5, 1 - 2**-7, 1 - 2**-15, 0)
    assert torch.equal(out, expected)


def test_class_calc_q_decay_matches_t_decay():
    decay = t(0.4156, 0.8306, 0.1557, 0.9475, 0.5, 0.99, 1.0, 0.0)
    q = class_calc_q_decay(1e-3)
    assert torch.equal(q(decay), t_decay(decay))
    assert torch.equal(q.calc_bitshift_decay(decay), t_decay(decay))
    assert q(decay).grad_fn is None
    assert repr(q) == "class_calc_q_decay(dt=0.001)"


def test_fixed_range_gradient_is_q_out_over_q_in():
    x = t(-2.9, -1.0, 0.4, 2.2).requires_grad_()
    for rounding in (deterministic_rounding, stochastic_rounding):
        x.grad = None
        rounding(x, input_range=[-3, 3], output_range=[-30, 30], num_levels=61).sum().backward()
        assert x.grad.tolist() == [10.0] * 4


def test_seed_call_gives_integers_in_range_and_keeps_zero(generator):
    w = torch.rand((50, 50), generator=generator) - 0.5
    w[::3] = 0.0
    for _ in range(20):
        out = stochastic_rounding(w, output_range=[-7, 8], num_levels=16, generator=generator)
        assert torch.equal(out, out.round()) and out.min() >= -7 and out.max() <= 8
        assert torch.all(out[w == 0] == 0)


def test_seed_activity_call_gives_int8(generator):
    p = torch.randn(1000, generator=generator)
    out = deterministic_rounding(p, output_range=[-128, 127], num_levels=2**8)
    assert torch.equal(out, out.round()) and out.min() >= -128 and out.max() <= 127
    assert out.max() == 127 or out.min() == -128  # the extreme element spans the range


def test_seed_weight_call_four_levels_on_zero_grid(generator):
    p = torch.randn(200, dtype=torch.float64, generator=generator)
    m = p.abs().max().item()
    out = stochastic_rounding(p, num_levels=2**2, generator=generator)
    assert_on_levels(out, t(-m, -m / 2, 0, m / 2))
    assert torch.all(stochastic_rounding(torch.zeros(5), num_levels=4) == 0)


# -- the level grid ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output_range", "num_levels", "expected"),
    [
        ([-7, 8], 16, list(range(-7, 9))),
        ([-8, 7], 16, list(range(-8, 8))),
        ([-1, 1], 3, [-1, 0, 1]),
        ([-1, 1], 4, [-1, -0.5, 0, 0.5]),
        ([-1, 1], 2, [-1, 0]),
        ([0, 4], 5, [0, 1, 2, 3, 4]),
        ([-4, 0], 3, [-4, -2, 0]),
        ([-1, 3], 3, [0.0, 1.5, 3.0]),  # n=2 above zero: q = min(3/2, inf)
    ],
)
def test_zero_grid_hand_computed(output_range, num_levels, expected):
    assert quantization_levels(output_range, num_levels).tolist() == expected


def test_zero_grid_int8_and_asymmetric():
    assert quantization_levels([-128, 127], 256).tolist() == list(range(-128, 128))
    # [-1, 3], 5 levels: n=3 above zero gives q = min(3/3, 1/1) = 1
    assert quantization_levels([-1, 3], 5).tolist() == [-1, 0, 1, 2, 3]


def test_affine_grid_without_maintain_zero():
    levels = quantization_levels([-1, 1], 4, maintain_zero=False)
    assert torch.allclose(levels, t(-1, -1 / 3, 1 / 3, 1))


@SLOW
@given(
    lo=st.floats(-100, 0),
    hi=st.floats(0, 100),
    num_levels=st.integers(2, 300),
)
def test_zero_grid_properties(lo, hi, num_levels):
    assume(hi - lo > 1e-3)
    levels = quantization_levels([lo, hi], num_levels)
    steps = levels.diff()
    assert len(levels) == num_levels and 0.0 in levels.tolist()
    assert levels.min() >= lo - 1e-12 and levels.max() <= hi + 1e-9 * max(1, hi)
    assert torch.allclose(steps, steps[0].expand_as(steps)) and steps[0] > 0
    # no L-level zero grid inside [lo, hi] has a larger step
    best = max(
        min(
            hi / n if n else math.inf,
            -lo / (num_levels - 1 - n) if n < num_levels - 1 else math.inf,
        )
        for n in range(num_levels)
    )
    assert steps[0].item() == pytest.approx(best)


# -- decision 11: clamping, zero, no NaN ------------------------------------------------------


def test_values_outside_input_range_are_clamped():
    x = t(-2, 0, 2).requires_grad_()
    out = deterministic_rounding(x, input_range=[-1, 1], output_range=[-10, 10], num_levels=21)
    assert out.tolist() == [-10, 0, 10]  # the reference gives [-20, 0, 20]
    out.sum().backward()
    assert x.grad.tolist() == [0.0, 10.0, 0.0]


@pytest.mark.parametrize("num_levels", [2, 4, 16, 256])
def test_even_levels_keep_zero(num_levels, generator):
    x = torch.cat([torch.zeros(5), torch.randn(20, generator=generator)])
    assert torch.all(deterministic_rounding(x, num_levels=num_levels)[:5] == 0)
    out = stochastic_rounding(x, num_levels=num_levels, generator=generator)
    assert torch.all(out[:5] == 0)


@pytest.mark.parametrize("maintain_zero", [True, False])
@pytest.mark.parametrize(
    "call",
    [
        lambda x, mz: stochastic_rounding(x, maintain_zero=mz),
        lambda x, mz: deterministic_rounding(x, maintain_zero=mz),
        lambda x, mz: stochastic_rounding(x, output_range=[-7, 8], num_levels=16, maintain_zero=mz),
        lambda x, mz: deterministic_rounding(
            x, output_range=[-1, 1], num_levels=3, maintain_zero=mz
        ),
        lambda x, mz: stochastic_channel_rounding(x, [-8, 7], 16, maintain_zero=mz),
        lambda x, mz: int_quant(x, maintain_zero=mz),
        lambda x, mz: int_quant(x, maintain_zero=mz, map_to_max=True, n_bits=4),
    ],
)
def test_all_zero_input_gives_zeros_and_finite_gradient(call, maintain_zero):
    x = torch.zeros(4, 3, requires_grad=True)
    out = call(x, maintain_zero)
    assert torch.equal(out, torch.zeros(4, 3))
    out.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_all_zero_input_on_affine_grid_without_zero_goes_to_nearest_level():
    # maintain_zero=False with a grid that lacks 0 (even L on [-1, 1]): nearest level, no NaN
    out = deterministic_rounding(t(0, 0, 0), output_range=[-1, 1], maintain_zero=False)
    levels = quantization_levels([-1, 1], 2**8, maintain_zero=False)
    assert torch.all(out == out[0]) and out[0].abs().item() == pytest.approx(1 / 255)
    assert_on_levels(out, levels)


def test_constant_input_without_maintain_zero_is_unchanged():
    x = torch.full((3,), 0.3)
    assert torch.equal(deterministic_rounding(x, maintain_zero=False), x)


def test_default_range_gradient_is_one_except_extreme_element(generator):
    x = torch.randn(30, dtype=torch.float64, generator=generator).requires_grad_()
    deterministic_rounding(x, num_levels=255).sum().backward()
    others = torch.ones(30, dtype=torch.bool)
    others[x.detach().abs().argmax()] = False
    assert torch.allclose(x.grad[others], torch.ones(29, dtype=torch.float64))


# -- properties -------------------------------------------------------------------------------

values = st.lists(
    st.floats(-200, 200, allow_nan=False, allow_subnormal=False), min_size=1, max_size=30
)
magnitudes = st.lists(
    st.one_of(st.just(0.0), st.floats(1e-6, 1e3), st.floats(-1e3, -1e-6)), min_size=1, max_size=30
)
zero_ranges = st.tuples(st.floats(-100, 0), st.floats(0, 100)).filter(lambda r: r[1] - r[0] > 1e-3)
any_ranges = st.tuples(st.floats(-100, 100), st.floats(-100, 100)).filter(
    lambda r: r[1] - r[0] > 1e-3
)


@SLOW
@given(x=values, rng=zero_ranges, num_levels=st.integers(2, 300), seed=st.integers(0, 2**16))
def test_fixed_range_rounding_properties(x, rng, num_levels, seed):
    x = t(*x, 0.0)
    levels = quantization_levels(rng, num_levels)
    det = deterministic_rounding(x, rng, rng, num_levels)
    sto = stochastic_rounding(x, rng, rng, num_levels, generator=seeded(seed))
    for out in (det, sto):
        assert_on_levels(out, levels)
        assert out.min() >= rng[0] and out.max() <= rng[1] and out[-1] == 0
    assert torch.equal(deterministic_rounding(det, rng, rng, num_levels), det)


@SLOW
@given(x=values, rng=any_ranges, num_levels=st.integers(2, 300), seed=st.integers(0, 2**16))
def test_affine_rounding_properties(x, rng, num_levels, seed):
    x = t(*x)
    levels = quantization_levels(rng, num_levels, maintain_zero=False)
    det = deterministic_rounding(x, rng, rng, num_levels, maintain_zero=False)
    sto = stochastic_rounding(x, rng, rng, num_levels, False, generator=seeded(seed))
    for out in (det, sto):
        assert_on_levels(out, levels)
        assert out.min() >= rng[0] and out.max() <= rng[1]
    again = deterministic_rounding(det, rng, rng, num_levels, maintain_zero=False)
    assert torch.equal(again, det)


@SLOW
@given(x=magnitudes, num_levels=st.integers(2, 300), seed=st.integers(0, 2**16))
def test_default_range_properties(x, num_levels, seed):
    x = t(*x, 0.0)
    m = x.abs().max().item()
    for out in (
        deterministic_rounding(x, num_levels=num_levels),
        stochastic_rounding(x, num_levels=num_levels, generator=seeded(seed)),
    ):
        assert not out.isnan().any() and out[-1] == 0
        assert out.abs().max() <= m
        if m > 0:
            assert_on_levels(out / m, quantization_levels([-1, 1], num_levels))


@SLOW
@given(x=magnitudes, seed=st.integers(0, 2**16))
def test_default_range_without_maintain_zero_stays_in_data_range(x, seed):
    x = t(*x)
    out = stochastic_rounding(x, num_levels=7, maintain_zero=False, generator=seeded(seed))
    assert out.min() >= x.min() and out.max() <= x.max()


@SLOW
@given(x=magnitudes, n_bits=st.integers(2, 12), maintain_zero=st.booleans())
def test_int_quant_properties(x, n_bits, maintain_zero):
    out = int_quant(t(*x), maintain_zero=maintain_zero, n_bits=n_bits)
    q = 2 ** (n_bits - 1) - 1
    assert torch.equal(out, out.round()) and out.abs().max() <= q
    if maintain_zero:
        assert torch.all(out[t(*x) == 0] == 0)


@SLOW
@given(decay=st.lists(st.floats(allow_nan=False), min_size=1, max_size=20))
def test_t_decay_is_a_bitshift_decay_and_never_nan(decay):
    out = t_decay(t(*decay))
    allowed = t(*(1 - 2.0**-k for k in range(MAX_DASH + 1)))
    assert not out.isnan().any()
    assert_on_levels(out, allowed)


# -- decision 12: unbiased, generator ---------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "x", "expected_mean"),
    [
        ({"input_range": [-1, 1], "output_range": [-1, 1], "num_levels": 5}, 0.3, 0.3),
        ({"input_range": [-1, 1], "output_range": [-1, 1], "num_levels": 4}, -0.7, -0.7),
        ({"input_range": [-1, 1], "output_range": [-7, 8], "num_levels": 16}, 0.41, 7.5 * 0.41),
        (
            {
                "input_range": [0, 2],
                "output_range": [0, 2],
                "num_levels": 9,
                "maintain_zero": False,
            },
            1.1,
            1.1,
        ),
    ],
)
def test_stochastic_rounding_is_unbiased(kwargs, x, expected_mean, generator):
    n = 100_000
    samples = stochastic_rounding(
        torch.full((n,), x, dtype=torch.float64), generator=generator, **kwargs
    )
    standard_error = samples.std().item() / math.sqrt(n)
    assert standard_error > 0
    assert abs(samples.mean().item() - expected_mean) < 4 * standard_error


@pytest.mark.parametrize(
    "call",
    [
        lambda x, g: stochastic_rounding(x, num_levels=8, generator=g),
        lambda x, g: stochastic_channel_rounding(x, [-8, 7], 16, generator=g),
        lambda x, g: dropout(x, 0.5, generator=g),
        lambda x, g: gaussian_mismatch(x, 20.0, generator=g),
    ],
)
def test_generator_makes_draws_reproducible(call):
    x = torch.randn(16, 16, generator=seeded(1))
    assert torch.equal(call(x, seeded(7)), call(x, seeded(7)))
    assert not torch.equal(call(x, seeded(7)), call(x, seeded(8)))


@pytest.mark.parametrize(
    "call",
    [
        lambda x, g: stochastic_rounding(x, generator=g),
        lambda x, g: stochastic_channel_rounding(x, [-1, 1], generator=g),
        lambda x, g: dropout(x, generator=g),
        lambda x, g: gaussian_mismatch(x, generator=g),
    ],
)
def test_generator_must_match_the_tensor_device(call):
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator on the device"):
        call(torch.zeros(2, 2, device="meta"), torch.Generator())
    with pytest.raises(TypeError, match=r"generator must be .* got 7\. Create one"):
        call(torch.zeros(2, 2), 7)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_random_numbers_are_drawn_on_the_cuda_device():
    x = torch.randn(64, 64, device="cuda")
    g = torch.Generator(device="cuda").manual_seed(0)
    assert stochastic_rounding(x, generator=g).device == x.device
    assert stochastic_channel_rounding(x, [-8, 7], 16, generator=g).device == x.device
    assert dropout(x, generator=g).device == x.device
    assert gaussian_mismatch(x, generator=g).device == x.device


# -- decision 13: channel rounding ------------------------------------------------------------


def test_channel_rounding_leaves_argument_and_works_on_leaf_parameter(generator):
    w = torch.nn.Parameter(torch.randn(6, 4, generator=generator))
    before = w.detach().clone()
    out = stochastic_channel_rounding(w, output_range=[-8, 7], num_levels=16, generator=generator)
    assert torch.equal(w.detach(), before) and out is not w
    out.sum().backward()
    assert w.grad is not None and torch.isfinite(w.grad).all()


def test_channel_rounding_uses_one_range_per_column():
    # column 0 spans +-1, column 1 spans +-0.01: each column's extreme maps to the top level
    w = t(1.0, 0.01, -0.5, -0.005, 0.0, 0.0).reshape(3, 2)
    out = stochastic_channel_rounding(w, output_range=[-4, 4], num_levels=9)
    assert out.tolist() == [[4, 4], [-2, -2], [0, 0]]


def test_channel_rounding_accepts_input_range_and_higher_dims(generator):
    w = torch.rand(3, 2, 5, dtype=torch.float64, generator=generator) - 0.5
    out = stochastic_channel_rounding(w, [-8, 7], 16, input_range=[-8, 7], generator=generator)
    assert out.shape == w.shape and out.abs().max() <= 1
    assert_on_levels(out, torch.arange(-8.0, 8.0))


@SLOW
@given(
    x=st.lists(st.floats(-10, 10, allow_subnormal=False), min_size=6, max_size=6),
    seed=st.integers(0, 2**16),
)
def test_channel_rounding_properties(x, seed):
    w = t(*x).reshape(3, 2)
    out = stochastic_channel_rounding(w, [-7, 8], 16, generator=seeded(seed))
    assert_on_levels(out, torch.arange(-7.0, 9.0))
    assert torch.all(out[w == 0] == 0)


@pytest.mark.parametrize("kind", ["stochastic", "deterministic", "channel"])
def test_data_near_the_smallest_normal_float_round_to_zero_without_nan(kind):
    """Found by ``test_channel_rounding_properties``: data whose largest magnitude ``M`` is the
    smallest normal float64 made the gain ``15 / 2M`` overflow and ``0 * inf`` gave NaN. Such
    data now round like zero-width data (every value to the zero level), with finite
    gradients, equal in the fused pass and in the reference composition (torch.func)."""
    tiny = 2.2250738585072014e-308  # the smallest normal float64
    x = (
        t(0.0, 0.0, 0.0, 0.0, 0.0, tiny).reshape(3, 2)
        if kind == "channel"
        else t(0.0, tiny, -tiny / 2)
    )
    weights = torch.arange(1.0, x.numel() + 1, dtype=x.dtype).reshape(x.shape)

    def loss(v):
        if kind == "channel":
            y = stochastic_channel_rounding(v, [-7, 8], 16, generator=seeded(0))
        elif kind == "stochastic":
            y = stochastic_rounding(v, output_range=[-7, 8], num_levels=16, generator=seeded(0))
        else:
            y = deterministic_rounding(v, output_range=[-7, 8], num_levels=16)
        return y, (y * weights).sum()

    v = x.clone().requires_grad_()
    y, total = loss(v)
    total.backward()
    assert torch.equal(y.detach(), torch.zeros_like(x))
    assert torch.isfinite(v.grad).all()
    reference = torch.func.grad(lambda u: loss(u)[1])(x)
    torch.testing.assert_close(v.grad, reference, rtol=1e-12, atol=0)


# -- decision 14: int_quant -------------------------------------------------------------------


def test_int_quant_centres_on_the_midpoint():
    # reference: shift by (max - min)/2 = 1 -> [0, 1, 2] -> [0, 2, 3]
    assert int_quant(t(1, 2, 3), maintain_zero=False, n_bits=3).tolist() == [-3, 0, 3]
    assert int_quant(t(-1, 5), maintain_zero=False, n_bits=3).tolist() == [-3, 3]


def test_int_quant_gradient_matches_its_surrogate(generator):
    x = torch.randn(12, dtype=torch.float64, generator=generator).requires_grad_()
    for maintain_zero in (True, False):

        def surrogate(v, mz=maintain_zero):
            v = v if mz else v - (v.max() + v.min()) / 2
            return 7 * v / v.abs().max()

        fn = functools.partial(int_quant, maintain_zero=maintain_zero, n_bits=4)
        assert torch.autograd.gradcheck(straight_through(fn, surrogate), (x,))


# -- decision 15: bit-shifts ------------------------------------------------------------------


def test_t_decay_edge_values_never_nan():
    decay = t(1.0, 1.5, math.inf, 0.0, -0.3, -math.inf, 1 - 2**-15, 0.999999)
    out = t_decay(decay)
    top = 1 - 2**-15
    assert out.tolist() == [top, top, top, 0.0, 0.0, 0.0, top, top]


def test_t_decay_ignores_dt_and_passes_gradient_through():
    x = t(0.3, 0.9, 0.999).requires_grad_()
    out = t_decay(x, dt=1e-4)
    assert torch.equal(out, t_decay(x, dt=0.5))
    assert torch.autograd.gradcheck(straight_through(t_decay, lambda v: v), (x,))


def test_t_decay_builds_no_class_per_call():
    x = t(0.5, 0.9).requires_grad_()
    assert type(t_decay(x).grad_fn) is type(t_decay(x).grad_fn)


def test_round_bitshift_clamps_to_hardware_range():
    x = t(-1.2, 0.0, 4.32, 7.5, 15.0, 21.0).requires_grad_()
    out = round_bitshift(x)
    assert out.tolist() == [0, 0, 4, 8, 15, 15]
    out.sum().backward()
    assert x.grad.tolist() == [0, 1, 1, 1, 1, 0]
    assert round_bitshift(t(9.0), max_dash=7).item() == 7


def test_round_bitshift_gradcheck(generator):
    x = away_from([0, 15], 20 * torch.rand(30, dtype=torch.float64, generator=generator) - 2)
    surrogate = functools.partial(torch.clamp, min=0, max=15)
    assert torch.autograd.gradcheck(
        straight_through(round_bitshift, surrogate), (x.requires_grad_(),)
    )


# -- decision 16: gradcheck of the rounding STEs ----------------------------------------------


@pytest.mark.parametrize(
    ("rounding", "kwargs", "surrogate", "kinks"),
    [
        (
            deterministic_rounding,
            {"input_range": [-1, 1], "output_range": [-1, 1], "num_levels": 5},
            lambda x: x.clamp(-1, 1),
            [-1, 1],
        ),
        (
            stochastic_rounding,
            {"input_range": [-1, 1], "output_range": [-7, 8], "num_levels": 16},
            lambda x: (7.5 * x.clamp(-1, 1)).clamp(-7, 8),
            [-1, -14 / 15, 1],
        ),
        (
            stochastic_rounding,
            {
                "input_range": [-1, 2],
                "output_range": [0, 6],
                "num_levels": 4,
                "maintain_zero": False,
            },
            lambda x: 2 * x.clamp(-1, 2),
            [-1, 2],
        ),
        (
            stochastic_channel_rounding,
            {"input_range": [-1, 1], "output_range": [-4, 4], "num_levels": 9},
            lambda x: 4 * x.clamp(-1, 1),
            [-1, 1],
        ),
    ],
)
def test_rounding_gradcheck_fixed_ranges(rounding, kwargs, surrogate, kinks, generator):
    x = away_from(kinks, 3 * torch.rand(8, 4, dtype=torch.float64, generator=generator) - 1.5)
    fn = functools.partial(rounding, **kwargs)
    assert torch.autograd.gradcheck(straight_through(fn, surrogate), (x.requires_grad_(),))


@pytest.mark.parametrize(
    "call",
    [
        lambda x: dropout(x, 0.4, generator=seeded(3)),
        lambda x: dropout(x, 0.4, rescale=True, generator=seeded(3)),
        lambda x: gaussian_mismatch(x, 15.0, generator=seeded(3)),
        lambda x: magnitude_prune(x, 0.3),
    ],
)
def test_mask_and_noise_transforms_gradcheck(call, generator):
    x = torch.randn(20, dtype=torch.float64, generator=generator).requires_grad_()
    assert torch.autograd.gradcheck(call, (x,))


# -- dropout, pruning, mismatch ---------------------------------------------------------------


def test_dropout_masks_without_rescaling(generator):
    x = torch.rand(100_000, generator=generator) + 1.0
    out = dropout(x, 0.3, generator=generator)
    kept = out != 0
    assert torch.equal(out[kept], x[kept])
    assert abs(kept.double().mean().item() - 0.7) < 0.01
    assert torch.equal(dropout(x, 0.0), x) and torch.all(dropout(x, 1.0) == 0)


def test_dropout_rescale_option(generator):
    x = torch.ones(1000)
    out = dropout(x, 0.75, rescale=True, generator=generator)
    assert set(out.unique().tolist()) <= {0.0, 4.0}
    assert torch.all(dropout(x, 1.0, rescale=True) == 0)


def test_dropout_gradient_is_the_mask(generator):
    x = torch.ones(50, requires_grad=True)
    out = dropout(x, 0.5, generator=generator)
    out.sum().backward()
    assert torch.equal(x.grad, (out != 0).float())


def test_magnitude_prune_zeros_smallest_fraction():
    x = t(0.5, -0.1, 2.0, 0.05, -3.0, 0.2).requires_grad_()
    out = magnitude_prune(x, 0.5)
    assert out.tolist() == [0.5, 0.0, 2.0, 0.0, -3.0, 0.0]
    out.sum().backward()
    assert x.grad.tolist() == [1, 0, 1, 0, 1, 0]
    assert torch.equal(magnitude_prune(x, 0.0), x) and torch.all(magnitude_prune(x, 1.0) == 0)
    assert (magnitude_prune(torch.randn(4, 5), 0.26) == 0).sum() == 5  # round(0.26 * 20)


def test_gaussian_mismatch_statistics(generator):
    out = gaussian_mismatch(torch.full((100_000,), 2.0), 10.0, generator=generator) / 2.0
    assert abs(out.mean().item() - 1.0) < 4 * 0.1 / math.sqrt(100_000)
    assert out.std().item() == pytest.approx(0.1, rel=0.02)
    assert torch.equal(gaussian_mismatch(t(1.0, -2.0), 0.0), t(1.0, -2.0))


# -- decision 17: LSQ -------------------------------------------------------------------------


def test_lsq_forward_on_grid():
    s = torch.tensor(0.5, dtype=torch.float64)
    x = t(-9, -0.74, 0.2, 0.26, 1.6, 9)
    assert lsq_quantizer(x, s, n_bits=3).tolist() == [-1.5, -0.5, 0.0, 0.5, 1.5, 1.5]
    assert lsq_quantizer(x, s, n_bits=3, signed=False).tolist() == [0, 0, 0, 0.5, 1.5, 3.5]


def test_lsq_gradients_follow_the_paper():
    x = t(-9.0, -0.74, 0.2, 0.26, 1.6, 9.0).requires_grad_()
    s = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    lsq_quantizer(x, s, n_bits=3).sum().backward()
    v = x.detach() / 0.5
    inside = (v >= -3) & (v <= 3)
    per_element = torch.where(inside, v.round() - v, v.sign() * 3)
    g = 1 / math.sqrt(6 * 3)
    assert torch.equal(x.grad, inside.double())
    assert s.grad.item() == pytest.approx(g * per_element.sum().item())


def test_lsq_step_floor_prevents_nan():
    for scale in (0.0, -1.0):
        out = lsq_quantizer(t(0.3, -2.0), torch.tensor(scale, dtype=torch.float64))
        assert torch.isfinite(out).all()


def test_lsq_module_lazy_init_and_init_from(generator):
    x = torch.randn(100, generator=generator)
    quantizer = LSQQuantizer(n_bits=4)
    assert not quantizer.initialized
    quantizer(x)
    expected = 2 * x.abs().mean() / math.sqrt(7)
    assert quantizer.scale.item() == pytest.approx(expected.item()) and quantizer.initialized
    quantizer(10 * x)  # no re-initialisation
    assert quantizer.scale.item() == pytest.approx(expected.item())
    other = LSQQuantizer(n_bits=4).init_from(x)
    assert other.scale.item() == pytest.approx(expected.item())
    assert LSQQuantizer().init_from(torch.zeros(3)).scale.item() == 1.0


def test_lsq_module_state_dict_deepcopy_pickle(generator):
    x = torch.randn(50, generator=generator)
    trained = LSQQuantizer(n_bits=5).init_from(x)
    fresh = LSQQuantizer(n_bits=5)
    fresh.load_state_dict(trained.state_dict())
    assert torch.equal(fresh(x), trained(x)) and fresh.scale.item() == trained.scale.item()
    for clone in (copy.deepcopy(trained), pickle.loads(pickle.dumps(trained))):
        assert torch.equal(clone(x), trained(x))


def test_lsq_module_trains_its_scale():
    x = 0.1 * torch.randn(1000, generator=seeded(0))
    quantizer = LSQQuantizer(n_bits=3, init_scale=0.01)
    optimizer = torch.optim.SGD(quantizer.parameters(), lr=1.0)
    errors = []
    for _ in range(10):
        loss = ((quantizer(x) - x) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        assert quantizer.scale.grad is not None and quantizer.scale.grad != 0
        optimizer.step()
        errors.append(loss.item())
    assert errors[-1] < 0.5 * errors[0]


def test_lsq_module_repr():
    assert (
        repr(LSQQuantizer(4, init_scale=0.25)) == "LSQQuantizer(n_bits=4, signed=True, scale=0.25)"
    )


# -- decision 17: chain -----------------------------------------------------------------------


def add_one(x):
    return x + 1


def double(x):
    return 2 * x


def test_chain_applies_left_to_right():
    x = t(1.0, 2.0)
    assert chain(add_one, double)(x).tolist() == [4.0, 6.0]
    assert chain(double, add_one)(x).tolist() == [3.0, 5.0]
    assert torch.equal(chain()(x), x)


def test_chain_repr():
    transform = chain(
        functools.partial(magnitude_prune, fraction=0.5),
        functools.partial(stochastic_rounding, num_levels=16),
        round_passthrough,
        torch.round,
        lambda x: x,
        LSQQuantizer(4, init_scale=0.5),
    )
    assert repr(transform) == (
        "chain(magnitude_prune(fraction=0.5), stochastic_rounding(num_levels=16), "
        "round_passthrough, round, <lambda>, LSQQuantizer(n_bits=4, signed=True, scale=0.5))"
    )


def test_chain_pickles_with_partials():
    transform = chain(functools.partial(magnitude_prune, fraction=0.5), add_one)
    x = t(0.1, 3.0)
    assert torch.equal(pickle.loads(pickle.dumps(transform))(x), transform(x))


# -- validation -------------------------------------------------------------------------------

ROUNDERS = [
    functools.partial(stochastic_rounding),
    functools.partial(deterministic_rounding),
    functools.partial(stochastic_channel_rounding, output_range=[-1, 1]),
]


@pytest.mark.parametrize("rounding", ROUNDERS)
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_levels": 1}, ValueError, r"num_levels must be an int >= 2; got 1\. Pass e\.g\."),
        ({"num_levels": 4.0}, TypeError, r"num_levels must be an int >= 2; got 4\.0"),
        ({"num_levels": True}, TypeError, r"num_levels must be an int >= 2; got True"),
        ({"input_range": [1, -1]}, ValueError, r"input_range must be a pair \[lo, hi\].*lo < hi"),
        ({"input_range": [0, 0]}, ValueError, r"input_range must be a pair.*got \[0, 0\]"),
        ({"input_range": [-1, 0, 1]}, ValueError, r"input_range must be a pair"),
        ({"input_range": [-1, math.nan]}, ValueError, r"input_range must be a pair.*finite"),
        ({"input_range": "ab"}, TypeError, r"input_range must be a pair.*got 'ab'"),
        ({"input_range": 3}, TypeError, r"input_range must be a pair.*e\.g\. input_range="),
        ({"input_range": [1, 2]}, ValueError, r"maintain_zero=True keeps 0.*input_range"),
        ({"maintain_zero": 1}, TypeError, r"maintain_zero must be a bool; got 1"),
    ],
)
def test_rounding_rejects_bad_arguments(rounding, kwargs, error, match):
    with pytest.raises(error, match=match):
        rounding(torch.ones(2, 2), **kwargs)


@pytest.mark.parametrize("rounding", [stochastic_rounding, deterministic_rounding])
def test_rounding_rejects_bad_output_range(rounding):
    with pytest.raises(ValueError, match=r"output_range must be a pair.*got \[8, -7\]"):
        rounding(torch.ones(2), output_range=[8, -7])
    with pytest.raises(ValueError, match=r"so output_range must contain 0; got \[1, 10\]"):
        rounding(torch.ones(2), output_range=[1, 10])
    assert rounding(torch.ones(2), output_range=[1, 10], maintain_zero=False).tolist() == [1, 1]


@pytest.mark.parametrize(
    "call",
    [
        stochastic_rounding,
        deterministic_rounding,
        lambda v: stochastic_channel_rounding(v, [-1, 1]),
        int_quant,
        dropout,
        lambda v: magnitude_prune(v, 0.5),
        gaussian_mismatch,
        t_decay,
        round_bitshift,
        class_calc_q_decay(1e-3),
        lambda v: lsq_quantizer(v, torch.tensor(1.0)),
    ],
)
@pytest.mark.parametrize("bad", [[1.0, 2.0], torch.tensor([1, 2])])
def test_non_float_tensor_rejected(call, bad):
    with pytest.raises(TypeError, match=r"must be a floating-point torch.Tensor; got .*as_tensor"):
        call(bad)


@pytest.mark.parametrize(
    "call", [stochastic_rounding, deterministic_rounding, int_quant, LSQQuantizer().init_from]
)
def test_empty_tensor_rejected(call):
    with pytest.raises(ValueError, match=r"must have at least one element; got shape \(0,\)"):
        call(torch.zeros(0))


def test_channel_rounding_argument_errors():
    with pytest.raises(ValueError, match=r"at least 2 dimensions.*got shape \(3,\).*Use stoch"):
        stochastic_channel_rounding(torch.ones(3), [-1, 1])
    with pytest.raises(TypeError, match=r"output_range must be a pair.*got None"):
        stochastic_channel_rounding(torch.ones(3, 3), None)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_bits": 1}, ValueError, r"n_bits must be an int >= 2; got 1\. Pass e\.g\. n_bits=8"),
        ({"n_bits": 2.5}, TypeError, r"n_bits must be an int >= 2; got 2\.5"),
        ({"map_to_max": True, "n_bits": 8, "max_n_bits": 4}, ValueError, r"max_n_bits .* >= 8"),
        ({"max_n_bits": "8"}, TypeError, r"max_n_bits must be an int"),
        ({"map_to_max": "yes"}, TypeError, r"map_to_max must be a bool; got 'yes'"),
        ({"maintain_zero": None}, TypeError, r"maintain_zero must be a bool"),
    ],
)
def test_int_quant_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        int_quant(torch.ones(3), **kwargs)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: dropout(torch.ones(2), 1.5), ValueError, r"dropout_prob must be a number in"),
        (lambda: dropout(torch.ones(2), -0.1), ValueError, r"\[0, 1\]; got -0\.1"),
        (lambda: dropout(torch.ones(2), "half"), TypeError, r"dropout_prob .* got 'half'"),
        (lambda: dropout(torch.ones(2), math.nan), ValueError, r"dropout_prob must be a number"),
        (lambda: dropout(torch.ones(2), rescale=1), TypeError, r"rescale must be a bool"),
        (lambda: magnitude_prune(torch.ones(2), 2), ValueError, r"fraction must be a number in"),
        (lambda: magnitude_prune(torch.ones(2), None), TypeError, r"fraction .* got None"),
        (lambda: gaussian_mismatch(torch.ones(2), -1), ValueError, r"percent_deviation .* >= 0"),
        (lambda: gaussian_mismatch(torch.ones(2), math.inf), ValueError, r"percent_deviation"),
        (lambda: gaussian_mismatch(torch.ones(2), "5"), TypeError, r"percent_deviation .* '5'"),
        (lambda: t_decay(torch.ones(2), dt=0), ValueError, r"dt must be a finite number > 0"),
        (lambda: t_decay(torch.ones(2), dt="1"), TypeError, r"dt must be a finite number > 0"),
        (lambda: class_calc_q_decay(-1e-3), ValueError, r"dt must be .* got -0\.001"),
        (lambda: round_bitshift(torch.ones(2), 0), ValueError, r"max_dash must be an int >= 1"),
        (lambda: round_bitshift(torch.ones(2), 3.0), TypeError, r"max_dash must be an int"),
        (lambda: LSQQuantizer(n_bits=1), ValueError, r"n_bits must be an int >= 2"),
        (lambda: LSQQuantizer(signed=0), TypeError, r"signed must be a bool"),
        (lambda: LSQQuantizer(init_scale=0.0), ValueError, r"init_scale must be .* > 0"),
        (lambda: lsq_quantizer(torch.ones(2), 1.0), TypeError, r"scale must be a floating-point"),
        (lambda: quantization_levels([0, 1], 1), ValueError, r"num_levels must be an int >= 2"),
        (lambda: chain(add_one, 3), TypeError, r"argument 1 is a int\. Pass functions"),
    ],
)
def test_other_transforms_reject_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()
