"""A model's encoders from a workdir and from its SavedModel: same descriptors, same fingerprint."""

import numpy as np
import pytest

from cvft_tf.configs import cvusa
from cvft_tf import checkpoints
from cvft_tf.export import export_saved_model
from cvft_tf.localization import encoders
from cvft_tf.localization.errors import LocalizationError
from cvft_tf.models.cross_view import build_model


def test_the_fingerprint_ignores_order_and_sees_every_value():
    arrays = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(4, np.float32)]
    first = encoders.fingerprint(arrays, (32, 176), (64, 64))
    assert encoders.fingerprint(arrays[::-1], (32, 176), (64, 64)) == first
    changed = [arrays[0].copy(), arrays[1]]
    changed[0][1, 2] += 1e-6
    assert encoders.fingerprint(changed, (32, 176), (64, 64)) != first
    assert encoders.fingerprint(arrays, (32, 176), (96, 96)) != first


def test_a_folder_without_a_saved_model_is_refused(tmp_path):
    with pytest.raises(LocalizationError, match="holds no saved_model.pb"):
        encoders.from_saved_model(str(tmp_path))


@pytest.mark.large
def test_a_workdir_and_its_export_give_the_same_model(tmp_path):
    config = cvusa.get_config("smoke")
    model = build_model(**config.model)
    (tmp_path / "run").mkdir()
    model.save(str(tmp_path / "run" / checkpoints.BEST_MODEL))
    export_saved_model(model, str(tmp_path / "saved_model"))
    from_workdir = encoders.from_workdir(config, str(tmp_path / "run"))
    from_export = encoders.from_saved_model(str(tmp_path / "saved_model"))
    assert from_workdir.fingerprint == from_export.fingerprint
    assert (from_export.ground_size, from_export.aerial_size) == ((32, 176), (64, 64))
    assert from_export.dimension == from_workdir.dimension == model.descriptor_size == 256  # 2 x 2 x 64
    rng = np.random.default_rng(0)
    aerial = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    ground = rng.integers(0, 256, (3, 32, 176, 3), dtype=np.uint8)
    np.testing.assert_allclose(from_export.aerial(aerial), from_workdir.aerial(aerial), atol=1e-5)
    np.testing.assert_allclose(from_export.ground(ground), from_workdir.ground(ground), atol=1e-5)
    other = encoders.from_model(build_model(**config.model), {"workdir": "other"})
    assert other.fingerprint != from_workdir.fingerprint
