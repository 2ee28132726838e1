"""tf.data loading of place recognition images (queries or database) for a model's input format.

Each image is read with OpenCV (``preprocess.read_image``: the file opened once, a truncated
JPEG or PNG refused) and prepared by the very functions of the serial path, inside
``tf.numpy_function``, several images at a time (``num_parallel_calls``, order kept):

* ``imagenet``: ``dinov2.preprocess_image``, RGB, bilinear resize with antialiasing as SALAD's
  ``T.Resize``, ImageNet mean and std as ``T.Normalize``: float32;
* ``cvft``: ``preprocess.resize_image``, ``INTER_AREA`` to uint8 BGR (the model subtracts the
  VGG mean).

So the pixels equal those of reading and preparing the files one by one (difference 0);
OpenCV's decoder and resize and TensorFlow's resize kernel release the GIL, which is what the
parallel calls gain. An image that cannot be read does not stop the pipeline: its element
carries a message naming the file, and :func:`checked_batches` raises it.
"""

import cv2
import numpy as np
import tensorflow as tf

from cvft_tf.data.preprocess import ImageError, read_image, resize_image
from cvft_tf.models.dinov2 import preprocess_image

PREPARE = {"imagenet": (preprocess_image, np.float32), "cvft": (resize_image, np.uint8)}
"""Input format -> (function of a BGR image and (H, W), output dtype)."""


def place_image_dataset(paths, image_size, input_format="imagenet", batch_size=16):
    """Batches of prepared images, in the order of ``paths``.

    Args:
        paths: image file paths.
        image_size: ``(H, W)`` of the model's input.
        input_format: a key of :data:`PREPARE`.
        batch_size: images per batch; the last batch holds the remainder.

    Returns:
        ``tf.data.Dataset`` of ``(images [b, H, W, 3], problems [b])``: float32 (imagenet) or
        uint8 (cvft) images, and per image an empty string or the message of the error that
        made it unreadable (its image is then zeros).
    """
    if input_format not in PREPARE:
        raise ValueError(f"input_format must be one of {sorted(PREPARE)}, got {input_format!r}")
    prepare, dtype = PREPARE[input_format]
    image_size = tuple(image_size)
    blank = np.zeros((*image_size, 3), dtype)

    def read(index):
        path = paths[int(index)]
        try:
            return prepare(read_image(path), image_size).astype(dtype, copy=False), ""
        except (ImageError, cv2.error) as error:
            message = str(error) if path in str(error) else f"{path}: {error}"
            return blank, message.replace("\n", " ")

    def element(index):
        image, problem = tf.numpy_function(read, [index], [tf.as_dtype(dtype), tf.string], stateful=False)
        image.set_shape((*image_size, 3))
        problem.set_shape(())
        return image, problem

    dataset = tf.data.Dataset.range(len(paths)).map(element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def checked_batches(dataset):
    """The image batches of :func:`place_image_dataset` as numpy arrays.

    Raises:
        ImageError: at the first image that could not be read, with its message.
    """
    for images, problems in dataset.as_numpy_iterator():
        for problem in problems:
            if problem:
                raise ImageError(problem.decode("utf-8", "replace"))
        yield images
