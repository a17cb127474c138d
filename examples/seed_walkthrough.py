"""The seed walkthrough (Rockpool's Torch transformation pipeline), run with snnqat.

Each block is one cell of the original notebook with ``rockpool`` replaced by ``snnqat`` in
the imports. Where one of snnqat's deliberate decisions changes an output, a comment says so.
Run: ``python examples/seed_walkthrough.py``.
"""

import warnings

import torch

# In[2]: transformation pipeline imports
import snnqat.transform.torch_transform as tt
import snnqat.utilities.tree_utils as tu
from snnqat.nn.combinators import Residual, Sequential

# In[1]: basic imports
from snnqat.nn.modules import LIFTorch, LinearTorch

torch.manual_seed(3)  # any seed works; this one shows spikes in In[8]


def show(label, value):
    print(f"--- {label}")
    print(value)


# In[3]: build a network to use
net = Sequential(
    LinearTorch((3, 5)),
    LIFTorch(5),
    Residual(
        LinearTorch((5, 5)),
        LIFTorch(5, has_rec=True),
    ),
    LinearTorch((5, 3)),
    LIFTorch(3),
)
show("In[3] net", net)

# In[4]: get the 'weights' parameter family, and specify stochastic rounding
tconfig = tt.make_param_T_config(
    net, lambda p: tt.stochastic_rounding(p, num_levels=2**2), "weights"
)
show("In[4] tconfig", tconfig)

# In[5]: now we add in the bias transformation.
# DECISION 1: `'biases'` is one family across the library, so this step really selects the
# LIF biases ('1_LIFTorch', '2_TorchResidual/1_LIFTorch', '4_LIFTorch'); in the reference it
# selected nothing and the printed tree was unchanged.
tconfig = tu.tree_update(
    tconfig, tt.make_param_T_config(net, lambda p: tt.dropout(p, 0.3), "biases")
)
show("In[5] tconfig", tconfig)

# In[6]: patch the original network with transformation modules
# (the LIF layers carrying a bias transform are now wrapped too: see In[5])
tnet = tt.make_param_T_network(net, tconfig)
show("In[6] tnet", tnet)

# In[7]
show("In[7] tnet.parameters('weights')", tnet.parameters("weights"))

# In[8]: evolve: the parameters are transformed in the forward pass
out, ns, rd = tnet(torch.ones(1, 10, 3))
show("In[8] out", out)
show("In[8] out.shape", out.shape)
show("In[8] record keys", list(rd))

# Training goes here!

# In[9]: burn in (the wrappers stay, as in the reference)
ttnet = tt.apply_T(tnet, inplace=True)
show("In[9] ttnet", ttnet)

# In[10]: the low-resolution quantized weights, still stored as floats.
# DECISION 11: with maintain_zero=True, zero is a level for any num_levels, so the 4-level
# grid here is {-M, -M/2, 0, M/2} scaled into [-M, M] rather than the reference's ±M/3, ±M.
show("In[10] ttnet.parameters('weights')", ttnet.parameters("weights"))

# In[11]
unpatched_net = tt.remove_T_net(ttnet, inplace=True)
show("In[11] unpatched_net", unpatched_net)

# In[12]: quantize to round numbers
w = torch.rand((5, 5)) - 0.5
num_bits = 4
q = tt.stochastic_rounding(
    w,
    output_range=[-(2 ** (num_bits - 1)) + 1, 2 ** (num_bits - 1)],
    num_levels=2**num_bits,
)
show("In[12] stochastic_rounding", q)

# In[13]: activity transformations
net = Sequential(
    LinearTorch((3, 5)),
    LIFTorch(5),
    Residual(
        LinearTorch((5, 5)),
        LIFTorch(5, has_rec=True),
    ),
    LinearTorch((5, 3)),
    LIFTorch(3),
)
show("In[13] net", net)

# In[14]: a null configuration tree, then one selecting a module class
show("In[14] null config", tt.make_act_T_config(net))
T_fn = lambda p: tt.deterministic_rounding(p, output_range=[-128, 127], num_levels=2**8)
tconf = tt.make_act_T_config(net, T_fn, LinearTorch)
show("In[14] tconf", tconf)

# In[15]
tnet = tt.make_act_T_network(net, tconf)
show("In[15] tnet", tnet)

# In[16]
out, ns, rd = tnet(torch.ones(1, 10, 3), record=True)

# In[17]: the LinearTorch outputs are quantised.
# DECISION 6: '<name>_output' records keep their autograd history (grad_fn is shown), and an
# ActWrapper keeps the wrapped module's record ('0_LinearTorch' records nothing: {}).
show("In[17] record keys", list(rd))
show("In[17] rd['0_LinearTorch']", rd["0_LinearTorch"])
show("In[17] rd['0_LinearTorch_output']", rd["0_LinearTorch_output"])
show(
    "In[17] rd['1_LIFTorch'] keys and shapes",
    {k: tuple(v.shape) for k, v in rd["1_LIFTorch"].items()},
)

# In[20]: decay transformations
net_decay = Sequential(
    LinearTorch((3, 5)),
    LIFTorch(5),
    Residual(
        LinearTorch((5, 5)),
        LIFTorch(5, has_rec=True),
    ),
    LinearTorch((5, 3)),
    LIFTorch(3, leak_mode="decays"),
)
show("In[20] net_decay", net_decay)

# In[21]
tconfig_decay = tt.make_param_T_config(net_decay, lambda p: tt.t_decay(p), "decays")
print(tconfig_decay["4_LIFTorch"])

# In[22]
t_net_decay = tt.make_param_T_network(net_decay, tconfig_decay)
print(t_net_decay)
out, _, _ = t_net_decay(torch.ones(1, 10, 3))
show("In[22] decay-quantized output shape", out.shape)

# In[25]: bit-shift decays
net_bitshift = Sequential(
    LinearTorch((3, 5)),
    LIFTorch(5),
    Residual(
        LinearTorch((5, 5)),
        LIFTorch(5, has_rec=True),
    ),
    LinearTorch((5, 3)),
    LIFTorch(3, leak_mode="bitshifts"),
)
show("In[25] net_bitshift", net_bitshift)

# In[26]
tconfig_bitshift = tt.make_param_T_config(
    net_bitshift, lambda p: tt.round_passthrough(p), "bitshifts"
)
print(tconfig_bitshift["4_LIFTorch"])

# In[27]
t_net_bitshift = tt.make_param_T_network(net_bitshift, tconfig_bitshift)
print(t_net_bitshift)
with warnings.catch_warnings():
    warnings.simplefilter("error")
    out, _, _ = t_net_bitshift(torch.ones(1, 10, 3))
show("In[27] bitshift output shape", out.shape)
