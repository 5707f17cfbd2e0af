"""The address bar's settings: what goes in, what comes back, and what is refused."""

from __future__ import annotations

import pytest

from app import address, choices
from mlcore.config import DataConfig, TrainConfig


def test_settings_and_thresholds_round_trip_through_the_query_string():
    data = DataConfig(source="demo", image_size=64, n_images=None, indoor_probability=0.9, seed=7, demo_images=120)
    train = TrainConfig(architecture="compact", epochs=20, batch_size=64, learning_rate=2e-3, augmentation=False)
    params = address.encode(data, train, {"dog": 0.42, "cat": 0.5, "indoor": 0.01})
    assert params["data.indoor_probability"] == "0.9"
    assert params["train.augmentation"] == "false"
    assert params["thr.dog"] == "0.42"
    assert "data.validation_fraction" not in params  # defaults stay out of the address
    setup = address.decode(params)
    assert setup.data_config == data
    assert setup.train_config == train
    assert setup.thresholds == {"dog": 0.42, "cat": 0.5, "indoor": 0.01}
    assert setup.problems == []


def test_defaults_give_a_clean_address():
    assert address.encode(DataConfig(), TrainConfig(), {}) == {}
    assert address.decode({}) == address.Setup(None, None, {}, [])


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"data.image_size": "huge"}, "data.image_size: invalid literal"),
        ({"data.image_size": "4096"}, "image_size must be between 16 and 512"),
        ({"data.indoor_probability": "nan"}, "is not a finite number"),
        ({"data.data_dir": "/etc"}, "data.data_dir is not a data setting"),
        ({"train.augmentation": "maybe"}, "'maybe' is not true or false"),
        ({"train.architecture": "resnet152"}, "architecture must be one of"),
        ({"thr.dog": "1.5"}, "a threshold must be between 0 and 1"),
        ({"thr.cat": "x"}, "thr.cat: could not convert"),
        ({"data.source": "x" * 600}, "too long"),
    ],
)
def test_bad_values_are_reported_and_left_out(params, problem):
    setup = address.decode(params)
    assert setup.data_config is None
    assert setup.train_config is None
    assert setup.thresholds == {}
    assert len(setup.problems) == 1, setup.problems
    assert problem in setup.problems[0], setup.problems


def test_a_bad_value_does_not_spoil_the_good_ones():
    setup = address.decode({"data.seed": "3", "data.image_size": "x", "thr.dog": "0.3", "thr.cat": "2"})
    assert setup.data_config == DataConfig(seed=3)
    assert setup.thresholds == {"dog": 0.3}
    assert len(setup.problems) == 2


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        (DataConfig(image_size=100), "image size 100 is not one of 32, 48, 64, 96, 128, 160"),
        (DataConfig(source="demo", demo_images=20_000), "between 8 and 10,000"),
        (DataConfig(n_images=20_000), "between 8 and 10,000"),
        (DataConfig(validation_fraction=0.5), "validation_fraction cannot be set from an address"),
        (DataConfig(seed=2**40), "the seed must be between"),
    ],
)
def test_data_settings_the_form_cannot_show_are_refused(config, problem):
    assert problem in choices.data_problem(config)


def test_training_settings_the_form_cannot_show_are_refused():
    assert choices.train_problem(TrainConfig(epochs=500)) == "epochs must be at most 100"
    assert "learning rate 0.5 is not one of" in choices.train_problem(TrainConfig(learning_rate=0.5))
    assert choices.train_problem(TrainConfig(architecture="compact", epochs=100, batch_size=128)) is None
    assert choices.data_problem(DataConfig(source="demo", image_size=160, demo_images=10_000)) is None
