"""The config checks of the commands: sizes, counts, dataset and split, each named in its error."""

import pytest

from configs import cvact, cvusa, synthetic
from cvft_tf.config_schema import (
    ConfigError,
    check_dataset_sections,
    check_distribute_section,
    check_model_section,
    check_train_section,
)


def test_the_shipped_configs_pass():
    configs = (cvusa.get_config(), cvusa.get_config("salad,smoke"), cvact.get_config("vgg_gp"), synthetic.get_config())
    for config in configs:
        config.data.root = "/data"
        check_model_section(config)
        check_dataset_sections(config)
        check_distribute_section(config)
        check_train_section(config)


@pytest.mark.parametrize(
    "field, value, message",
    [
        (
            "model.ground_size",
            (3,),
            "config.model.ground_size must be (height, width), two positive integers; got (3,)",
        ),
        ("model.aerial_size", (64.0, 64.0), "config.model.aerial_size must be (height, width)"),
        ("model.map_size", (0, 4), "config.model.map_size must be (height, width), two positive integers; got (0, 4)"),
        ("data.raw_ground_size", (224,), "config.data.raw_ground_size must be (height, width)"),
        ("data.root", "", "config.data.root is empty: pass --config.data.root=/path/to/dataset"),
        ("data.name", "cvusa2", "config.data.name must be one of ('cvusa', 'cvact'), got 'cvusa2'"),
        ("eval.batch_size", 0, "config.eval.batch_size must be a positive integer, got 0"),
        ("eval.chunk_size", -1, "config.eval.chunk_size must be a positive integer, got -1"),
        ("eval.backend", "jax", "config.eval.backend must be one of ('numpy', 'tensorflow'), got 'jax'"),
        ("data.decoder", "pil", "config.data.decoder must be one of ('opencv', 'tensorflow'), got 'pil'"),
        (
            "train.mixed_precision",
            "float8",
            "config.train.mixed_precision must be one of ('', 'float16', 'bfloat16'), got 'float8'",
        ),
        ("train.steps_per_execution", 0, "config.train.steps_per_execution must be a positive integer, got 0"),
        (
            "distribute.strategy",
            "horovod",
            "config.distribute.strategy must be one of ('default', 'mirrored', 'multi_worker', 'tpu'), got 'horovod'",
        ),
        (
            "distribute.logical_cpus",
            -2,
            "config.distribute.logical_cpus must be 0 (no split) or a positive integer, got -2",
        ),
    ],
)
def test_config_values_the_commands_cannot_use(field, value, message):
    config = cvusa.get_config("smoke")
    config.data.root = "/data/cvusa"
    section, name = field.split(".")
    config[section][name] = value
    with pytest.raises(ConfigError) as caught:
        check_model_section(config)
        check_dataset_sections(config)
        check_distribute_section(config)
        check_train_section(config)
    assert str(caught.value).startswith(message)


def test_xla_is_refused_with_a_strategy_of_several_devices_per_program():
    config = cvusa.get_config("smoke")
    config.train.jit_compile = True
    check_train_section(config)
    config.distribute.strategy = "mirrored"
    with pytest.raises(ConfigError, match="config.train.jit_compile cannot be used with config.distribute.strategy"):
        check_train_section(config)


def test_a_cvact_split_that_does_not_exist():
    config = cvact.get_config("smoke")
    config.data.root = "/data/cvact"
    config.eval.split = "valAll"
    with pytest.raises(ConfigError, match=r"config.eval.split must be one of \['test', 'train', 'val'\] for CVACT"):
        check_dataset_sections(config)
