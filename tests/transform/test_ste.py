"""Straight-through estimators: forward values, documented gradients, torch.func support."""

import pickle

import pytest
import torch

from snnqat.transform._ste import (
    clipped_round_passthrough,
    floor_passthrough,
    make_backward_passthrough,
    round_passthrough,
    scale_gradient,
)


def straight_through(fn, surrogate):
    """``fn``'s value cancelled, ``surrogate``'s value added: the numeric Jacobian is the
    surrogate's, the analytic one is ``fn``'s backward. ``gradcheck`` then checks that the
    STE backward equals the documented surrogate gradient."""

    def check(x):
        y = fn(x)
        return y - y.detach() + surrogate(x).detach()

    return check


def away_from(points, x, margin=1e-3):
    """Move the entries of ``x`` at least ``margin`` away from every kink in ``points``."""
    for p in points:
        x = torch.where((x - p).abs() < margin, x + 2 * margin, x)
    return x


@pytest.fixture
def x64(generator):
    return (4 * torch.rand(40, dtype=torch.float64, generator=generator) - 2).requires_grad_()


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(1234)


# -- forward values ---------------------------------------------------------------------------


def test_round_passthrough_ties_to_even():
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 0.49])
    assert round_passthrough(x).tolist() == [0.0, 2.0, 2.0, -0.0, -2.0, 0.0]


def test_floor_passthrough_values():
    assert floor_passthrough(torch.tensor([0.5, 1.999, -0.001])).tolist() == [0.0, 1.0, -1.0]


def test_clipped_round_values():
    x = torch.tensor([-3.0, -0.6, 0.4, 2.5, 3.7, 10.0])
    assert clipped_round_passthrough(x, 0, 3).tolist() == [0.0, 0.0, 0.0, 2.0, 3.0, 3.0]


def test_scale_gradient_is_identity_forward():
    x = torch.tensor([1.0, -2.0])
    assert torch.equal(scale_gradient(x, 0.1), x)


def test_make_backward_passthrough_forward_is_function():
    ste_sign = make_backward_passthrough(torch.sign)
    assert ste_sign(torch.tensor([-2.0, 0.0, 3.0])).tolist() == [-1.0, 0.0, 1.0]


# -- documented gradients ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "surrogate"),
    [
        (round_passthrough, lambda x: x),
        (floor_passthrough, lambda x: x),
        (make_backward_passthrough(torch.sign), lambda x: x),
        (make_backward_passthrough(torch.round), lambda x: x),
        (lambda x: scale_gradient(x, 0.25), lambda x: 0.25 * x),
        (lambda x: clipped_round_passthrough(x, -1.0, 1.5), lambda x: x.clamp(-1.0, 1.5)),
    ],
    ids=["round", "floor", "passthrough-sign", "passthrough-round", "scale", "clipped"],
)
def test_gradcheck_documented_gradient(fn, surrogate, x64):
    x = away_from([-1.0, 1.5], x64.detach()).requires_grad_()
    assert torch.autograd.gradcheck(straight_through(fn, surrogate), (x,))


def test_straight_through_check_detects_a_wrong_gradient(x64):
    # The helper is not vacuous: claiming the gradient of 2x for round fails.
    wrong = straight_through(round_passthrough, lambda x: 2 * x)
    assert not torch.autograd.gradcheck(wrong, (x64,), raise_exception=False)


def test_clipped_round_gradient_mask_includes_bounds():
    x = torch.tensor([-0.1, 0.0, 2.0, 3.0, 3.1], requires_grad=True)
    clipped_round_passthrough(x, 0, 3).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_passthrough_backward_is_none_without_grad():
    x = torch.tensor([1.0, 2.0])
    y = torch.tensor([3.0, 4.0], requires_grad=True)
    out = make_backward_passthrough(torch.round)(x) * y
    out.sum().backward()
    assert x.grad is None and y.grad.tolist() == [1.0, 2.0]


# -- torch.func -------------------------------------------------------------------------------


# jacfwd's first use imports torch decompositions that call the deprecated torch.jit.script.
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize(
    "fn",
    [
        round_passthrough,
        floor_passthrough,
        make_backward_passthrough(torch.sign),
        lambda x: clipped_round_passthrough(x, -5, 5),
        lambda x: scale_gradient(x, 3.0) / 3.0,
    ],
)
def test_torch_func_grad_vmap_jacfwd(fn):
    x = torch.linspace(-2.3, 2.1, 6).reshape(2, 3)
    assert torch.equal(torch.func.grad(lambda v: fn(v).sum())(x), torch.ones_like(x))
    assert torch.equal(torch.func.vmap(fn)(x), torch.stack([fn(row) for row in x]))
    assert torch.allclose(torch.func.jacfwd(fn)(x[0]), torch.eye(3))
    assert torch.allclose(torch.func.jacrev(fn)(x[0]), torch.eye(3))


def test_no_class_created_per_call():
    first, second = make_backward_passthrough(torch.sign), make_backward_passthrough(torch.abs)
    x = torch.tensor([1.0], requires_grad=True)
    assert type(first(x).grad_fn) is type(second(x).grad_fn)


def test_passthrough_repr_and_pickle():
    ste = make_backward_passthrough(torch.round)
    assert repr(ste) == "make_backward_passthrough(round)"
    assert torch.equal(pickle.loads(pickle.dumps(ste))(torch.tensor([1.4])), torch.tensor([1.0]))


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fn",
    [
        round_passthrough,
        floor_passthrough,
        lambda x: clipped_round_passthrough(x, 0, 1),
        lambda x: scale_gradient(x, 1.0),
        make_backward_passthrough(torch.round),
    ],
)
def test_non_tensor_rejected(fn):
    with pytest.raises(TypeError, match=r"x must be a torch.Tensor; got list.*torch.as_tensor"):
        fn([1.0, 2.0])


@pytest.mark.parametrize(("lo", "hi"), [(1, 1), (2, 0)])
def test_clipped_round_rejects_reversed_bounds(lo, hi):
    with pytest.raises(ValueError, match=r"lo must be below hi; got lo=.*Swap the bounds"):
        clipped_round_passthrough(torch.zeros(2), lo, hi)


def test_make_backward_passthrough_rejects_non_callable():
    with pytest.raises(TypeError, match=r"function must be callable.*got int.*torch.round"):
        make_backward_passthrough(3)


def test_make_backward_passthrough_rejects_shape_change():
    with pytest.raises(ValueError, match=r"input's shape \(3,\); got \(\).*element-wise"):
        make_backward_passthrough(torch.sum)(torch.ones(3))
