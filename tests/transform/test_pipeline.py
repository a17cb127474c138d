"""The transformation pipeline: configs, patching, burn-in, unpatching, composition."""

import copy
import functools
import pickle
import warnings

import pytest
import torch
from torch import nn

import snnqat.transform.torch_transform as tt
import snnqat.utilities.tree_utils as tu
from snnqat.nn.combinators import Residual, Sequential
from snnqat.nn.modules import LIFTorch, LinearTorch


def seed_net(**last):
    return Sequential(
        LinearTorch((3, 5)),
        LIFTorch(5),
        Residual(LinearTorch((5, 5)), LIFTorch(5, has_rec=True)),
        LinearTorch((5, 3)),
        LIFTorch(3, **last),
    )


def double(p):
    return 2 * p


def test_weights_config_matches_seed():
    f = double
    cfg = tt.make_param_T_config(seed_net(), f, "weights")
    assert cfg == {
        "0_LinearTorch": {"weight": f},
        "2_TorchResidual": {"0_LinearTorch": {"weight": f}, "1_LIFTorch": {"w_rec": f}},
        "3_LinearTorch": {"weight": f},
    }
    assert type(cfg) is dict and type(cfg["2_TorchResidual"]) is dict


def test_biases_selects_lif_biases_decision_1():
    cfg = tt.make_param_T_config(seed_net(), double, "biases")
    assert cfg == {
        "1_LIFTorch": {"bias": double},
        "2_TorchResidual": {"1_LIFTorch": {"bias": double}},
        "4_LIFTorch": {"bias": double},
    }
    assert tt.make_param_T_config(seed_net(), double, "bias") == cfg


def test_family_errors_and_warnings_decision_3():
    with pytest.raises(ValueError, match="unknown family 'wieghts'. Known families: weights"):
        tt.make_param_T_config(seed_net(), double, "wieghts")
    with pytest.warns(UserWarning, match="no parameter of family 'decays'"):
        assert tt.make_param_T_config(seed_net(), double, "decays") == {}
    with pytest.raises(TypeError, match="expected a callable transform"):
        tt.make_param_T_config(seed_net(), 3, "weights")
    with pytest.raises(TypeError, match="expected an snnqat module"):
        tt.make_param_T_config(nn.Linear(2, 2), double, "weights")


def test_decay_and_bitshift_configs():
    cfg = tt.make_param_T_config(seed_net(leak_mode="decays"), double, "decays")
    assert cfg == {"4_LIFTorch": {"alpha": double, "beta": double}}
    cfg = tt.make_param_T_config(seed_net(leak_mode="bitshifts"), double, "bitshifts")
    assert cfg == {"4_LIFTorch": {"dash_mem": double, "dash_syn": double}}


def test_patched_network_transforms_in_forward():
    net = seed_net()
    tnet = tt.make_param_T_network(net, tt.make_param_T_config(net, double, "weights"))
    assert type(tnet[0]).__name__ == "TWrapper" and tnet[0].name == "'0_LinearTorch'"
    assert tnet[0]._mod.name == "'_mod'"
    x = torch.rand(1, 4, 3)
    ref = copy.deepcopy(net)
    for p in ref.parameters("weights").astorch():
        p.data *= 2
    assert torch.equal(tnet(x)[0], ref(x)[0])
    assert torch.equal(tnet(x)[2]["0_LinearTorch_output"], ref(x)[2]["0_LinearTorch_output"])
    weights = tnet.parameters("weights")
    assert list(weights["0_LinearTorch"]) == ["_mod"]
    assert tnet.state()["1_LIFTorch"].keys() == {"vmem", "isyn", "spikes"}
    assert tnet.state()["2_TorchResidual"]["1_LIFTorch"].keys() == {"_mod"}


def test_gradients_reach_original_parameters():
    net = Sequential(LinearTorch((2, 2)), LIFTorch(2))
    cfg = tt.make_param_T_config(net, lambda p: tt.round_passthrough(4 * p) / 4, "weights")
    tnet = tt.make_param_T_network(net, cfg)
    out, _, rec = tnet(torch.rand(1, 5, 2) * 4, record=True)
    rec["0_LinearTorch_output"].sum().backward()
    assert tnet[0]._mod.weight.grad is not None


def test_transform_runs_once_per_forward_decision_5():
    calls = []

    def counting(p):
        calls.append(1)
        return p

    net = Sequential(LinearTorch((2, 2)), LIFTorch(2, has_rec=True))
    tnet = tt.make_param_T_network(net, tt.make_param_T_config(net, counting, "weights"))
    tnet(torch.rand(1, 50, 2))
    assert len(calls) == 2  # weight + w_rec, once each for 50 time steps


def test_config_validation_before_modification_decision_4():
    net = seed_net()
    before = repr(net)
    bad = {"0_LinearTorch": {"weight": double}, "9_Nope": {"weight": double}}
    with pytest.raises(ValueError, match="key '9_Nope' matches no sub-module.*Valid keys"):
        tt.make_param_T_network(net, bad, inplace=True)
    with pytest.raises(ValueError, match="'alpha' is derived .* Valid keys"):
        tt.make_param_T_network(net, {"1_LIFTorch": {"alpha": double}}, inplace=True)
    with pytest.raises(ValueError, match="key 'wieght' is not a parameter or buffer"):
        tt.make_param_T_network(net, {"0_LinearTorch": {"wieght": double}}, inplace=True)
    with pytest.raises(TypeError, match="expected a callable transform"):
        tt.make_param_T_network(net, {"0_LinearTorch": {"weight": 1.0}}, inplace=True)
    with pytest.raises(TypeError, match="expected a dict"):
        tt.make_param_T_network(net, {"0_LinearTorch": double}, inplace=True)
    assert repr(net) == before


def test_activity_config_matches_seed():
    f = double
    cfg = tt.make_act_T_config(seed_net(), f, LinearTorch)
    assert cfg == {
        "": None,
        "0_LinearTorch": {"": f},
        "1_LIFTorch": {"": None},
        "2_TorchResidual": {"": None, "0_LinearTorch": {"": f}, "1_LIFTorch": {"": None}},
        "3_LinearTorch": {"": f},
        "4_LIFTorch": {"": None},
    }
    null = tt.make_act_T_config(seed_net())
    assert all(v is None for _, v in _leaves(null))
    with pytest.raises(TypeError, match="ModuleClass must be a class"):
        tt.make_act_T_config(seed_net(), f, "LinearTorch")
    with pytest.raises(ValueError, match="key 'x' matches no sub-module"):
        tt.make_act_T_network(seed_net(), {"x": {"": f}})


def _leaves(tree):
    return [(b, tu.get_nested(tree, b)) for b in tu.branches(tree)]


def test_act_wrapper_keeps_record_and_composite_transform_decision_6():
    net = seed_net()
    cfg = tt.make_act_T_config(net, torch.round, LinearTorch)
    cfg["2_TorchResidual"][""] = lambda x: 0 * x
    tnet = tt.make_act_T_network(net, cfg)
    assert type(tnet["2_TorchResidual"]).__name__ == "ActWrapper"
    out, _, rec = tnet(torch.ones(1, 6, 3), record=True)
    assert torch.equal(rec["0_LinearTorch_output"], rec["0_LinearTorch_output"].round())
    assert rec["2_TorchResidual_output"].abs().sum() == 0
    assert set(rec["2_TorchResidual"]["1_LIFTorch"]) == {"vmem", "isyn", "irec", "spikes"}
    lif = tt.make_act_T_network(LIFTorch(2), {"": torch.round})
    assert set(lif(torch.ones(1, 3, 2), record=True)[2]) == {"vmem", "isyn", "irec", "spikes"}


@pytest.mark.parametrize("param_first", [True, False])
def test_param_and_act_patching_compose_in_either_order(param_first):
    net = seed_net()
    x = torch.rand(1, 5, 3) * 2
    pcfg = tt.make_param_T_config(net, double, "weights")
    acfg = tt.make_act_T_config(net, torch.round, LinearTorch)
    if param_first:
        tnet = tt.make_param_T_network(net, pcfg)
        tnet = tt.make_act_T_network(tnet, tt.make_act_T_config(tnet, torch.round, LinearTorch))
    else:
        tnet = tt.make_act_T_network(net, acfg)
        tnet = tt.make_param_T_network(tnet, pcfg)
    ref = copy.deepcopy(net)
    for p in ref.parameters("weights").astorch():
        p.data *= 2
    ref = tt.make_act_T_network(ref, acfg)
    assert torch.equal(tnet(x)[0], ref(x)[0])
    clean = tt.remove_T_net(tnet)
    assert repr(clean) == repr(net)


def test_apply_T_burns_in_and_keeps_wrappers():
    net = Sequential(LinearTorch((2, 2), weight=torch.tensor([[0.3, -1.0], [0.6, 1.0]])))
    tnet = tt.make_param_T_network(net, {"0_LinearTorch": {"weight": torch.round}})
    burned = tt.apply_T(tnet)
    assert type(burned[0]).__name__ == "TWrapper"
    assert torch.equal(burned[0]._mod.weight, torch.tensor([[0.0, -1.0], [1.0, 1.0]]))
    assert burned[0]._mod.weight.is_leaf and burned[0]._mod.weight.requires_grad
    assert torch.equal(tnet[0]._mod.weight, net[0].weight)  # copy mode: original untouched


def test_remove_T_net_gives_back_objects_and_names_decision_8():
    net = seed_net()
    ids = [id(p) for p in nn.Module.parameters(net)]
    classes = [type(m) for m in net.modules().values()]
    cfg = tu.tree_update(
        tt.make_param_T_config(net, double, "weights"),
        tt.make_param_T_config(net, double, "thresholds"),
    )
    tnet = tt.make_param_T_network(net, cfg, inplace=True)
    back = tt.remove_T_net(tnet, inplace=True)
    assert back is net and repr(back) == repr(seed_net())
    assert [id(p) for p in nn.Module.parameters(back)] == ids
    assert [type(m) for m in back.modules().values()] == classes
    single = LinearTorch((2, 2))
    single._name = "foo"
    wrapped = tt.make_param_T_network(single, {"weight": double}, inplace=True)
    assert tt.remove_T_net(wrapped).name == "'foo'"  # no doubled quotes


def test_inplace_honoured_all_the_way_decision_9():
    net = seed_net()
    inner = net["2_TorchResidual"]["1_LIFTorch"]
    tt.make_param_T_network(net, tt.make_param_T_config(net, double, "weights"), inplace=True)
    assert net["2_TorchResidual"]["1_LIFTorch"]._mod is inner
    net2 = seed_net()
    lin = net2["2_TorchResidual"]["0_LinearTorch"]
    tt.make_act_T_network(net2, tt.make_act_T_config(net2, double, LinearTorch), inplace=True)
    assert net2["2_TorchResidual"]["0_LinearTorch"]._mod is lin


@pytest.mark.parametrize("stage", ["plain", "patched", "burned", "unpatched"])
def test_copy_pickle_state_dict_after_recording_decision_7(stage):
    net = seed_net()
    rounding = functools.partial(tt.deterministic_rounding, num_levels=16)
    tnet = tt.make_param_T_network(net, tt.make_param_T_config(net, rounding, "weights"))
    if stage == "plain":
        tnet = net
    x = torch.rand(2, 5, 3) * 2
    tnet(x, record=True)
    if stage in ("burned", "unpatched"):
        tnet = tt.apply_T(tnet)
    if stage == "unpatched":
        tnet = tt.remove_T_net(tnet)
    for clone in (copy.deepcopy(tnet), pickle.loads(pickle.dumps(tnet))):
        assert repr(clone) == repr(tnet)
        tnet.reset_state()
        clone.reset_state()
        assert torch.equal(clone(x)[0], tnet(x)[0])
    other = copy.deepcopy(tnet)
    other.load_state_dict(tnet.state_dict())


def test_silent_input_no_nan_decision_26():
    net = seed_net()
    cfg = tt.make_param_T_config(net, lambda p: tt.stochastic_rounding(p, num_levels=4))
    tnet = tt.make_act_T_network(
        tt.make_param_T_network(net, cfg),
        tt.make_act_T_config(net, lambda a: tt.deterministic_rounding(a, num_levels=16)),
    )
    for _ in range(2):
        out, state, _ = tnet(torch.zeros(1, 5, 3))
        assert torch.isfinite(out).all()
        assert all(torch.isfinite(v).all() for v in tu.tree_flatten(state)[0])


def test_plain_torch_module_transformed_decision_22():
    net = Sequential(nn.Linear(3, 4), LIFTorch(4))
    cfg = tt.make_param_T_config(net, torch.round, "weights")
    assert cfg == {"0_Linear": {"weight": torch.round}}
    tnet = tt.make_param_T_network(net, cfg)
    ref = copy.deepcopy(net)
    ref[0].weight.data = ref[0].weight.data.round()
    x = torch.rand(1, 3, 3)
    torch.testing.assert_close(tnet(x)[2]["0_Linear_output"], ref(x)[2]["0_Linear_output"])


def test_to_torch_with_patched_network_decision_10():
    net = seed_net()
    tnet = tt.make_param_T_network(net, tt.make_param_T_config(net, double, "weights"))
    tnet = tt.make_act_T_network(tnet, tt.make_act_T_config(tnet, torch.round, LinearTorch))
    out = tnet.to_torch()(torch.rand(1, 4, 3))
    assert isinstance(out, torch.Tensor) and out.shape == (1, 4, 3)


def test_nn_module_transform_is_registered_and_trains():
    lsq = tt.LSQQuantizer(n_bits=4)
    net = Sequential(LinearTorch((2, 2)))
    tnet = tt.make_param_T_network(net, {"0_LinearTorch": {"weight": lsq}})
    names = [n for n, _ in tnet.named_parameters()]
    assert any(n.endswith("_T_modules.weight.scale") or "scale" in n for n in names), names
    tnet(torch.rand(1, 3, 2))[0].sum().backward()
    scale = [p for n, p in tnet.named_parameters() if "scale" in n][0]
    assert scale.grad is not None


def test_seed_walkthrough_runs(capsys):
    import runpy
    from pathlib import Path

    path = Path(__file__).parents[2] / "examples" / "seed_walkthrough.py"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    assert "TWrapper '0_LinearTorch' with shape (3, 5) {" in out
    assert "ActWrapper '3_LinearTorch' with shape (5, 3) {" in out
    assert "{'dash_mem': <function <lambda>" in out


def test_wrapper_puts_the_parameters_back_also_when_the_call_raises():
    wrapped = tt.make_param_T_network(LinearTorch((2, 2)), {"weight": double})
    lin = wrapped._mod
    original = lin.weight
    seen = []
    lin.register_forward_pre_hook(lambda mod, args: seen.append(mod.weight.clone()))
    wrapped(torch.ones(1, 1, 2))
    assert torch.equal(seen[0], 2 * original) and lin.weight is original
    with pytest.raises(ValueError, match="expected 2 channels"):
        wrapped(torch.ones(1, 1, 3))
    assert lin.weight is original and isinstance(lin._parameters["weight"], nn.Parameter)
    del lin._parameters["weight"]  # gone after patching: no silent fallback to anything else
    with pytest.raises(AttributeError, match="has no parameter or buffer 'weight'"):
        wrapped(torch.ones(1, 1, 2))


def test_wrapper_state_is_the_state_query_and_a_transformed_buffer_keeps_its_end_value():
    net = Sequential(LinearTorch((2, 3)), LIFTorch(3))
    tnet = tt.make_param_T_network(net, tt.make_param_T_config(net, double, "weights"))
    tnet = tt.make_act_T_network(tnet, tt.make_act_T_config(tnet, torch.round, LinearTorch))
    _, state, _ = tnet(torch.rand(1, 6, 2) * 3)
    query = tnet.state()
    assert list(tu.branches(state)) == list(tu.branches(query))
    assert len(list(tu.branches(state))) == 3  # the LIF's vmem, isyn, spikes
    for branch in tu.branches(state):
        assert torch.equal(tu.get_nested(state, branch), tu.get_nested(query, branch))
    wrapped = tt.make_param_T_network(LIFTorch(2), {"vmem": lambda v: v + 0.25})
    lif = wrapped._mod
    _, state, _ = wrapped(torch.zeros(1, 1, 2))
    # the transformed state is what the step started from, and the buffer holds the end value
    assert torch.equal(lif.vmem, state["_mod"]["vmem"]) and lif.vmem.abs().sum() > 0
