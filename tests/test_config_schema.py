"""The config checks of the commands: sizes, counts, dataset and split, each named in its error."""

import pytest

from cvft_tf.configs import cvact, cvusa, synthetic
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


def test_fov_args_cut_queries_and_keep_dsm_maps_width_aligned():
    config = synthetic.get_config("cvft,fov90")
    assert tuple(config.model.ground_size) == (48, 66) and tuple(config.model.polar_size) == (48, 264)
    assert config.data.ground_fov_deg == 90.0 and config.data.unknown_heading
    dsm = synthetic.get_config("dsm,fov70")
    assert tuple(dsm.model.ground_size) == (48, 48) and tuple(dsm.model.polar_size) == (48, 256)
    assert dsm.data.ground_fov_deg == 67.5
    assert dsm.model.aggregator.map_channels == 16
    for config in (config, dsm, synthetic.get_config("dsm,fov360,smoke")):
        config.data.root = "/data"
        check_model_section(config)
        check_dataset_sections(config)
    with pytest.raises(ValueError, match="Unknown config argument 'fov400'"):
        synthetic.get_config("fov400")


def test_a_polar_branch_must_see_the_panorama_the_queries_are_cut_from():
    config = synthetic.get_config("dsm,fov90")
    config.data.root = "/data"
    config.model.polar_size = (48, 64)
    with pytest.raises(ConfigError, match=r"polar_size must be the panorama the 90-degree queries .* \(48, 256\)"):
        check_model_section(config)


@pytest.mark.parametrize("noise", ["data.orientation_noise_deg", "eval.orientation_noise_deg"])
def test_orientation_noise_and_unknown_headings_do_not_combine(noise):
    config = synthetic.get_config("cvft,fov180")
    config.data.root = "/data"
    section, name = noise.split(".")
    config[section][name] = 20.0
    with pytest.raises(ConfigError, match=f"config.{noise} and config.data.ground_fov_deg"):
        check_dataset_sections(config)
    config[section][name] = 0.0
    config.data.ground_fov_deg = 0.0
    with pytest.raises(ConfigError, match=r"field of view must be in \(0, 360\]"):
        check_dataset_sections(config)


def test_each_config_gives_the_ground_footprint_of_its_aerial_tiles():
    # CVUSA: 750 px of zoom-19 imagery at about 0.227 m per pixel; CVACT: 1200 px at 0.12 m;
    # the synthetic main job: the writer's 170 m tiles.
    assert cvusa.get_config().data.aerial_footprint_m == pytest.approx(750 * 0.2267, abs=0.5)
    assert cvact.get_config().data.aerial_footprint_m == pytest.approx(1200 * 0.12)
    assert synthetic.get_config().data.aerial_footprint_m == 170.0
