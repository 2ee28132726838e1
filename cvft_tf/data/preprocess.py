"""Image preprocessing of the original CVFT code: OpenCV BGR, float32, VGG mean subtracted.

The original reads images with ``cv2.imread`` (BGR), resizes with ``cv2.INTER_AREA`` and
subtracts a per-channel mean; there is no scaling. Note the red mean is 123.6, not the
usual 123.68 (see ``docs/original.md``).

Two implementations of the same preprocessing live here:

- ``read_image`` + ``preprocess_ground`` / ``preprocess_aerial``: numpy and OpenCV, the very
  calls of the original (``cv2.imread``, ``cv2.resize(..., interpolation=cv2.INTER_AREA)``
  to uint8, then float32 minus the mean). The tf.data pipelines run these inside
  ``tf.numpy_function``, so their pixels equal the original's exactly (difference 0).
- ``preprocess_ground_tf`` / ``preprocess_aerial_tf``: TensorFlow ops only, for graphs that
  must not call Python (the SavedModel export). They take decoded RGB uint8 batches.
  ``tf.image.resize(method="area")`` computes the same box average as INTER_AREA when
  shrinking; rounding it half up to whole numbers reproduces OpenCV's uint8 result. Measured
  against the OpenCV path on noisy images: identical for 224x1232 -> 112x616,
  750x750 -> 256x256, 1200x1200 -> 256x256 and 112x616 -> 32x176; at most 1.0 (mean
  0.0005, float rounding at exact halves) for 416x1664 -> 112x616. The bound stated and
  tested is max |difference| <= 1.0 and mean <= 0.05 on the 0-255 scale, for shrinking or
  keeping the size; no bound is claimed for enlarging, where INTER_AREA interpolates.
  Decoding a JPEG with ``tf.io.decode_jpeg(..., dct_method="INTEGER_ACCURATE")`` (fancy
  upscaling on, the default) gives the same pixels as ``cv2.imread`` (libjpeg-turbo, ISLOW);
  the default ``dct_method`` does not (up to 7 levels off).
"""

import os

import cv2
import numpy as np
import tensorflow as tf

VGG_MEAN_BGR = (103.939, 116.779, 123.6)
"""Per-channel mean subtracted from BGR pixels in [0, 255], as the original code does."""

GROUND_SIZE = (112, 616)
"""(height, width) of the ground panorama fed to the network (CVUSA 224x1232 halved)."""

AERIAL_SIZE = (256, 256)
"""(height, width) of the aerial tile fed to the network."""

_JPEG_END = b"\xff\xd9"
_PNG_END = b"IEND\xaeB`\x82"
_TAIL_BYTES = 4096


class ImageError(ValueError):
    """An image that cannot be used: missing, unreadable, truncated or of the wrong size."""


def read_image(path):
    """Reads an image file as the original does (``cv2.imread``, BGR) and checks it is whole.

    ``cv2.imread`` returns the decodable part of a truncated JPEG (filled with grey) without
    an error, so the file's tail is checked first: the last 4 KiB of a JPEG must hold its
    end-of-image marker (which compressed data cannot contain) and those of a PNG its IEND
    chunk; bytes after the marker are allowed.

    Args:
      path: path of a JPEG or PNG file.

    Returns:
      uint8 array [height, width, 3], BGR.

    Raises:
      ImageError: the file is missing, truncated or not decodable; the message names it.
    """
    try:
        with open(path, "rb") as file:
            head = file.read(8)
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - _TAIL_BYTES))
            tail = file.read()
    except OSError as error:
        raise ImageError(f"cannot open {path}: {error.strerror}") from None
    if head.startswith(b"\xff\xd8") and _JPEG_END not in tail:
        raise ImageError(f"{path} is truncated (the JPEG has no end-of-image marker)")
    if head.startswith(b"\x89PNG") and _PNG_END not in tail:
        raise ImageError(f"{path} is truncated (the PNG has no IEND chunk)")
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f"{path} is not a readable image")
    return image


def crop_panorama_middle(panorama):
    """Keeps the middle half of a panorama's rows (CVACT 832x1664 -> rows 208..624).

    Args:
      panorama: array [height, width, channels].

    Returns:
      view [height // 2, width, channels] of rows ``height // 4`` to ``3 * height // 4``.
    """
    height = panorama.shape[0]
    return panorama[height // 4 : 3 * height // 4]


def _resize_and_center(image_bgr, size):
    height, width = size
    if image_bgr.shape[:2] != (height, width):
        image_bgr = cv2.resize(image_bgr, (width, height), interpolation=cv2.INTER_AREA)
    return image_bgr.astype(np.float32) - np.asarray(VGG_MEAN_BGR, np.float32)


def preprocess_ground(image_bgr, size=GROUND_SIZE):
    """Ground panorama as the network sees it: INTER_AREA resize, float32, BGR mean removed.

    Args:
      image_bgr: uint8 array [height, width, 3], BGR (as ``cv2.imread`` gives).
      size: (height, width) of the output; an image already of that size is not resized.

    Returns:
      float32 array [size[0], size[1], 3], BGR minus ``VGG_MEAN_BGR``.
    """
    return _resize_and_center(image_bgr, size)


def preprocess_aerial(image_bgr, size=AERIAL_SIZE):
    """Aerial tile as the network sees it: INTER_AREA resize, float32, BGR mean removed.

    Args:
      image_bgr: uint8 array [height, width, 3], BGR (as ``cv2.imread`` gives).
      size: (height, width) of the output; an image already of that size is not resized.

    Returns:
      float32 array [size[0], size[1], 3], BGR minus ``VGG_MEAN_BGR``.
    """
    return _resize_and_center(image_bgr, size)


def _resize_and_center_tf(images_rgb, size):
    images = tf.convert_to_tensor(images_rgb)
    resized = tf.image.resize(tf.cast(images, tf.float32), size, method="area")
    # OpenCV writes its uint8 result rounded half up (fast path for whole scale factors).
    resized = tf.floor(resized + 0.5)
    return resized[..., ::-1] - tf.constant(VGG_MEAN_BGR, tf.float32)


def preprocess_ground_tf(images_rgb, size=GROUND_SIZE):
    """TF-ops version of ``preprocess_ground`` for decoded RGB batches (serving graphs).

    Area resize rounded to whole levels, RGB -> BGR, mean removed; within 1.0 (max) and 0.05
    (mean) of the OpenCV path when shrinking or keeping the size (module docstring).

    Args:
      images_rgb: uint8 tensor [batch, height, width, 3], RGB, any height and width.
      size: (height, width) of the output.

    Returns:
      float32 tensor [batch, size[0], size[1], 3], BGR minus ``VGG_MEAN_BGR``.
    """
    return _resize_and_center_tf(images_rgb, size)


def preprocess_aerial_tf(images_rgb, size=AERIAL_SIZE):
    """TF-ops version of ``preprocess_aerial`` for decoded RGB batches (serving graphs).

    Args:
      images_rgb: uint8 tensor [batch, height, width, 3], RGB, any height and width.
      size: (height, width) of the output.

    Returns:
      float32 tensor [batch, size[0], size[1], 3], BGR minus ``VGG_MEAN_BGR``.
    """
    return _resize_and_center_tf(images_rgb, size)


def shift_azimuth(panorama, degrees):
    """Turns a panorama about the vertical axis: a circular shift of its columns.

    The shift is ``round(degrees / 360 * width)`` columns with ``np.roll`` semantics, so a
    positive angle moves column ``j`` to column ``j + shift`` (modulo the width). This is the
    orientation noise of CVFT's Table 1.

    Args:
      panorama: tensor [..., height, width, channels].
      degrees: scalar float tensor, the azimuth change.

    Returns:
      tensor of the same shape and dtype.
    """
    width = tf.shape(panorama)[-2]
    shift = tf.cast(tf.round(degrees / 360.0 * tf.cast(width, tf.float32)), tf.int32)
    return tf.roll(panorama, shift=shift, axis=-2)


def random_azimuth_shift(panorama, max_degrees, seed):
    """``shift_azimuth`` by an angle drawn uniformly in [-max_degrees, max_degrees].

    The draw is stateless: the same ``seed`` gives the same angle, so evaluation with noise
    is repeatable (the pipelines seed it with the pair's index).

    Args:
      panorama: tensor [height, width, channels].
      max_degrees: float, the largest azimuth change (CVFT evaluates 20).
      seed: int tensor [2], the stateless random seed.

    Returns:
      tensor [height, width, channels].
    """
    degrees = tf.random.stateless_uniform(
        [], seed=seed, minval=-max_degrees, maxval=max_degrees, dtype=tf.float32
    )
    return shift_azimuth(panorama, degrees)
