"""Built-in config names (``--config=synthetic:smoke``) resolve to the packaged files."""

import os

import pytest

from cvft_tf import configs


def test_the_names_are_the_packaged_configs():
    assert configs.NAMES == ("cvact", "cvusa", "gsv_cities", "place_synthetic", "synthetic")


def test_a_name_resolves_to_the_packaged_file_with_its_arg():
    assert configs.resolve("synthetic:smoke") == os.path.join(configs.FOLDER, "synthetic.py") + ":smoke"
    assert configs.resolve("cvusa") == os.path.join(configs.FOLDER, "cvusa.py")


def test_a_path_is_kept():
    assert configs.resolve("configs/cvusa.py:dsm,smoke") == "configs/cvusa.py:dsm,smoke"
    assert configs.resolve("/elsewhere/mine.py") == "/elsewhere/mine.py"


def test_an_unknown_name_lists_the_names():
    with pytest.raises(ValueError, match="unknown config 'synthetc'.*cvact, cvusa, gsv_cities, place_synthetic, synthetic"):
        configs.resolve("synthetc:smoke")
