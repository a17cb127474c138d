"""Config validation: bad settings fail before any training, naming the key and the valid ones."""

import textwrap

import pytest

from snnqat.training.config import TrainConfig, demo_config, load_config, tiny_config


def test_defaults_are_the_demo():
    cfg = TrainConfig()
    assert cfg == demo_config()
    assert cfg.data.n_class == 8 and cfg.model.hidden == (64,)
    assert cfg.model.hidden_max_spikes == 31 and cfg.model.output_max_spikes == 1


def test_round_trip_through_dict():
    cfg = TrainConfig.from_dict(
        {
            "model": {"hidden": [8, 4], "recurrent": True},
            "float": {"transforms": {"weights": {"name": "dropout", "dropout_prob": 0.2}}},
            "qat": {"method": "channel", "trainable": ["weights", "thresholds"]},
        }
    )
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.float.transforms["weights"].params == {"dropout_prob": 0.2}


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"sed": 1}, r"unknown key 'sed'\. Valid keys in the top level: seed, device, data"),
        (
            {"model": {"hiden": [3]}},
            r"unknown key 'model\.hiden'\. Valid keys in \[model\]: hidden",
        ),
        ({"qat": {"epoch": 3}}, r"unknown key 'qat\.epoch'\. Valid keys in \[qat\]: epochs"),
        ({"float": {"lr": "fast"}}, r"float\.lr: expected a number, got 'fast'"),
        ({"float": {"lr": -1.0}}, r"float\.lr: expected a finite number > 0"),
        ({"float": {"epochs": 2.5}}, r"float\.epochs: expected an int, got 2\.5"),
        ({"model": {"hidden": 64}}, r"model\.hidden: expected a list of ints"),
        ({"model": {"hidden": [0]}}, r"model\.hidden\[0\]: expected an int >= 1"),
        ({"model": {"recurrent": 1}}, r"model\.recurrent: expected a bool"),
        ({"model": {"surrogate": "sigmoid"}}, r"model\.surrogate: expected one of"),
        ({"model": {"dash_mem": 16}}, r"model\.dash_mem: expected a number in \[0, 15\]"),
        ({"data": {"n_class": 10}}, r"data\.n_class: expected at most 8 .*8 output neurons"),
        ({"data": {"test_fraction": 1.5}}, r"data\.test_fraction: expected a number in \(0, 1\)"),
        (
            {"qat": {"method": "perchannel"}},
            r"qat\.method: expected one of \['global', 'channel'\]",
        ),
        ({"qat": {"schedule": "step"}}, r"qat\.schedule: expected one of \['constant', 'cosine'\]"),
        ({"float": {"trainable": ["weight", "tau"]}}, r"float\.trainable: expected a parameter "),
        ({"device": "tpu"}, r"device: expected one of \['auto', 'cpu', 'cuda'\]"),
        ({"model": {"hidden": [600, 600]}}, r"at most 1000 hidden neurons"),
        ({"data": []}, r"data: expected a table"),
        ({"float": {"segment_steps": -1}}, r"float\.segment_steps: expected an int >= 0"),
        (
            {"qat": {"segment_steps": 10}},
            r"qat\.segment_steps: expected 0 \(checkpointing in time is not supported",
        ),
    ],
)
def test_invalid_settings_name_key_and_valid_values(data, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig.from_dict(data)


@pytest.mark.parametrize(
    ("transform", "match"),
    [
        ({"name": "blur"}, r"float\.transforms\.weights: .*expected one of \['deterministic_round"),
        ({"dropout_prob": 0.1}, r"float\.transforms\.weights: missing key 'name'\. Valid names"),
        (
            {"name": "dropout", "p": 0.1},
            r"transform 'dropout': unknown parameter 'p'\. Valid parameters: dropout_prob, rescale",
        ),
        ({"name": "dropout", "burn_in": "yes"}, r"float\.transforms\.weights\.burn_in: expected a"),
    ],
)
def test_invalid_transforms(transform, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig.from_dict({"float": {"transforms": {"weights": transform}}})


def test_unknown_transform_family():
    with pytest.raises(ValueError, match=r"float\.transforms: expected a parameter family, one of"):
        TrainConfig.from_dict({"float": {"transforms": {"synapses": {"name": "dropout"}}}})


def test_load_toml(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        textwrap.dedent(
            """
            seed = 3
            [model]
            hidden = [32]
            [qat]
            epochs = 2
            lr = 5e-4
            [qat.transforms.weights]
            name = "gaussian_mismatch"
            percent_deviation = 5.0
            """
        )
    )
    cfg = load_config(path)
    assert (cfg.seed, cfg.model.hidden, cfg.qat.epochs, cfg.qat.lr) == (3, (32,), 2, 5e-4)
    assert cfg.qat.transforms["weights"].name == "gaussian_mismatch"


def test_load_toml_errors(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[model\nhidden = 3\n")
    with pytest.raises(ValueError, match=r"is not valid TOML"):
        load_config(path)
    path.write_text("[modle]\nhidden = [3]\n")
    with pytest.raises(ValueError, match=r"unknown key 'modle'\. Valid keys in the top level"):
        load_config(path)


def test_replace_and_tiny():
    assert tiny_config().replace(**{"qat.epochs": 0}).qat.epochs == 0
    with pytest.raises(ValueError, match=r"float\.epochs: expected an int >= 0"):
        tiny_config().replace(**{"float.epochs": -1})


def test_example_config_lists_the_defaults():
    import pathlib

    path = pathlib.Path(__file__).parents[2] / "examples" / "train_config.toml"
    assert load_config(path) == TrainConfig()
