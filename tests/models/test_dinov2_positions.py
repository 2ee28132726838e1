"""Torch-exact DINOv2 position interpolation vs torch's own, and its place in the models."""

import numpy as np
import pytest

from cvft_tf.models import dinov2
from cvft_tf.models.dinov2_positions import interpolate_as_torch, torch_bicubic_matrix
from cvft_tf.models.place_recognition import PlaceRecognitionModel

TINY_BACKBONE = dict(
    patch_size=14, num_layers=1, hidden_dim=16, num_heads=2, intermediate_dim=32, position_embedding_shape=(56, 56, 3)
)
TINY_SALAD = dict(num_clusters=4, cluster_dim=4, token_dim=4, hidden_dim=8)


@pytest.mark.parametrize("source, target", [(5, (6, 7)), (5, (3, 2)), (37, (23, 23)), (37, (8, 44))])
def test_interpolation_matches_torch(source, target):
    torch = pytest.importorskip("torch")
    grid = np.random.default_rng(0).standard_normal((1, 1 + source * source, 8)).astype(np.float32)
    resized = torch.nn.functional.interpolate(
        torch.from_numpy(grid[:, 1:]).reshape(1, source, source, 8).permute(0, 3, 1, 2),
        mode="bicubic",
        antialias=False,
        scale_factor=((target[0] + 0.1) / source, (target[1] + 0.1) / source),
    )
    expected = np.concatenate([grid[:, :1], resized.permute(0, 2, 3, 1).reshape(1, -1, 8).numpy()], axis=1)
    found = np.asarray(interpolate_as_torch(grid, 14, (source * 14,) * 2, (target[0] * 14, target[1] * 14)))
    np.testing.assert_allclose(found, expected, atol=1e-5)


@pytest.mark.parametrize("source, target", [(37, 23), (37, 16), (5, 7), (4, 1)])
def test_bicubic_rows_sum_to_one(source, target):
    matrix = torch_bicubic_matrix(source, target, (target + 0.1) / source)
    assert matrix.shape == (target, source)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-6)


def test_bicubic_at_scale_one_samples_the_grid():
    np.testing.assert_allclose(torch_bicubic_matrix(6, 6, 1.0), np.eye(6), atol=1e-7)


def test_the_trained_grid_is_left_alone():
    grid = np.random.default_rng(0).standard_normal((1, 17, 8)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(interpolate_as_torch(grid, 14, (56, 56), (56, 56))), grid)
    with pytest.raises(ValueError, match="antialias=False"):
        interpolate_as_torch(grid, 14, (56, 56), (70, 70), antialias=True)


def test_weights_files_fit_either_interpolation(tmp_path):
    """Only the resized positions differ: a file saved with one loads into the other, and
    the embeddings agree at the trained size."""
    models = {
        mode: PlaceRecognitionModel(
            (70, 84), {**TINY_BACKBONE, "position_interpolation": mode}, TINY_SALAD, trainable_blocks=1
        )
        for mode in dinov2.POSITION_INTERPOLATIONS
    }
    models["torch"].save_weights(str(tmp_path / "torch.weights.h5"))
    models["keras_hub"].load_weights(str(tmp_path / "torch.weights.h5"))
    embeddings = {mode: model.branch.get_layer("dinov2").get_layer("embeddings") for mode, model in models.items()}
    np.testing.assert_array_equal(
        embeddings["torch"].position_embeddings.numpy(), embeddings["keras_hub"].position_embeddings.numpy()
    )
    resized = {mode: layer.interpolated_position_embeddings.numpy() for mode, layer in embeddings.items()}
    assert resized["torch"].shape == resized["keras_hub"].shape == (1, 1 + 5 * 6, 16)
    assert np.abs(resized["torch"] - resized["keras_hub"]).max() > 1e-3
    with pytest.raises(ValueError, match="Unknown position_interpolation 'nearest'"):
        dinov2.dinov2_features(dinov2.build_dinov2_backbone(TINY_BACKBONE), (56, 56), position_interpolation="nearest")
