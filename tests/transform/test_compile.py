"""torch.compile on a patched network: an optional path, checked for correctness only."""

import warnings

import torch

import snnqat.transform.torch_transform as tt
from snnqat.nn.combinators import Residual, Sequential
from snnqat.nn.modules import LIFTorch, LinearTorch


def test_compiled_patched_network_matches_eager():
    torch.manual_seed(0)
    net = Sequential(
        LinearTorch((3, 5)),
        LIFTorch(5),
        Residual(LinearTorch((5, 5)), LIFTorch(5, has_rec=True)),
        LinearTorch((5, 3)),
        LIFTorch(3),
    )
    rounding = lambda p: tt.deterministic_rounding(p, num_levels=16)
    tnet = tt.make_param_T_network(net, tt.make_param_T_config(net, rounding, "weights"))
    tnet = tnet.to_torch()
    x = torch.rand(2, 10, 3) * 3
    eager = tnet(x)
    tnet.reset_state()
    with warnings.catch_warnings():
        # dynamo notes that it traces through cached helper functions; not an error here
        warnings.filterwarnings("ignore", message=".*lru_cache.*", category=UserWarning)
        # dynamo probes `.grad` of intermediate tensors while tracing (its own warning)
        warnings.filterwarnings("ignore", message=".*non-leaf Tensor.*", category=UserWarning)
        # dynamo instantiates autograd Functions internally while tracing them
        warnings.filterwarnings("ignore", message=".*should not be instantiated.*")
        compiled = torch.compile(tnet, backend="aot_eager")
        out = compiled(x)
        out.sum().backward()
    assert torch.equal(out, eager)
    assert tnet[0]._mod.weight.grad is not None
