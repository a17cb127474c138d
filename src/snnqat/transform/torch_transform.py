"""Transformations in training for torch networks: the public face of the pipeline.

Select parameters by family (or module outputs by class), attach transforms, train, burn in,
unpatch::

    cfg  = make_param_T_config(net, lambda p: stochastic_rounding(p, num_levels=2**4), "weights")
    tnet = make_param_T_network(net, cfg)        # wraps modules in TWrapper
    ...                                          # train tnet: transforms run once per forward
    tnet = apply_T(tnet)                         # burn the transformed values in
    net  = remove_T_net(tnet)                    # back to plain modules

Example:
    >>> import torch
    >>> from snnqat.nn.modules import LinearTorch
    >>> from snnqat.nn.combinators import Sequential
    >>> net = Sequential(LinearTorch((2, 2), weight=torch.tensor([[0.3, -1.0], [0.6, 1.0]])))
    >>> cfg = make_param_T_config(net, lambda p: deterministic_rounding(p, num_levels=3), "weights")
    >>> tnet = make_param_T_network(net, cfg)
    >>> remove_T_net(apply_T(tnet)).parameters("weights")["0_LinearTorch"]["weight"]
    Parameter containing:
    tensor([[ 0., -1.],
            [ 1.,  1.]], requires_grad=True)
"""

from snnqat.transform._graphed_rounding import set_quantizer_cuda_graphs
from snnqat.transform._pipeline import (
    apply_T,
    make_act_T_config,
    make_act_T_network,
    make_param_T_config,
    make_param_T_network,
    remove_T_net,
)
from snnqat.transform._quantizers import (
    LSQQuantizer,
    chain,
    class_calc_q_decay,
    deterministic_rounding,
    dropout,
    gaussian_mismatch,
    int_quant,
    magnitude_prune,
    round_bitshift,
    stochastic_channel_rounding,
    stochastic_rounding,
    t_decay,
)
from snnqat.transform._ste import (
    clipped_round_passthrough,
    floor_passthrough,
    make_backward_passthrough,
    round_passthrough,
)
from snnqat.transform._wrappers import ActWrapper, TWrapper

__all__ = [
    "stochastic_rounding",
    "stochastic_channel_rounding",
    "deterministic_rounding",
    "dropout",
    "make_param_T_config",
    "make_param_T_network",
    "make_backward_passthrough",
    "make_act_T_config",
    "make_act_T_network",
    "int_quant",
    "t_decay",
    "apply_T",
    "remove_T_net",
    "TWrapper",
    "ActWrapper",
    "round_passthrough",
    "floor_passthrough",
    "clipped_round_passthrough",
    "class_calc_q_decay",
    "round_bitshift",
    "magnitude_prune",
    "gaussian_mismatch",
    "LSQQuantizer",
    "chain",
    "set_quantizer_cuda_graphs",
]
