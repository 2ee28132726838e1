"""tf.data pipelines over GSV-Cities places (``gsv_cities.Places``): P x K training batches, held-out images.

Images are read with OpenCV (``preprocess.read_image``) and prepared as SALAD feeds DINOv2
(``dinov2.preprocess_image``: RGB, bilinear resize with antialiasing to the model's size as
``T.Resize``, ImageNet mean and std as ``T.Normalize``), inside ``tf.numpy_function``,
several images at a time (``num_parallel_calls``, in order). The authors' training transform
also applies ``T.RandAugment(num_ops=3)``; this pipeline does not augment.

A file that cannot be read stops the pipeline with an error naming it and the dataframe line
that lists it (``DatasetError`` inside ``pipeline.dataset_errors``), in training as in
evaluation: a P x K batch cannot skip an image, and every listed file was checked to exist
when the places were read.
"""

import cv2
import numpy as np
import tensorflow as tf

from cvft_tf.data import preprocess
from cvft_tf.data.gsv_cities import epoch_batches
from cvft_tf.data.pipeline import DatasetError, checked
from cvft_tf.models.dinov2 import preprocess_image


def _image_fn(places, image_size):
    """Graph function: image index -> float32 ``[*image_size, 3]`` ImageNet-normalised RGB."""
    blank = np.zeros((*image_size, 3), np.float32)

    def read(index):
        index = int(index)
        try:
            return preprocess_image(preprocess.read_image(places.paths[index]), image_size), ""
        except (preprocess.ImageError, cv2.error) as error:
            return blank, f"bad image: {places.sources[index]}: {error}".replace("\n", " ")

    def image(index):
        pixels, message = tf.numpy_function(read, [index], [tf.float32, tf.string], stateful=False)
        pixels = checked(pixels, tf.equal(message, ""), message)
        pixels.set_shape((*image_size, 3))
        return pixels

    return image


def batches_per_epoch(places, places_per_batch):
    """Full batches of P places in an epoch.

    Raises:
        DatasetError: fewer places than one batch.
    """
    if places.num_places < places_per_batch:
        raise DatasetError(f"{places.name} has {places.num_places} places, fewer than one batch of {places_per_batch}")
    return places.num_places // places_per_batch


def make_place_train_dataset(
    places, places_per_batch, images_per_place, image_size, *, seed, start_batch=0, shuffle_all=False
):
    """The endless training stream: batch after batch of P places with K images each.

    Epoch ``e`` is ``gsv_cities.epoch_batches(places, P, K, seed, e, shuffle_all)``; a run
    resumed after ``start_batch`` batches reads what an uninterrupted run reads from there.

    Args:
        places: ``gsv_cities.Places`` (each place with at least K images).
        places_per_batch: P.
        images_per_place: K.
        image_size: ``(H, W)`` of the model's input.
        seed: the run's seed.
        start_batch: batches already read.
        shuffle_all: shuffle the places of all cities together (default: within each city).

    Returns:
        ``tf.data.Dataset`` of ``{"images": float32 [P*K, H, W, 3], "labels": int64 [P*K]}``,
        the K images of a place next to each other.
    """
    per_epoch = batches_per_epoch(places, places_per_batch)

    def batch_indices():
        epoch, batch = divmod(int(start_batch), per_epoch)
        while True:
            yield from epoch_batches(places, places_per_batch, images_per_place, seed, epoch, shuffle_all)[batch:]
            epoch, batch = epoch + 1, 0

    labels = tf.constant(places.labels)
    image = _image_fn(places, tuple(image_size))
    dataset = tf.data.Dataset.from_generator(
        batch_indices, output_signature=tf.TensorSpec([places_per_batch * images_per_place], tf.int64)
    ).unbatch()
    dataset = dataset.map(
        lambda index: {"images": image(index), "labels": tf.gather(labels, index)},
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return dataset.batch(places_per_batch * images_per_place, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def make_place_eval_dataset(places, indices, image_size, batch_size):
    """The images ``indices`` of ``places``, once, in order: float32 ``[b, H, W, 3]`` batches."""
    image = _image_fn(places, tuple(image_size))
    dataset = tf.data.Dataset.from_tensor_slices(np.asarray(indices, np.int64))
    dataset = dataset.map(image, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
