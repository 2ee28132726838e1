"""Preprocessing parity with OpenCV (the original's imread + INTER_AREA) and its mean."""

import cv2
import numpy as np
import pytest
import tensorflow as tf

from cvft_tf.data import preprocess
from cvft_tf.layers.pixels import CenterPixels
from tests.data import fixtures


def test_constants_are_the_originals():
    assert preprocess.VGG_MEAN_BGR == (103.939, 116.779, 123.6)
    assert preprocess.GROUND_SIZE == (112, 616)
    assert preprocess.AERIAL_SIZE == (256, 256)


@pytest.mark.parametrize("extension", [".jpg", ".png"])
@pytest.mark.parametrize(
    "raw, size",
    [((224, 1232), (112, 616)), ((150, 150), (64, 64)), ((40, 40), (16, 16)), ((16, 88), (16, 88))],
)
def test_numpy_path_equals_opencv(tmp_path, extension, raw, size):
    path = str(tmp_path / f"image{extension}")
    fixtures.write_image(path, fixtures.make_image(*raw, seed=5))
    image = preprocess.read_image(path)
    np.testing.assert_array_equal(image, cv2.imread(path))
    output = preprocess.resize_image(image, size)
    assert output.dtype == np.uint8 and output.shape == (*size, 3)
    np.testing.assert_array_equal(output, fixtures.expected(path, size))


def test_the_model_subtracts_the_originals_mean_in_float32():
    """The original: ``img.astype(np.float32)``, then ``img[:, :, c] -= mean`` in place."""
    pixels = fixtures.make_image(4, 6, seed=9)
    original = pixels.astype(np.float32)
    for channel, mean in enumerate((103.939, 116.779, 123.6)):
        original[:, :, channel] -= mean
    centred = CenterPixels()(pixels[None]).numpy()[0]
    np.testing.assert_array_equal(centred, original)
    np.testing.assert_array_equal(CenterPixels()(pixels[None].astype(np.float32)).numpy()[0], original)
    restored = CenterPixels.from_config(CenterPixels(mean=(1.0, 2.0, 3.0)).get_config())
    np.testing.assert_array_equal(restored(np.zeros((1, 1, 1, 3), np.uint8)).numpy()[0, 0, 0], [-1.0, -2.0, -3.0])


@pytest.mark.parametrize("extension", [".jpg", ".png"])
@pytest.mark.parametrize(
    "raw, size",
    [
        ((224, 1232), (112, 616)),
        ((750, 750), (256, 256)),
        ((416, 1664), (112, 616)),
        ((112, 616), (32, 176)),
        ((130, 130), (64, 64)),
        ((64, 64), (64, 64)),
    ],
)
def test_tf_path_within_bound_of_opencv(tmp_path, extension, raw, size):
    """decode_image_tf equals cv2.imread; resize_to_bgr_tf is within 1 level (max), 0.05 (mean)."""
    path = str(tmp_path / f"image{extension}")
    fixtures.write_image(path, fixtures.make_image(*raw, seed=7))
    rgb = preprocess.decode_image_tf(tf.io.read_file(path))
    np.testing.assert_array_equal(rgb.numpy()[..., ::-1], cv2.imread(path))
    reference = fixtures.expected(path, size).astype(np.int32)
    for images in (rgb, tf.stack([rgb, rgb])):
        output = preprocess.resize_to_bgr_tf(images, size)
        assert output.dtype == tf.uint8 and output.shape == (*images.shape[:-3], *size, 3)
        difference = np.abs(output.numpy().astype(np.int32) - reference)
        assert difference.max() <= 1
        assert difference.mean() <= 0.05


def test_tf_path_rounds_half_up_like_opencv():
    """A 2x2 block averaging to x.5 becomes x+1 in OpenCV's uint8 result."""
    block = np.array([[[10, 10, 10], [11, 11, 11]], [[10, 10, 10], [11, 11, 11]]], np.uint8)
    output = preprocess.resize_to_bgr_tf(block[None], (1, 1)).numpy()[0, 0, 0]
    np.testing.assert_array_equal(output, [11, 11, 11])
    opencv = cv2.resize(block, (1, 1), interpolation=cv2.INTER_AREA)[0, 0]
    np.testing.assert_array_equal(opencv, [11, 11, 11])


def test_tf_path_flips_rgb_to_bgr():
    rgb = np.zeros((1, 4, 4, 3), np.uint8)
    rgb[..., 0] = 200  # red
    output = preprocess.resize_to_bgr_tf(rgb, (4, 4)).numpy()
    np.testing.assert_array_equal(output[0, 0, 0], [0, 0, 200])


def _write_truncated(tmp_path, extension):
    path = str(tmp_path / f"whole{extension}")
    fixtures.write_image(path, fixtures.make_image(64, 64, seed=3))
    data = open(path, "rb").read()
    truncated = str(tmp_path / f"truncated{extension}")
    with open(truncated, "wb") as file:
        file.write(data[: len(data) // 2])
    return truncated


@pytest.mark.parametrize("extension", [".jpg", ".png"])
def test_read_image_rejects_truncated(tmp_path, extension):
    path = _write_truncated(tmp_path, extension)
    with pytest.raises(preprocess.ImageError, match=f"{path} is truncated"):
        preprocess.read_image(path)


def test_read_image_rejects_missing_and_garbage(tmp_path):
    missing = str(tmp_path / "missing.jpg")
    with pytest.raises(preprocess.ImageError, match=f"cannot open {missing}: No such file"):
        preprocess.read_image(missing)
    garbage = str(tmp_path / "garbage.jpg")
    with open(garbage, "wb") as file:
        file.write(b"not an image")
    with pytest.raises(preprocess.ImageError, match=f"{garbage} is not a readable image"):
        preprocess.read_image(garbage)
    empty = str(tmp_path / "empty.png")
    open(empty, "wb").close()
    with pytest.raises(preprocess.ImageError, match=f"{empty} is empty"):
        preprocess.read_image(empty)


def test_read_image_opens_the_file_once(tmp_path, monkeypatch):
    path = str(tmp_path / "once.png")
    fixtures.write_image(path, fixtures.make_image(8, 8, seed=2))
    opened = []
    real_open = open
    monkeypatch.setattr(
        "builtins.open", lambda file, *args, **kwargs: opened.append(file) or real_open(file, *args, **kwargs)
    )
    monkeypatch.setattr(cv2, "imread", None)
    np.testing.assert_array_equal(preprocess.read_image(path), fixtures.make_image(8, 8, seed=2))
    assert opened == [path]


def test_read_image_accepts_bytes_after_jpeg_end(tmp_path):
    path = str(tmp_path / "padded.jpg")
    fixtures.write_image(path, fixtures.make_image(32, 32, seed=4))
    with open(path, "ab") as file:
        file.write(b"\x00" * 100 + b"trailer")
    np.testing.assert_array_equal(preprocess.read_image(path), cv2.imread(path))


def test_shift_azimuth_moves_a_known_column():
    panorama = np.zeros((2, 616, 3), np.float32)
    panorama[:, 0] = 1.0
    shifted = preprocess.shift_azimuth(tf.constant(panorama), tf.constant(20.0)).numpy()
    # round(20 / 360 * 616) = round(34.22) = 34 columns to the right.
    assert np.flatnonzero(shifted[0, :, 0]).tolist() == [34]
    shifted = preprocess.shift_azimuth(tf.constant(panorama), tf.constant(-20.0)).numpy()
    assert np.flatnonzero(shifted[0, :, 0]).tolist() == [616 - 34]


@pytest.mark.parametrize("degrees", [0.0, 10.0, -7.5, 180.0, 359.0])
def test_shift_azimuth_is_np_roll(degrees):
    panorama = np.random.default_rng(0).normal(size=(3, 4, 36, 3)).astype(np.float32)
    shifted = preprocess.shift_azimuth(tf.constant(panorama), tf.constant(degrees)).numpy()
    columns = int(np.round(degrees / 360 * 36))
    np.testing.assert_array_equal(shifted, np.roll(panorama, columns, axis=-2))


def test_random_azimuth_shift_is_seeded_and_bounded():
    width, max_degrees = 360, 20.0
    panorama = np.tile(np.arange(width, dtype=np.float32)[None, :, None], (2, 1, 3))
    shifts = []
    for seed in range(30):
        once = preprocess.random_azimuth_shift(panorama, max_degrees, tf.constant([seed, 1]))
        again = preprocess.random_azimuth_shift(panorama, max_degrees, tf.constant([seed, 1]))
        np.testing.assert_array_equal(once.numpy(), again.numpy())
        shift = int(np.flatnonzero(once.numpy()[0, :, 0] == 0)[0])
        shift = shift - width if shift > width // 2 else shift
        np.testing.assert_array_equal(once.numpy(), np.roll(panorama, shift, axis=1))
        shifts.append(shift)
    assert max(abs(s) for s in shifts) <= 20
    assert len(set(shifts)) > 10 and min(shifts) < 0 < max(shifts)


@pytest.mark.parametrize(
    "extension, params",
    [(".png", []), (".jpg", []), (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]), (".jpg", [cv2.IMWRITE_JPEG_OPTIMIZE, 1])],
    ids=["png", "baseline-jpeg", "progressive-jpeg", "optimized-jpeg"],
)
def test_header_size_is_the_decoded_size(extension, params):
    image = np.random.default_rng(0).integers(0, 256, size=(37, 53, 3), dtype=np.uint8)
    data = cv2.imencode(extension, image, params)[1].tobytes()
    assert preprocess.header_size(data) == cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape[:2]


def test_header_size_of_other_or_cut_bytes_is_none():
    data = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    assert preprocess.header_size(b"GIF89a" + data) is None
    assert preprocess.header_size(data[:20]) is None


def test_an_image_over_the_pixel_cap_is_refused_before_decoding(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(cv2.imencode(".png", np.zeros((30, 40, 3), np.uint8))[1].tobytes())
    assert preprocess.read_image(str(path), max_pixels=1200).shape == (30, 40, 3)
    with pytest.raises(preprocess.ImageError, match=r"has 30x40 = 1200 pixels in its header, more than .*=1199"):
        preprocess.read_image(str(path), max_pixels=1199)
