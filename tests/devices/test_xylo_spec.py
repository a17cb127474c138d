"""XyloLimits and XyloSpec: validation messages, normalisation, and the file format."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from xylo_strategies import LIMITS, specs

from snnqat.devices.xylo import SPEC_FORMAT, SPEC_FORMAT_VERSION, XyloLimits, XyloSpec


# ---------------------------------------------------------------------- limits
def test_limits_defaults_and_derived_ranges():
    lim = XyloLimits()
    assert (lim.max_inputs, lim.max_hidden, lim.max_outputs) == (16, 1000, 8)
    assert (lim.weight_min, lim.weight_max) == (-128, 127)
    assert (lim.state_min, lim.state_max) == (-32768, 32767)
    assert (lim.threshold_min, lim.threshold_max) == (1, 32767)
    assert (lim.max_hidden_spikes, lim.max_output_spikes, lim.max_input_spikes) == (31, 1, 15)
    assert (lim.max_dash, lim.max_synapses, lim.max_alias_targets) == (15, 2, 1)
    assert lim.replace(max_outputs=16) == XyloLimits(max_outputs=16)


@pytest.mark.parametrize(
    "changes, error, match",
    [
        ({"max_hidden": 0}, ValueError, r"max_hidden: expected an int >= 1, got 0"),
        ({"weight_bits": 1}, ValueError, r"weight_bits: expected an int in \[2, 32\], got 1"),
        ({"max_dash": -1}, ValueError, "max_dash"),
        ({"max_output_spikes": 0}, ValueError, "max_output_spikes"),
        ({"weight_bits": 17}, ValueError, "weight_bits: expected at most state_bits=16"),
        ({"threshold_bits": 20}, ValueError, "threshold_bits: expected at most state_bits"),
        ({"max_inputs": 16.0}, TypeError, "max_inputs: expected an int, got float"),
        ({"max_synapses": True}, TypeError, "max_synapses: expected an int, got bool"),
    ],
)
def test_limits_refuse_nonsense(changes, error, match):
    with pytest.raises(error, match=match):
        XyloLimits(**changes)


def test_limits_are_frozen():
    with pytest.raises(AttributeError):
        XyloLimits().max_hidden = 3  # type: ignore[misc]


# ---------------------------------------------------------------------- construction
def test_zeros_is_valid_and_sized():
    spec = XyloSpec.zeros(3, 4, 2, n_synapses=2)
    spec.validate()
    assert (spec.n_inputs, spec.n_hidden, spec.n_outputs, spec.n_synapses) == (3, 4, 2, 2)
    assert spec.aliases == [[], [], [], []]
    assert repr(spec) == (
        "XyloSpec(Nin=3, Nhid=4, Nout=2, Nsyn=2, weight_shift=(0, 0, 0), aliased=0, dt=0.001)"
    )


def test_one_synapse_arrays_get_a_synapse_axis_and_inputs_are_copied():
    weights_in = np.ones((2, 3), np.int8)
    spec = XyloSpec.zeros(
        2, 3, 1, weights_in=weights_in, weights_rec=np.zeros((3, 3), int),
        dash_syn=np.array([1, 2, 3]), weight_shift_in=np.int64(2), aliases=[np.array([1]), [], []],
    )  # fmt: skip
    spec.validate()
    assert spec.weights_in.shape == (2, 3, 1) and spec.weights_in.dtype == np.int8
    assert spec.dash_syn.shape == (3, 1) and spec.weights_rec.shape == (3, 3, 1)
    assert type(spec.weight_shift_in) is int and spec.aliases == [[1], [], []]
    weights_in[0, 0] = 5
    assert spec.weights_in[0, 0, 0] == 1


def test_equality_compares_values():
    a = XyloSpec.zeros(2, 3, 1)
    b = XyloSpec.zeros(2, 3, 1, weights_in=np.zeros((2, 3, 1), np.int8))
    assert a == b
    b.weights_in[1, 2, 0] = 1
    assert a != b
    assert a != XyloSpec.zeros(2, 3, 1, dt=2e-3)
    assert a != XyloSpec.zeros(2, 3, 1, aliases=[[1], [], []])
    assert a != "spec"


# ---------------------------------------------------------------------- validation
def _bad(name, value):
    spec = XyloSpec.zeros(3, 4, 2, n_synapses=2)
    if isinstance(value, tuple):  # (index, value)
        getattr(spec, name)[value[0]] = value[1]
    else:
        setattr(spec, name, value)
    return spec


@pytest.mark.parametrize(
    "name, value, match",
    [
        ("weights_in", np.zeros((3, 4, 2)), r"weights_in: expected an integer dtype, got float64"),
        ("threshold", np.ones(4, bool), r"threshold: expected an integer dtype, got bool"),
        (
            "weights_in",
            np.zeros((3, 4), int),
            r"weights_in: expected a 3-D array \(Nin, Nhid, Nsyn\)",
        ),
        ("weights_rec", np.zeros((4, 5, 2), int), r"weights_rec: expected shape .* = \(4, 4, 2\)"),
        ("weights_out", np.zeros(4, int), r"weights_out: expected a 2-D array \(Nhid, Nout\)"),
        ("dash_syn", np.zeros((4, 1), int), r"dash_syn: expected shape \(Nhid, Nsyn\) = \(4, 2\)"),
        ("bias_out", np.zeros(3, int), r"bias_out: expected shape \(Nout,\) = \(2,\), got \(3,\)"),
        ("weights_in", ((0, 1, 1), 128), r"weights_in: expected values in \[-128, 127\] .*128 at"),
        ("weights_out", ((3, 1), -129), r"weights_out: .*weight_bits=8.*-129 at index \(3, 1\)"),
        ("dash_mem", (2, 16), r"dash_mem: expected values in \[0, 15\] .*max_dash=15"),
        ("dash_syn_out", (0, -1), r"dash_syn_out: expected values in \[0, 15\]"),
        ("threshold", (1, 0), r"threshold: expected values in \[1, 32767\]"),
        ("threshold_out", (1, 40000), r"threshold_out: expected values in \[1, 32767\]"),
        ("bias", (0, -32769), r"bias: expected values in \[-32768, 32767\] .*state_bits=16"),
        ("weight_shift_rec", 1.0, r"weight_shift_rec: expected an int, got float"),
        ("weight_shift_out", -1, r"weight_shift_out: expected an int in \[0, 15\]"),
        ("aliases", [[], []], r"aliases: expected a list with one list .* \(Nhid = 4\), got len"),
        ("aliases", [[4], [], [], []], r"aliases\[0\]: expected hidden-neuron indices in \[0, 3\]"),
        ("aliases", [[1.0], [], [], []], r"aliases\[0\]: expected a list of int"),
        ("aliases", [[1, 2], [], [], []], r"aliases\[0\]: expected at most 1 alias target"),
        ("dt", 0.0, r"dt: expected a finite number of seconds > 0, got 0.0"),
        ("dt", float("nan"), r"dt: expected a finite number"),
    ],
)
def test_validate_names_the_field_the_limit_and_the_value(name, value, match):
    with pytest.raises(ValueError, match=match):
        _bad(name, value).validate()


def test_shifted_weights_must_fit_the_state():
    spec = XyloSpec.zeros(1, 1, 1, weights_in=[[[127]]], weight_shift_in=8)
    spec.validate()
    spec.weight_shift_in = 9
    with pytest.raises(ValueError, match=r"weight_shift_in: .*w << 9 .*\[65024, 65024\]"):
        spec.validate()
    spec.weights_in[0, 0, 0] = -2
    spec.weight_shift_in = 14
    spec.validate()
    spec.weights_in[0, 0, 0] = 2
    with pytest.raises(ValueError, match=r"\[32768, 32768\]"):
        spec.validate()


def test_sizes_are_checked_against_the_limits():
    with pytest.raises(ValueError, match=r"expected 1 <= Nin <= 16 \(XyloLimits.max_inputs\)"):
        XyloSpec.zeros(17, 2, 1).validate()
    with pytest.raises(ValueError, match=r"expected 1 <= Nout <= 8 .*got Nout = 9"):
        XyloSpec.zeros(2, 2, 9).validate()
    with pytest.raises(ValueError, match="Nsyn <= 1"):
        XyloSpec.zeros(2, 2, 1, n_synapses=2).validate(XyloLimits(max_synapses=1))
    with pytest.raises(ValueError, match="Nhid <= 1000"):
        XyloSpec.zeros(2, 0, 1).validate()
    XyloSpec.zeros(2, 2, 9).validate(XyloLimits(max_outputs=16))


# ---------------------------------------------------------------------- file format
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), limits=st.sampled_from(LIMITS))
def test_save_load_round_trip(tmp_path_factory, data, limits):
    spec = data.draw(specs(limits))
    spec.dt = data.draw(st.floats(1e-6, 1.0))
    path = tmp_path_factory.mktemp("spec") / "net.xylo"
    spec.save(path)
    loaded = XyloSpec.load(path)
    assert loaded == spec
    assert all(getattr(loaded, n).dtype == getattr(spec, n).dtype for n in ("bias", "weights_in"))
    assert path.exists() and not path.with_suffix(".xylo.npz").exists()


def test_file_members_are_documented(tmp_path):
    path = tmp_path / "net.npz"
    XyloSpec.zeros(2, 3, 1, aliases=[[2], [], [0]]).save(path)
    with np.load(path, allow_pickle=False) as archive:
        assert str(archive["format"]) == SPEC_FORMAT
        assert int(archive["format_version"]) == SPEC_FORMAT_VERSION == 1
        assert archive["alias_offsets"].tolist() == [0, 1, 1, 2]
        assert archive["alias_targets"].tolist() == [2, 0]
        assert archive["dt"].dtype == np.float64


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as archive:
        members = {k: archive[k] for k in archive.files}
    members.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del members[key]
    with open(path, "wb") as f:
        np.savez(f, **members)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"format_version": np.array(2)}, "expected XyloSpec format_version 1, got 2"),
        ({"format_version": None}, "format_version 1, got None"),
        ({"format": np.array("something.else")}, "expected member format=.*got 'something.else'"),
        ({"format": None}, "is not a saved XyloSpec"),
        ({"bias": None}, r"lacks member\(s\) \['bias'\]"),
        ({"alias_offsets": np.array([0, 5])}, "alias_offsets/alias_targets are inconsistent"),
    ],
)
def test_load_refuses_other_files(tmp_path, changes, match):
    path = tmp_path / "net.npz"
    XyloSpec.zeros(2, 3, 1).save(path)
    _rewrite(path, **changes)
    with pytest.raises(ValueError, match=match):
        XyloSpec.load(path)


def test_load_refuses_files_that_are_not_archives(tmp_path):
    for name, write in [
        ("text.txt", lambda p: p.write_text("weights_in = 1\n")),
        ("empty.npz", lambda p: p.write_bytes(b"")),
        ("array.npy", lambda p: np.save(p, np.arange(3))),
        ("other.zip", lambda p: zipfile.ZipFile(p, "w").close()),
    ]:
        path = tmp_path / name
        write(path)
        with pytest.raises(ValueError, match="is not a saved XyloSpec"):
            XyloSpec.load(path)
    with pytest.raises(FileNotFoundError):
        XyloSpec.load(tmp_path / "missing.npz")


def test_save_refuses_a_broken_spec(tmp_path):
    spec = XyloSpec.zeros(2, 3, 1)
    spec.threshold = spec.threshold.astype(float)
    with pytest.raises(ValueError, match="threshold: expected an integer dtype"):
        spec.save(tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()
