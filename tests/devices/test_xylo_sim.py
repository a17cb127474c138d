"""XyloSim: hand-computed cases, and equality with the slow reference on random specs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from xylo_reference import ReferenceXylo
from xylo_strategies import LIMITS, rasters, specs

from snnqat.devices.xylo import XyloLimits, XyloSim, XyloSpec
from snnqat.devices.xylo.sim import decay, safe_add

KEYS = ("Vmem", "Isyn", "Spikes", "Vmem_out", "Isyn_out")


def one_neuron(**fields) -> XyloSpec:
    """1 input, 1 hidden, 1 output; no leak surprises unless asked for."""
    defaults = dict(dash_mem=[15], dash_syn=[[15]], threshold=[32767], threshold_out=[32767])
    return XyloSpec.zeros(1, 1, 1, **{**defaults, **fields})


def run(spec: XyloSpec, raster, limits: XyloLimits | None = None):
    return XyloSim(spec, limits)(np.asarray(raster), record=True)


# ---------------------------------------------------------------------- primitives
def test_decay_floors_and_takes_a_minimum_step():
    v = [100, 3, -3, -17, 0, 5, -32768]
    dash = [4, 4, 4, 4, 4, 0, 15]
    assert decay(v, dash).tolist() == [6, 1, -1, -2, 0, 5, -1]


def test_safe_add_saturates_toward_the_sign_of_the_increment():
    x = [32760, 32760, -32768, 32767, -32000, 0]
    y = [7, 6, 0, -65535, -768, 40000]
    assert safe_add(x, y).tolist() == [32767, 32766, -32768, -32768, -32768, 32767]


@given(st.integers(-32768, 32767), st.integers(-(2**17), 2**17))
def test_safe_add_is_clip_for_states_in_range(x, y):
    assert int(safe_add(x, y)) == min(max(x + y, -32768), 32767)


# ---------------------------------------------------------------------- hand-computed steps
def test_synaptic_leak_is_a_floor_shift_with_a_minimum_step_of_one():
    spec = one_neuron(weights_in=[[[100]]], dash_syn=[[2]])
    _, _, rec = run(spec, [[1]] + [[0]] * 17)
    expected = [75, 57, 43, 33, 25, 19, 15, 12, 9, 7, 6, 5, 4, 3, 2, 1, 0, 0]
    assert rec["Isyn"][:, 0, 0].tolist() == expected


def test_negative_leak_floors_away_from_zero():
    spec = one_neuron(weights_in=[[[-100]]], dash_syn=[[2]])
    _, _, rec = run(spec, [[1]] + [[0]] * 13)
    expected = [-75, -56, -42, -31, -23, -17, -12, -9, -6, -4, -3, -2, -1, 0]
    assert rec["Isyn"][:, 0, 0].tolist() == expected


def test_bias_is_added_every_step_and_the_membrane_leaks_at_least_one():
    spec = one_neuron(bias=[10], threshold=[1000])
    _, _, rec = run(spec, [[0]] * 4)
    assert rec["Vmem"][:, 0].tolist() == [10, 19, 28, 37]


def test_input_channels_saturate_one_after_the_other():
    """sat(sat(32512 + 32512) - 16384) = 16383, but sat(sat(-16384 + 32512) + 32512) = 32767."""

    def isyn_after(weights):
        w = np.array(weights).reshape(3, 1, 1)
        spec = XyloSpec.zeros(3, 1, 1, weights_in=w, weight_shift_in=8, dash_syn=[[15]])
        return run(spec, [[1, 1, 1]])[2]["Isyn"][0, 0, 0]

    assert isyn_after([127, 127, -64]) == 16383 - 1  # then the minimum leak step
    assert isyn_after([-64, 127, 127]) == 32767 - 1


def test_bias_is_a_separate_saturating_add_after_the_synaptic_sum():
    """dv = sat(sat(0 + 25599 + 25599) - 10000) = 22767 (an unsaturated sum gives 32767)."""
    spec = XyloSpec.zeros(
        1, 1, 1, n_synapses=2, weights_in=[[[100, 100]]], weight_shift_in=8,
        dash_syn=[[15, 15]], dash_mem=[15], bias=[-10000], threshold=[32767],
    )  # fmt: skip
    _, _, rec = run(spec, [[1]])
    assert rec["Isyn"][0, 0].tolist() == [25599, 25599]
    assert rec["Vmem"][0, 0] == 22767


def test_synaptic_currents_are_summed_unsaturated_before_the_leak_is_added():
    """Step 1: leak -decay(-32767, 1) = 16384, isyn = (32256, -32767):
    dv = sat(16384 + (32256 - 32767)) = 15873; adding the synapses one at a time with
    saturation would give sat(sat(16384 + 32256) - 32767) = 0."""
    w = np.zeros((2, 1, 2), int)
    w[0, 0, 0], w[1, 0, 0], w[1, 0, 1] = -128, 127, -128
    spec = XyloSpec.zeros(
        2, 1, 1, n_synapses=2, weights_in=w, weight_shift_in=8,
        dash_syn=[[15, 15]], dash_mem=[1], threshold=[1000],
    )  # fmt: skip
    _, _, rec = run(spec, [[2, 0], [0, 2]])
    assert rec["Isyn"][:, 0].tolist() == [[-32767, 0], [32256, -32767]]
    assert rec["Vmem"][:, 0].tolist() == [-32767, -32767 + 15873]


def test_hidden_neurons_emit_at_most_31_spikes_and_keep_the_rest():
    spec = one_neuron(weights_in=[[[127]]], dash_syn=[[1]], threshold=[1])
    _, _, rec = run(spec, [[15]])
    assert rec["Isyn"][0, 0, 0] == 953  # 15 * 127 = 1905, minus 1905 >> 1
    assert rec["Spikes"][0, 0] == 31
    assert rec["Vmem"][0, 0] == 953 - 31


def test_output_neurons_emit_at_most_one_spike():
    spec = one_neuron(
        weights_in=[[[127]]], dash_syn=[[1]], threshold=[1],
        weights_out=[[127]], dash_syn_out=[1], threshold_out=[1],
    )  # fmt: skip
    out, _, rec = run(spec, [[15], [0]])
    assert out[:, 0].tolist() == [0, 1]  # one step of delay, then capped at 1
    assert rec["Isyn_out"][1, 0] == 1969  # 31 * 127 = 3937, minus 3937 >> 1
    assert rec["Vmem_out"][1, 0] == 1968


def test_input_counts_are_capped_at_15():
    spec = one_neuron(weights_in=[[[3]]], dash_syn=[[1]], threshold=[7])
    reference = run(spec, [[15], [2]])
    for counts in ([[16], [2]], [[255], [2]], [[10_000], [2]]):
        out, state, rec = run(spec, counts)
        assert np.array_equal(out, reference[0])
        assert all(np.array_equal(state[k], reference[1][k]) for k in KEYS)
        assert all(np.array_equal(rec[k], reference[2][k]) for k in KEYS)


@pytest.mark.parametrize(
    "aliases, spikes, vmem",
    [
        ([[], []], [2, 30], [0, 26]),
        ([[1], []], [2, 31], [0, 59]),  # 2 aliased spikes count toward neuron 1's cap
        ([[], [0]], [31, 30], [0, 26]),  # a later source adds after neuron 0 fired
        ([[0], []], [4, 30], [0, 26]),  # onto itself: doubled
    ],
)
def test_aliases(aliases, spikes, vmem):
    """Neuron 0: 8 << 4 = 128 -> isyn 64 -> 2 spikes of 32. Neuron 1: 127 << 4 = 2032 ->
    isyn 1016 -> 30 spikes of 33, remainder 26."""
    spec = XyloSpec.zeros(
        1, 2, 1, weights_in=[[[8], [127]]], weight_shift_in=4, dash_syn=[[1], [1]],
        dash_mem=[15, 15], threshold=[32, 33], aliases=aliases,
    )  # fmt: skip
    _, _, rec = run(spec, [[1]], XyloLimits(max_alias_targets=1))
    assert rec["Spikes"][0].tolist() == spikes
    assert rec["Vmem"][0].tolist() == vmem


def test_each_hidden_hop_costs_one_step():
    spec = XyloSpec.zeros(
        1, 3, 1, dash_mem=[1] * 3, dash_syn=[[1]] * 3, threshold=[50] * 3,
        dash_mem_out=[1], dash_syn_out=[1], threshold_out=[50],
    )  # fmt: skip
    spec.weights_in[0, 0, 0] = 127
    spec.weights_rec[0, 1, 0] = spec.weights_rec[1, 2, 0] = 127
    spec.weights_out[2, 0] = 127
    out, _, rec = run(spec, [[1], [0], [0], [0], [0]])
    assert rec["Spikes"].T.tolist() == [[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0]]
    assert out[:, 0].tolist() == [0, 0, 0, 1, 0]


def test_leak_of_the_most_negative_membrane_with_dash_0_wraps_like_the_vendor():
    """-decay(-32768, 0) = 32768 is stored in int16 as -32768: the membrane stays there."""
    spec = XyloSpec.zeros(
        1, 1, 1, n_synapses=2, weights_in=[[[-128, -128]]], weight_shift_in=8,
        dash_syn=[[1, 1]], dash_mem=[0], threshold=[1000],
    )  # fmt: skip
    _, _, rec = run(spec, [[1], [0], [0], [0]])
    assert rec["Isyn"][:, 0, 0].tolist() == [-16384, -8192, -4096, -2048]
    assert rec["Vmem"][:, 0].tolist() == [-32768] * 4


def test_synaptic_input_is_lost_with_dash_syn_0():
    """The synaptic leak comes before the sum, so dash_syn = 0 empties isyn first."""
    spec = one_neuron(weights_in=[[[100]]], dash_syn=[[0]])
    _, _, rec = run(spec, [[1]])
    assert rec["Isyn"][0, 0, 0] == 0 and rec["Vmem"][0, 0] == 0


# ---------------------------------------------------------------------- against the reference
def assert_matches_reference(spec, limits, raster, sim=None, refs=None):
    sim = sim or XyloSim(spec, limits)
    out, state, rec = sim(raster, record=True)
    for b in range(raster.shape[0]):
        ref = refs[b] if refs else ReferenceXylo(spec, limits)
        expected = ref.run(raster[b].tolist())
        assert out[b].tolist() == expected["out"]
        for key in KEYS:
            assert rec[key][b].tolist() == expected[key], key
            assert state[key][b].tolist() == expected[key][-1], key


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), limits=st.sampled_from(LIMITS), batch=st.integers(1, 3))
def test_matches_reference_on_random_specs(data, limits, batch):
    spec = data.draw(specs(limits))
    raster = data.draw(rasters(spec.n_inputs, batch))
    assert_matches_reference(spec, limits, raster)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), limits=st.sampled_from(LIMITS))
def test_state_carries_over_between_calls(data, limits):
    spec = data.draw(specs(limits))
    first, second = data.draw(rasters(spec.n_inputs, 2)), data.draw(rasters(spec.n_inputs, 2))
    sim = XyloSim(spec, limits)
    refs = [ReferenceXylo(spec, limits) for _ in range(2)]
    assert_matches_reference(spec, limits, first, sim, refs)
    assert_matches_reference(spec, limits, second, sim, refs)


def test_matches_reference_on_a_larger_busy_network():
    rng = np.random.default_rng(0)
    nin, nhid, nout = 16, 40, 8
    spec = XyloSpec.zeros(
        nin, nhid, nout, n_synapses=2,
        weights_in=rng.integers(-128, 128, (nin, nhid, 2)),
        weights_rec=rng.integers(-128, 128, (nhid, nhid, 2)),
        weights_out=rng.integers(-128, 128, (nhid, nout)),
        weight_shift_in=6, weight_shift_rec=5, weight_shift_out=4,
        dash_mem=rng.integers(0, 16, nhid), dash_syn=rng.integers(0, 16, (nhid, 2)),
        dash_mem_out=rng.integers(0, 16, nout), dash_syn_out=rng.integers(0, 16, nout),
        threshold=rng.integers(1, 3000, nhid), threshold_out=rng.integers(1, 3000, nout),
        aliases=[[int(rng.integers(nhid))] if rng.random() < 0.3 else [] for _ in range(nhid)],
    )  # fmt: skip
    raster = rng.integers(0, 20, (2, 12, nin))
    assert_matches_reference(spec, XyloLimits(), raster)


# ---------------------------------------------------------------------- call conventions
@pytest.fixture
def small_sim() -> XyloSim:
    rng = np.random.default_rng(1)
    spec = XyloSpec.zeros(
        3, 5, 2, n_synapses=2, weights_in=rng.integers(-128, 128, (3, 5, 2)),
        weights_rec=rng.integers(-128, 128, (5, 5, 2)), weights_out=rng.integers(-128, 128, (5, 2)),
        dash_mem=[2] * 5, dash_syn=[[1, 3]] * 5, dash_mem_out=[2, 2], dash_syn_out=[1, 1],
        threshold=[60] * 5, threshold_out=[60, 60],
    )  # fmt: skip
    return XyloSim(spec)


def test_shapes_with_and_without_batch(small_sim):
    raster = np.random.default_rng(2).integers(0, 3, (4, 7, 3))
    out, state, rec = small_sim(raster, record=True)
    assert out.shape == (4, 7, 2) and out.dtype == np.int32
    shapes = {k: v.shape for k, v in rec.items()}
    assert shapes == {
        "Vmem": (4, 7, 5), "Isyn": (4, 7, 5, 2), "Spikes": (4, 7, 5),
        "Vmem_out": (4, 7, 2), "Isyn_out": (4, 7, 2),
    }  # fmt: skip
    assert {k: v.shape for k, v in state.items()} == {k: v[:, 0].shape for k, v in rec.items()}
    small_sim.reset_state()
    out1, state1, rec1 = small_sim(raster[1], record=True)
    assert np.array_equal(out1, out[1]) and out1.shape == (7, 2)
    assert all(np.array_equal(rec1[k], rec[k][1]) for k in KEYS)
    assert all(np.array_equal(state1[k], state[k][1]) for k in KEYS)
    assert small_sim(raster[1])[2] == {}


def test_stateful_calls_and_reset(small_sim):
    raster = np.random.default_rng(3).integers(0, 3, (10, 3))
    whole = small_sim(raster)[0]
    small_sim.reset_state()
    parts = np.concatenate([small_sim(raster[:4])[0], small_sim(raster[4:])[0]])
    assert np.array_equal(whole, parts)
    state = small_sim.state()
    assert state["Vmem"].shape == (5,)
    assert np.array_equal(small_sim.reset_state()(raster)[0], whole)
    again = small_sim(raster[4:], state={k: v for k, v in state.items()})[0]
    assert np.array_equal(again, whole[4:])


def test_unbatched_state_broadcasts_to_a_batch_but_other_batches_are_refused(small_sim):
    raster = np.random.default_rng(4).integers(0, 3, (6, 3))
    small_sim(raster[:3])
    batched = small_sim(np.stack([raster[3:]] * 2))[0]
    assert np.array_equal(batched[0], batched[1])
    with pytest.raises(ValueError, match="batch size 2 but the raster has 3"):
        small_sim(np.stack([raster] * 3))
    assert small_sim.state()["Isyn"].shape == (2, 5, 2)
    small_sim.reset_state()(raster[None])
    assert small_sim.state()["Vmem"].shape == (1, 5)
    assert small_sim.reset_state().state()["Vmem"].shape == (5,)


def test_torch_and_float_and_bool_rasters_are_accepted(small_sim):
    raster = np.random.default_rng(5).integers(0, 2, (6, 3))
    expected = small_sim.reset_state()(raster)[0]
    for same in (torch.tensor(raster, dtype=torch.float32), raster.astype(float), raster > 0):
        assert np.array_equal(small_sim.reset_state()(same)[0], expected)


@pytest.mark.parametrize(
    "raster, error, match",
    [
        (np.zeros((4, 2)), ValueError, r"shape \(T, Nin\) or \(B, T, Nin\) with Nin = 3"),
        (np.zeros(3), ValueError, r"got shape \(3,\)"),
        (np.zeros((1, 1, 4, 3)), ValueError, r"got shape \(1, 1, 4, 3\)"),
        (np.array([[0, -1, 0]]), ValueError, "non-negative spike counts, got -1"),
        (np.array([[0, 0.5, 0]]), ValueError, "integer spike counts, got 0.5"),
        (np.array([[0, np.nan, 0]]), ValueError, "integer spike counts, got nan"),
        (np.array([["a", "b", "c"]]), TypeError, "numeric raster"),
    ],
)
def test_malformed_rasters_are_refused(small_sim, raster, error, match):
    with pytest.raises(error, match=match):
        small_sim(raster)


def test_malformed_states_are_refused(small_sim):
    good = small_sim.state()
    with pytest.raises(ValueError, match="keys"):
        small_sim(np.zeros((2, 3), int), state={"Vmem": good["Vmem"]})
    bad = {**good, "Vmem": np.full(5, 40000)}
    with pytest.raises(ValueError, match=r"state\['Vmem'\]: expected integers in"):
        small_sim(np.zeros((2, 3), int), state=bad)
    with pytest.raises(ValueError, match=r"state\['Isyn'\]: expected shape"):
        small_sim(np.zeros((2, 3), int), state={**good, "Isyn": np.zeros(5, int)})


def test_construction_validates_and_copies_the_spec():
    spec = one_neuron(weights_in=[[[100]]])
    sim = XyloSim.from_spec(spec)
    spec.weights_in[0, 0, 0] = -100
    sim.spec.weights_in[0, 0, 0] = -100
    assert sim.spec.weights_in[0, 0, 0] == 100
    assert repr(sim) == "XyloSim(Nin=1, Nhid=1, Nout=1, Nsyn=1)"
    assert sim.shape == (1, 1, 1) and sim.dt == 1e-3 and sim.limits == XyloLimits()
    spec.threshold[0] = 0
    with pytest.raises(ValueError, match="XyloSpec.threshold"):
        XyloSim(spec)
    with pytest.raises(TypeError, match="expected an XyloSpec"):
        XyloSim({"weights_in": 1})  # type: ignore[arg-type]


def test_package_exports():
    import snnqat.devices.xylo as xylo

    for name in xylo.__all__:
        assert getattr(xylo, name) is not None
