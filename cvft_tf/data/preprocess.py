"""Image preprocessing of the original CVFT code: OpenCV BGR, INTER_AREA resize, VGG mean.

The original reads images with ``cv2.imread`` (BGR), resizes them with ``cv2.INTER_AREA``
to uint8 and subtracts a per-channel mean in float32; there is no scaling. Note the red mean
is 123.6, not the usual 123.68 (see ``docs/original.md``). The port splits this in two: the
input pipelines stop at the resized uint8 BGR image (a quarter of the bytes of float32) and
the model subtracts the mean as its first layer (``cvft_tf.layers.pixels.CenterPixels``),
with the same float32 arithmetic.

Two implementations of the resize live here:

- ``read_image`` + ``resize_image``: numpy and OpenCV, the very calls of the original
  (``cv2.imread``'s decoder, ``cv2.resize(..., interpolation=cv2.INTER_AREA)`` to uint8), so
  the pixels equal the original's exactly (difference 0). ``read_image`` opens each file once.
- ``decode_image_tf`` + ``resize_to_bgr_tf``: TensorFlow ops only, for graphs that must not
  call Python (the SavedModel export); the pipelines' ``decoder="tensorflow"`` runs the same
  kernels. ``tf.image.resize(method="area")`` computes the same box average as
  INTER_AREA when shrinking; rounding it half up to whole numbers reproduces OpenCV's uint8
  result. Measured against the OpenCV path on noisy images: identical for 224x1232 ->
  112x616, 750x750 -> 256x256, 1200x1200 -> 256x256 and 112x616 -> 32x176; at most 1 level
  (mean 0.0005, float rounding at exact halves) for 416x1664 -> 112x616. The bound stated
  and tested is max |difference| <= 1 and mean <= 0.05 levels on the 0-255 scale, for
  shrinking or keeping the size; no bound is claimed for enlarging, where INTER_AREA
  interpolates. ``decode_image_tf`` decodes a JPEG with ``dct_method="INTEGER_ACCURATE"``
  (fancy upscaling on, the default), which gives the same pixels as ``cv2.imread``
  (libjpeg-turbo, ISLOW); the default ``dct_method`` does not (up to 7 levels off).
"""

import cv2
import numpy as np
import tensorflow as tf

VGG_MEAN_BGR = (103.939, 116.779, 123.6)
"""Per-channel mean subtracted from BGR pixels in [0, 255], as the original code does."""

GROUND_SIZE = (112, 616)
"""(height, width) of the ground panorama fed to the network (CVUSA 224x1232 halved)."""

AERIAL_SIZE = (256, 256)
"""(height, width) of the aerial tile fed to the network."""

_JPEG_START = b"\xff\xd8"
_JPEG_END = b"\xff\xd9"
_PNG_START = b"\x89PNG"
_PNG_END = b"IEND\xaeB`\x82"
_TAIL_BYTES = 4096
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
"""JPEG SOFn markers (baseline, progressive, lossless, ...), the segments that give the size."""

MAX_IMAGE_PIXELS = 64_000_000
"""Default cap on the pixels of a split's image (``config.data.max_image_pixels``), checked in
the file's header before it is decoded: a 30000 x 30000 PNG of a few hundred KB would
otherwise take gigabytes to decode. 64 Mpixel leaves room above CVACT's 1200 x 1200 tiles."""


class ImageError(ValueError):
    """An image that cannot be used: missing, unreadable, truncated or of the wrong size."""


def check_image_bytes(data, path):
    """Checks that the bytes of an image file are whole, which ``cv2.imread`` does not say.

    ``cv2.imread`` returns the decodable part of a truncated JPEG (filled with grey) without
    an error, so the file's tail is checked: the last 4 KiB of a JPEG must hold its
    end-of-image marker (which compressed data cannot contain) and those of a PNG its IEND
    chunk; bytes after the marker are allowed. Other formats are left to the decoder.

    Args:
      data: the file's bytes.
      path: the file's path, for the message.

    Returns:
      ``"jpeg"``, ``"png"``, or None for another format.

    Raises:
      ImageError: the file is empty, or a truncated JPEG or PNG.
    """
    tail = data[-_TAIL_BYTES:]
    if data.startswith(_JPEG_START):
        if _JPEG_END not in tail:
            raise ImageError(f"{path} is truncated (the JPEG has no end-of-image marker)")
        return "jpeg"
    if data.startswith(_PNG_START):
        if _PNG_END not in tail:
            raise ImageError(f"{path} is truncated (the PNG has no IEND chunk)")
        return "png"
    if not data:
        raise ImageError(f"{path} is empty")
    return None


def header_size(data):
    """``(height, width)`` read from the header of JPEG or PNG bytes, without decoding; None
    when the bytes are neither or the header is cut short.

    A PNG gives its size in the IHDR chunk that follows the signature (width, then height,
    big-endian, bytes 16-24); a JPEG in its first SOFn segment (height, then width, after the
    segment's length and sample precision), found by walking the segments from the start.
    """
    if data.startswith(_PNG_START) and data[12:16] == b"IHDR" and len(data) >= 24:
        return int.from_bytes(data[20:24], "big"), int.from_bytes(data[16:20], "big")
    if not data.startswith(_JPEG_START):
        return None
    position = 2
    while position + 9 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _JPEG_FRAME_MARKERS:
            height = int.from_bytes(data[position + 5 : position + 7], "big")
            return height, int.from_bytes(data[position + 7 : position + 9], "big")
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # segments without a length
            position += 2
            continue
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
    return None


def check_pixel_count(data, path, max_pixels):
    """Raises ImageError when the header of ``data`` gives more than ``max_pixels`` pixels."""
    size = header_size(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageError(
            f"{path} has {size[0]}x{size[1]} = {size[0] * size[1]} pixels in its header, more than "
            f"config.data.max_image_pixels={max_pixels}; it was not decoded"
        )


def read_image_bytes(path, max_pixels=None):
    """The bytes of an image file, read once, and their format (:func:`check_image_bytes`).

    Args:
      path: the file.
      max_pixels: when given, a JPEG or PNG whose header gives more pixels is refused
        (:func:`check_pixel_count`) before anything decodes it.

    Returns:
      ``(data, format)``: bytes, and ``"jpeg"``, ``"png"`` or None.

    Raises:
      ImageError: the file is missing or unreadable, empty, a truncated JPEG or PNG, or too large.
    """
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        raise ImageError(f"cannot open {path}: {error.strerror}") from None
    image_format = check_image_bytes(data, path)
    if max_pixels is not None:
        check_pixel_count(data, path, max_pixels)
    return data, image_format


def read_image(path, max_pixels=None):
    """Reads an image file as the original does (``cv2.imread``'s decoder, BGR), opening it once.

    ``cv2.imdecode`` of the file's bytes is ``cv2.imread`` of the file, pixel for pixel.

    Args:
      path: path of a JPEG or PNG file.
      max_pixels: refuse a larger image before decoding it (:func:`read_image_bytes`).

    Returns:
      uint8 array [height, width, 3], BGR.

    Raises:
      ImageError: the file is missing, truncated, too large or not decodable; the message names it.
    """
    data, _ = read_image_bytes(path, max_pixels)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f"{path} is not a readable image")
    return image


def resize_image(image_bgr, size):
    """The original's resize: ``cv2.resize(..., interpolation=cv2.INTER_AREA)`` to uint8.

    Args:
      image_bgr: uint8 array [height, width, 3], BGR (as ``cv2.imread`` gives).
      size: (height, width) of the output; an image already of that size is not resized.

    Returns:
      uint8 array [size[0], size[1], 3], BGR: what the model takes (it subtracts the mean).
    """
    height, width = size
    if image_bgr.shape[:2] == (height, width):
        return image_bgr
    return cv2.resize(image_bgr, (width, height), interpolation=cv2.INTER_AREA)


def decode_image_tf(data):
    """Decodes JPEG or PNG bytes in TensorFlow ops as ``cv2.imread`` does (module docstring).

    Args:
      data: scalar string tensor, the bytes of a JPEG or PNG file.

    Returns:
      uint8 tensor [height, width, 3], RGB.
    """
    return tf.cond(
        tf.io.is_jpeg(data),
        lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_png(data, channels=3, dtype=tf.uint8),
    )


def resize_to_bgr_tf(images_rgb, size):
    """TF-ops version of :func:`resize_image` for decoded RGB images (serving graphs, pipelines).

    Area resize rounded half up to whole levels, RGB -> BGR; within 1 level (max) and 0.05
    (mean) of the OpenCV path when shrinking or keeping the size (module docstring).

    Args:
      images_rgb: uint8 tensor [..., height, width, 3], RGB, any height and width (one
        image or a batch).
      size: (height, width) of the output.

    Returns:
      uint8 tensor [..., size[0], size[1], 3], BGR.
    """
    images = tf.convert_to_tensor(images_rgb)
    resized = tf.image.resize(tf.cast(images, tf.float32), size, method="area")
    # OpenCV writes its uint8 result rounded half up (fast path for whole scale factors).
    resized = tf.clip_by_value(tf.floor(resized + 0.5), 0.0, 255.0)
    return tf.cast(resized[..., ::-1], tf.uint8)


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
