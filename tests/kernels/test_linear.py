"""``matmul_with_shortcut`` and the residual block that uses it."""

from __future__ import annotations

import pytest
import torch

from snnqat.kernels import matmul_with_shortcut
from snnqat.nn.combinators import Residual, Sequential
from snnqat.nn.modules import LIFTorch, LinearTorch
from snnqat.transform import torch_transform as tt


def _inputs(dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 4, dtype=dtype, generator=gen, requires_grad=True)
    w = torch.randn(4, 6, dtype=dtype, generator=gen, requires_grad=True)
    return x, w


def test_values_are_the_product_and_the_input() -> None:
    x, w = _inputs()
    y, skip = matmul_with_shortcut(x, w)
    assert torch.equal(y, x @ w)
    assert torch.equal(skip, x)


def test_hand_computed_gradient() -> None:
    x = torch.ones(1, 2, 3, requires_grad=True)
    w = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], requires_grad=True)
    y, skip = matmul_with_shortcut(x, w)
    (y.sum() + 10 * skip.sum()).backward()
    # d/dx: row sums of w (3, 7, 11) plus 10 from the shortcut; d/dw: the two steps of ones
    assert x.grad.tolist() == [[[13.0, 17.0, 21.0], [13.0, 17.0, 21.0]]]
    assert w.grad.tolist() == [[2.0, 2.0], [2.0, 2.0], [2.0, 2.0]]


@pytest.mark.parametrize("use", ["both", "product", "shortcut"])
def test_gradients_equal_using_the_input_twice(use: str) -> None:
    x, w = _inputs()
    gen = torch.Generator().manual_seed(1)
    g_y = torch.randn(3, 5, 6, dtype=x.dtype, generator=gen)
    g_s = torch.randn(3, 5, 4, dtype=x.dtype, generator=gen)

    def loss(y: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        total = torch.zeros((), dtype=x.dtype)
        if use != "shortcut":
            total = total + (y * g_y).sum()
        if use != "product":
            total = total + (skip * g_s).sum()
        return total

    want = torch.autograd.grad(loss(x @ w, x), (x, w), allow_unused=True)
    got = torch.autograd.grad(loss(*matmul_with_shortcut(x, w)), (x, w), allow_unused=True)
    for a, b in zip(got, want):
        if b is None:
            assert a is None
        else:
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_gradcheck_and_second_order() -> None:
    x, w = _inputs()

    def f(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        y, skip = matmul_with_shortcut(x, w)
        return torch.cat(((y**2).flatten(), (skip**3).flatten()))

    assert torch.autograd.gradcheck(f, (x, w))
    assert torch.autograd.gradgradcheck(f, (x, w))


def test_plain_product_under_functorch_and_for_a_vector_weight() -> None:
    x, w = _inputs()
    y, skip = matmul_with_shortcut(x, w[:, 0])
    assert skip is x and torch.equal(y, x @ w[:, 0])
    out = torch.func.vmap(lambda xi: matmul_with_shortcut(xi, w)[0])(x)
    torch.testing.assert_close(out, x @ w)


def test_plain_product_under_autocast() -> None:
    """Under autocast the product's gradient must be cast back, which autograd's own ``mm``
    node does: the residual network trains in bfloat16 autocast as without the shortcut."""
    torch.manual_seed(0)
    net = Sequential(
        LinearTorch((3, 8)), LIFTorch(8), Residual(LinearTorch((8, 8)), LIFTorch(8))
    ).to_torch()
    x = torch.rand(2, 10, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = net(x)
        _, skip = matmul_with_shortcut(x, torch.ones(3, 3))
    assert skip is x
    y.float().square().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in net.parameters())


def _net(transform: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    net = Sequential(
        LinearTorch((3, 8)),
        LIFTorch(8),
        Residual(LinearTorch((8, 8)), LIFTorch(8, has_rec=True)),
        LinearTorch((8, 2)),
    )
    if transform:
        cfg = tt.make_param_T_config(net, lambda p: tt.deterministic_rounding(p), "weights")
        net = tt.make_param_T_network(net, cfg)
    return net.to_torch()


@pytest.mark.parametrize("transform", [False, True], ids=["plain", "param-transformed"])
def test_residual_block_sums_the_gradients_in_the_product(
    transform: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The block takes the shortcut product; values and gradients equal those of the plain
    composition (``x @ W`` and ``out + x``, the sum formed by autograd)."""
    x = torch.rand(4, 20, 3) * 3

    def run() -> tuple[torch.Tensor, list[torch.Tensor]]:
        net = _net(transform)
        out = net(x)
        out.square().sum().backward()
        return out, [p.grad for p in net.parameters()]

    seen = []
    real = matmul_with_shortcut

    def spy(a: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seen.append(a.shape)
        return real(a, w)

    import snnqat.nn.modules.linear_torch as linear_module

    monkeypatch.setattr(linear_module, "matmul_with_shortcut", spy)
    out, grads = run()
    assert seen == [torch.Size([4, 20, 8])]  # the residual block's Linear, once
    monkeypatch.setattr(linear_module, "matmul_with_shortcut", lambda a, w: (a @ w, None))
    out_ref, grads_ref = run()
    assert torch.equal(out, out_ref)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-6)


def test_residual_block_whose_first_module_is_not_linear_is_unchanged() -> None:
    torch.manual_seed(0)
    blk = Residual(LIFTorch(4), LinearTorch((4, 4))).to_torch()
    x = torch.rand(2, 6, 4, requires_grad=True)
    out = blk(x)
    assert "_shortcut" not in blk[0].__dict__ and "_shortcut" not in blk[1].__dict__
    assert type(out.grad_fn).__name__ == "AddBackward0"
    assert type(out.grad_fn.next_functions[1][0]).__name__ == "AccumulateGrad"  # x itself


def test_shortcut_offer_is_withdrawn_when_the_block_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blk = Residual(LIFTorch(4), LinearTorch((4, 4))).to_torch()
    offered = []

    def fail(data: torch.Tensor) -> torch.Tensor:
        offered.append("_shortcut" in blk[0].__dict__)
        raise RuntimeError("inside the block")

    monkeypatch.setattr(blk[0], "forward", fail)
    with pytest.raises(RuntimeError, match="inside the block"):
        blk(torch.rand(2, 6, 4))
    assert offered == [True]
    assert "_shortcut" not in blk[0].__dict__
