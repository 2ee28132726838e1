"""tf.data place images: the same pixels as the serial OpenCV path, bad files named."""

import cv2
import numpy as np
import pytest

from cvft_tf.data.place_images import checked_batches, place_image_dataset
from cvft_tf.data.preprocess import ImageError, read_image, resize_image
from cvft_tf.models.dinov2 import preprocess_image


@pytest.fixture
def images(tmp_path):
    """Noise images of several sizes, JPEG and PNG, one already at the model's size."""
    rng = np.random.default_rng(0)
    paths = []
    for index, (height, width) in enumerate([(60, 80), (28, 28), (45, 33), (100, 30), (28, 56)]):
        path = str(tmp_path / f"image{index}.{'jpg' if index % 2 else 'png'}")
        cv2.imwrite(path, rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))
        paths.append(path)
    return paths


@pytest.mark.parametrize(
    "input_format, prepare, dtype",
    [("imagenet", preprocess_image, np.float32), ("cvft", resize_image, np.uint8)],
)
def test_batches_equal_the_serial_path(images, input_format, prepare, dtype):
    dataset = place_image_dataset(images, (28, 28), input_format, batch_size=2)
    batches = list(checked_batches(dataset))
    assert [len(batch) for batch in batches] == [2, 2, 1]
    got = np.concatenate(batches)
    expected = np.stack([prepare(read_image(path), (28, 28)) for path in images])
    assert got.dtype == dtype and got.shape == (5, 28, 28, 3)
    np.testing.assert_array_equal(got, expected)


def test_a_bad_image_is_named(images, tmp_path):
    with open(images[3], "r+b") as handle:
        handle.truncate(200)
    (tmp_path / "text.png").write_text("not an image")
    for bad, message in ((images[3], "is truncated"), (str(tmp_path / "text.png"), "is not a readable image")):
        dataset = place_image_dataset([images[0], bad, images[2]], (28, 28), batch_size=2)
        with pytest.raises(ImageError, match=f"{bad} {message}"):
            list(checked_batches(dataset))
    with pytest.raises(ValueError, match="input_format"):
        place_image_dataset(images, (28, 28), "bgr")
