"""The module substrate: registries, families, naming, repr, call convention, conversion."""

import copy
import pickle
from collections import OrderedDict

import pytest
import torch
from torch import nn

from snnqat.nn.combinators import Residual, Sequential
from snnqat.nn.modules import LIFTorch, LinearTorch, TorchModule
from snnqat.parameters import Constant, Parameter, SimulationParameter, State

SEED_REPR = """TorchSequential  with shape (3, 3) {
    LinearTorch '0_LinearTorch' with shape (3, 5)
    LIFTorch '1_LIFTorch' with shape (5, 5)
    TorchResidual '2_TorchResidual' with shape (5, 5) {
        LinearTorch '0_LinearTorch' with shape (5, 5)
        LIFTorch '1_LIFTorch' with shape (5, 5)
    }
    LinearTorch '3_LinearTorch' with shape (5, 3)
    LIFTorch '4_LIFTorch' with shape (3, 3)
}"""


def seed_net():
    return Sequential(
        LinearTorch((3, 5)),
        LIFTorch(5),
        Residual(LinearTorch((5, 5)), LIFTorch(5, has_rec=True)),
        LinearTorch((5, 3)),
        LIFTorch(3),
    )


def test_seed_repr():
    assert repr(seed_net()) == SEED_REPR


def test_parameter_shapes_and_errors():
    assert Parameter(shape=3, init_func=torch.zeros).data.shape == (3,)
    p = Parameter(torch.arange(6.0), shape=[(2, 3), ()])
    assert p.data.shape == (2, 3)
    with pytest.raises(ValueError, match="expected `data` or `shape`"):
        Parameter()
    with pytest.raises(TypeError, match="every element must be an int"):
        Parameter(shape=(2.5, 3), init_func=torch.zeros)
    with pytest.raises(ValueError, match="fits none of the permitted shapes"):
        Parameter(torch.ones(5), shape=(2, 3))
    with pytest.raises(ValueError, match="`init_func` is required"):
        State(shape=(2,))
    assert isinstance(Parameter(Constant(torch.ones(2))), SimulationParameter)


def test_families_select_by_equality_and_alias():
    net = seed_net()
    weights = net.parameters("".join(["wei", "ghts"]))  # not interned: equality, not identity
    assert list(weights) == ["0_LinearTorch", "2_TorchResidual", "3_LinearTorch"]
    assert list(weights["2_TorchResidual"]) == ["0_LinearTorch", "1_LIFTorch"]
    assert list(weights["2_TorchResidual"]["1_LIFTorch"]) == ["w_rec"]
    biases = net.parameters("bias")
    assert biases == net.parameters("biases")
    assert list(biases) == ["1_LIFTorch", "2_TorchResidual", "4_LIFTorch"]
    with pytest.raises(ValueError, match="unknown family 'weigths'.*Known families"):
        net.parameters("weigths")


def test_parameters_none_includes_empty_submodules():
    p = Sequential(LinearTorch((2, 2)), LIFTorch(2)).parameters()
    assert list(p["0_LinearTorch"]) == ["weight"]
    assert set(p["1_LIFTorch"]) == {"tau_mem", "tau_syn", "bias", "threshold"}
    assert len(list(p.astorch())) == 5


def test_astorch_yields_the_torch_parameters():
    net = seed_net()
    assert [id(t) for t in net.parameters().astorch()] == [id(t) for t in nn.Module.parameters(net)]


def test_state_and_simulation_parameters():
    lif = LIFTorch(2)
    assert set(lif.state()) == {"vmem", "isyn", "spikes"}
    assert lif.state()["isyn"].shape == (2, 1)
    sim = lif.simulation_parameters()
    assert "w_rec" in sim and "w_rec" not in lif.parameters()


def test_set_attributes_checks_shapes_and_reset():
    lin = LinearTorch((2, 3))
    lin.set_attributes({"weight": torch.zeros(2, 3)})
    assert lin.weight.abs().sum() == 0
    assert isinstance(lin.weight, nn.Parameter) and lin.weight.is_leaf
    with pytest.raises(ValueError, match=r"must be of shape \(2, 3\) \(got \(3, 2\)\)"):
        lin.weight = torch.zeros(3, 2)
    lin.reset_parameters()
    assert lin.weight.abs().sum() > 0
    with pytest.raises(TypeError, match="expected a nested dict"):
        lin.set_attributes([1, 2])


def test_modules_and_names():
    net = seed_net()
    mods = net.modules()
    assert list(mods) == [
        "0_LinearTorch",
        "1_LIFTorch",
        "2_TorchResidual",
        "3_LinearTorch",
        "4_LIFTorch",
    ]
    assert net.name == "" and mods["1_LIFTorch"].name == "'1_LIFTorch'"
    assert mods["1_LIFTorch"].full_name == "LIFTorch '1_LIFTorch'"
    assert net[0] is mods["0_LinearTorch"] and net["4_LIFTorch"] is mods["4_LIFTorch"]


def test_auto_batch():
    lin = LinearTorch((2, 3), weight=torch.ones(2, 3))
    assert lin(torch.ones(5, 2))[0].shape == (1, 5, 3)
    out = lin(torch.ones(5))[0]  # (T,) is one sequence of T steps, broadcast to the channels
    assert out.shape == (1, 5, 3) and torch.all(out == 2)
    with pytest.raises(ValueError, match="wrong neuron dimension.*expected 2 channels.*got 4"):
        lin(torch.ones(1, 5, 4))
    with pytest.raises(ValueError, match=r"expected shape \(T,\), \(T, Nin\) or \(B, T, Nin\)"):
        lin(torch.ones(1, 1, 5, 2))
    with pytest.raises(TypeError, match="expected a tensor"):
        lin("abc")


def test_sequential_naming_and_errors():
    a, b, c = LinearTorch((2, 2)), LinearTorch((2, 2)), LinearTorch((2, 2))
    seq = Sequential(OrderedDict(first=a, second=b), c)
    assert list(seq.modules()) == ["first", "second", "2_LinearTorch"]
    with pytest.raises(ValueError, match="already exists"):
        seq.append(LinearTorch((2, 2)), "first")
    with pytest.raises(ValueError, match=r"output of submodule 0 \(LinearTorch\).*3 ≠ 2"):
        Sequential(LinearTorch((2, 3)), LinearTorch((2, 2)))
    with pytest.raises(ValueError, match=r"\['shape'\] cannot be passed"):
        Sequential(LinearTorch((2, 2)), shape=(2, 2))
    with pytest.raises(TypeError, match="expected torch modules"):
        Sequential("not a module")
    with pytest.raises(ValueError, match="must be identical for a residual block"):
        Residual(LinearTorch((2, 3)))


def test_record_outputs_keep_history():
    net = seed_net()
    out, state, rec = net(torch.ones(1, 10, 3))
    assert rec["0_LinearTorch_output"].grad_fn is not None
    assert rec["0_LinearTorch"] == {} and rec["1_LIFTorch"] == {}
    assert set(state["1_LIFTorch"]) == {"vmem", "isyn", "spikes"}
    out, state, rec = net(torch.ones(1, 10, 3), record=True)
    assert set(rec["1_LIFTorch"]) == {"vmem", "isyn", "irec", "spikes"}
    assert rec["2_TorchResidual"]["1_LIFTorch"]["isyn"].shape == (1, 10, 5, 1)
    rec["4_LIFTorch_output"].sum().backward()


def test_torch_api_does_not_keep_intermediate_outputs_alive():
    """Under the torch API the record is never returned, so the ``'<name>_output'`` entries
    (which would hold every intermediate output until the end of the forward pass) are not
    built; the seed-style call keeps them (api.md: present even with record=False)."""
    import weakref

    def alive_at_end(net):
        refs = {}
        first = net[0]
        last = net[len(net) - 1]
        seen = []

        def keep_ref(mod, inp, out):  # (a hook that returns a value replaces the output)
            refs["o"] = weakref.ref(out)

        def check(mod, inp, out):
            seen.append(refs["o"]() is not None)

        h1 = first.register_forward_hook(keep_ref)
        h2 = last.register_forward_hook(check)
        with torch.no_grad():
            net(torch.ones(2, 4, 3))
        h1.remove()
        h2.remove()
        return seen[0]

    assert alive_at_end(seed_net()) is True
    assert alive_at_end(seed_net().to_torch()) is False
    out, _, rec = seed_net()(torch.ones(1, 10, 3), record=False)
    assert "2_TorchResidual_output" in rec and "0_LinearTorch_output" in rec["2_TorchResidual"]


def test_to_torch_api_and_residual():
    net = seed_net().to_torch()
    out = net(torch.ones(2, 4, 3))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 4, 3)
    assert all(isinstance(p, nn.Parameter) for p in net.parameters())
    assert len(list(net.modules())) == 8
    res = Residual(LinearTorch((2, 2), weight=torch.zeros(2, 2))).to_torch()
    assert torch.equal(res(torch.ones(1, 3, 2)), torch.ones(1, 3, 2))


def test_plain_torch_modules_inside_sequential():
    net = Sequential(nn.Linear(3, 4), LIFTorch(4))
    assert net.shape == (3, 4)
    assert list(net.parameters("weights")) == ["0_Linear"]
    assert set(net.parameters("biases")) == {"0_Linear", "1_LIFTorch"}
    out, _, _ = net(torch.ones(1, 5, 3))
    assert out.shape == (1, 5, 4)
    clone = pickle.loads(pickle.dumps(net))
    assert type(clone[0]).__name__ == "Linear" and torch.equal(clone[0].weight, net[0].weight)


def test_state_keeps_the_batch_and_reports_mismatch():
    lif = LIFTorch(2, threshold=100.0)
    lif(torch.ones(3, 4, 2))
    assert lif.vmem.shape == (3, 2)
    assert not torch.equal(lif.vmem[0], torch.zeros(2))
    with pytest.raises(ValueError, match="call `reset_state\\(\\)`"):
        lif(torch.ones(2, 4, 2))
    lif.reset_state()
    assert lif.vmem.shape == (2,)
    lif(torch.ones(2, 4, 2))


@pytest.mark.parametrize("record", [False, True])
def test_copy_pickle_state_dict_round_trips(record):
    net = seed_net()
    x = torch.rand(2, 6, 3) * 3
    net(x, record=record)
    for clone in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert repr(clone) == repr(net)
        for (k, a), (_, b) in zip(net.state_dict().items(), clone.state_dict().items()):
            assert torch.equal(a, b), k
    fresh = seed_net()
    fresh.load_state_dict(net.state_dict())
    net.reset_state()
    fresh.reset_state()
    assert torch.equal(net(x)[0], fresh(x)[0])


def test_torch_module_from_torch_rejects_non_modules():
    with pytest.raises(TypeError, match="expected a torch.nn.Module"):
        TorchModule.from_torch(42)


def test_set_attributes_is_all_or_nothing():
    net = Sequential(LinearTorch((2, 2)), LinearTorch((2, 2)))
    w0 = net[0].weight.clone()
    with pytest.raises(ValueError, match="must be of shape"):
        net.set_attributes(
            {
                "0_LinearTorch": {"weight": torch.zeros(2, 2)},
                "1_LinearTorch": {"weight": torch.zeros(3)},
            }
        )
    assert torch.equal(net[0].weight, w0)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        (dict(shape=(2, 2), weight=torch.tensor([[1.0, float("nan")], [0.0, 0.0]])), ValueError,
         "weight: expected finite values"),
        (dict(shape=(2, 2), weight="w"), TypeError, "weight: expected a number or a tensor"),
        (dict(shape=(2, 2), weight=torch.ones(3, 3)), ValueError, "fits none of the permitted"),
        (dict(shape=3), ValueError, "2-element shape"),
        (dict(shape=(2, 0)), ValueError, "positive ints"),
    ],
)  # fmt: skip
def test_linear_rejects_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        LinearTorch(**kwargs)
