"""``cvft-make-synthetic``: writes the built-in synthetic cross-view world as a dataset.

    cvft-make-synthetic --out=data/synthetic_cvusa --format=cvusa \\
        --num_train=2000 --num_val=500 --seed=0
    cvft-make-synthetic --out=data/synthetic_cvact --format=cvact \\
        --num_train=2000 --num_val=500 --num_test=1000
    cvft-make-synthetic --out=/tmp/tiny --num_train=8 --num_val=4 \\
        --aerial_size=128 --ground_height=64 --ground_width=352
    cvft-make-synthetic --out=runs/world --num_train=1600 --num_val=100 --map_extent=600 \\
        --num_queries=20 --aerial_size=128 --ground_height=64 --ground_width=352 [--map_only]
    cvft-make-synthetic --out=runs/places --format=gsv_cities --num_train=200 --num_val=50 \\
        [--views_per_place=4 --place_image_size=128]

The folder has the real dataset's layout (``cvft_tf.synthetic.writer``), so the CVUSA
and CVACT loaders read it unchanged. Image sizes default to the real datasets' (CVUSA 750
aerial and 224 x 1232 panorama; CVACT the pre-cut 256 and 112 x 616, or with
``--cvact_raw`` the released 1200 and 832 x 1664). The same flags give the same bytes.

With ``--map_extent`` (CVUSA layout) it also writes a geo-referenced orthophoto of a held-out
area and query panoramas at known positions under ``map/`` (``cvft_tf.synthetic.map_writer``),
for ``cvft-index`` and ``cvft-localize``; ``--map_only`` writes only those (the area is where
the same ``--num_train``, ``--num_val`` and ``--spacing`` put it).

``--format=gsv_cities`` writes places for single-view place recognition in the GSV-Cities
layout (``cvft_tf.synthetic.place_writer``): ``--num_train`` training places, ``--num_val``
held-out places, ``--views_per_place`` square views of ``--place_image_size`` pixels each.
"""

import dataclasses
import os

from absl import app, flags, logging

from cvft_tf.cli.exits import exit_with_user_error, run_command
from cvft_tf.synthetic import map_writer, place_writer, writer
from cvft_tf.output_dirs import OutputDirectoryError, make_output_directory

FLAGS = flags.FLAGS
flags.DEFINE_string("out", None, "Dataset root to create (must be empty unless --overwrite).")
flags.DEFINE_enum("format", "cvusa", ["cvusa", "cvact", "gsv_cities"], "Layout to write.")
flags.DEFINE_integer("num_train", 1000, "Training pairs.", lower_bound=0)
flags.DEFINE_integer("num_val", 200, "Validation pairs (CVUSA val-19zl, CVACT valSet).", lower_bound=0)
flags.DEFINE_integer("num_test", 500, "CVACT only: pairs of the dense test split valSetAll.", lower_bound=0)
flags.DEFINE_integer("seed", 0, "World and rendering seed (same seed, same bytes).", lower_bound=0)
flags.DEFINE_bool("cvact_raw", False, "CVACT only: the released image sizes (slow), not the pre-cut ones.")
flags.DEFINE_integer("aerial_size", None, "Aerial side, pixels (default: the format's).", lower_bound=8)
flags.DEFINE_integer("ground_height", None, "Panorama height, pixels (default: the format's).", lower_bound=4)
flags.DEFINE_integer("ground_width", None, "Panorama width, pixels (default: the format's).", lower_bound=8)
flags.DEFINE_float(
    "ground_vfov",
    None,
    "Panorama elevation range about the horizon, degrees (default: CVUSA square pixels, CVACT 90, raw CVACT 180).",
    lower_bound=1.0,
    upper_bound=180.0,
)
flags.DEFINE_float(
    "aerial_extent",
    None,
    "Ground covered by the aerial side, metres (default: CVUSA 170, CVACT 144).",
    lower_bound=1.0,
)
flags.DEFINE_float("spacing", writer.SPACING, "Metres between train/val locations.", lower_bound=1.0)
flags.DEFINE_float("test_spacing", writer.TEST_SPACING, "CVACT only: metres between test locations.", lower_bound=1.0)
flags.DEFINE_integer("jpeg_quality", writer.JPEG_QUALITY, "JPEG quality.", lower_bound=1, upper_bound=100)
flags.DEFINE_integer("workers", 1, "Rendering processes (the files do not depend on it).", lower_bound=1)
flags.DEFINE_float(
    "map_extent", 0.0, "CVUSA only: side in metres of a geo-referenced orthophoto of a held-out area (0: none).",
    lower_bound=0.0,
)
flags.DEFINE_integer("num_queries", 20, "Query panoramas at known positions inside the map.", lower_bound=1)
flags.DEFINE_bool("map_only", False, "Write only the map and its queries (needs --map_extent).")
flags.DEFINE_integer("views_per_place", 4, "gsv_cities only: images of each place.", lower_bound=2)
flags.DEFINE_integer("place_image_size", 128, "gsv_cities only: side of the square views, pixels.", lower_bound=8)
flags.DEFINE_bool("overwrite", False, "Write into a non-empty --out (same-name files are replaced).")


_CROSS_VIEW_FLAGS = (
    "num_test", "cvact_raw", "aerial_size", "ground_height", "ground_width", "ground_vfov", "aerial_extent",
    "test_spacing", "workers", "map_extent", "num_queries", "map_only",
)  # fmt: skip
"""Flags of the cross-view layouts, which ``--format=gsv_cities`` does not take."""


def _images():
    """The ``ImageSpec`` of the flags: the format's defaults with the size flags applied."""
    if FLAGS.format == "cvusa":
        images = writer.CVUSA_IMAGES
    else:
        images = writer.CVACT_RAW_IMAGES if FLAGS.cvact_raw else writer.CVACT_IMAGES
    overrides = {
        "aerial_size": FLAGS.aerial_size,
        "aerial_extent": FLAGS.aerial_extent,
        "ground_height": FLAGS.ground_height,
        "ground_width": FLAGS.ground_width,
        "vertical_fov": FLAGS.ground_vfov,
    }
    return dataclasses.replace(images, **{k: v for k, v in overrides.items() if v is not None})


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not FLAGS.out:
        raise app.UsageError("--out is required.")
    if FLAGS.format == "gsv_cities":
        _write_places()
        return
    if FLAGS["views_per_place"].present or FLAGS["place_image_size"].present:
        raise app.UsageError("--views_per_place and --place_image_size are for --format=gsv_cities.")
    if FLAGS.format == "cvusa" and FLAGS["num_test"].present:
        raise app.UsageError("--num_test is for --format=cvact (CVUSA has train and val only).")
    if FLAGS.format == "cvusa" and FLAGS.cvact_raw:
        raise app.UsageError("--cvact_raw is for --format=cvact.")
    if FLAGS.format != "cvusa" and FLAGS.map_extent:
        raise app.UsageError("--map_extent is for --format=cvusa.")
    if FLAGS.map_only and not FLAGS.map_extent:
        raise app.UsageError("--map_only needs --map_extent.")
    num_test = FLAGS.num_test if FLAGS.format == "cvact" else 0
    if FLAGS.num_train + FLAGS.num_val + num_test == 0 and not FLAGS.map_only:
        raise app.UsageError("Nothing to write: --num_train, --num_val and --num_test are all 0.")
    images = _images()
    logging.info("synthetic %s dataset, %s, seed %d -> %s", FLAGS.format, images, FLAGS.seed, FLAGS.out)
    common = {
        "seed": FLAGS.seed,
        "images": images,
        "spacing": FLAGS.spacing,
        "workers": FLAGS.workers,
        "overwrite": FLAGS.overwrite,
        "jpeg_quality": FLAGS.jpeg_quality,
    }
    try:
        make_output_directory(FLAGS.out, "--out directory")
        if FLAGS.map_only:
            summary = None
        elif FLAGS.format == "cvusa":
            summary = writer.write_cvusa(FLAGS.out, FLAGS.num_train, FLAGS.num_val, **common)
        else:
            summary = writer.write_cvact(
                FLAGS.out,
                FLAGS.num_train,
                FLAGS.num_val,
                FLAGS.num_test,
                test_spacing=FLAGS.test_spacing,
                **common,
            )
        if FLAGS.map_extent:
            origin = map_writer.localization_origin(FLAGS.num_train, FLAGS.num_val, FLAGS.spacing)
            written = map_writer.write_localization_map(
                FLAGS.out, FLAGS.seed, images, origin, FLAGS.map_extent, FLAGS.num_queries, FLAGS.jpeg_quality
            )
    except (FileExistsError, OutputDirectoryError, ValueError) as error:
        exit_with_user_error(error)
    if summary is not None:
        splits = ", ".join(f"{count} {name}" for name, count in summary["splits"].items())
        print(
            f"Wrote {summary['pairs']} synthetic pairs ({splits}) in the {summary['format'].upper()} "
            f"layout to {summary['out_dir']} in {summary['seconds']:.1f} s "
            f"({summary['seconds_per_pair']:.3f} s per pair)"
        )
    if FLAGS.map_extent:
        print(
            f"Wrote a {written['size']}x{written['size']} px map ({written['metres_per_pixel']:.3f} m per pixel) "
            f"and {written['queries']} query panoramas to {os.path.dirname(written['map'])}"
        )


def _write_places():
    """``--format=gsv_cities``: writes the training and held-out places."""
    other = [name for name in _CROSS_VIEW_FLAGS if FLAGS[name].present]
    if other:
        raise app.UsageError(f"--format=gsv_cities does not take --{', --'.join(other)}.")
    if FLAGS.num_train + FLAGS.num_val == 0:
        raise app.UsageError("Nothing to write: --num_train and --num_val are both 0.")
    try:
        make_output_directory(FLAGS.out, "--out directory")
        summary = place_writer.write_gsv_cities(
            FLAGS.out,
            FLAGS.num_train,
            FLAGS.num_val,
            views_per_place=FLAGS.views_per_place,
            seed=FLAGS.seed,
            image_size=FLAGS.place_image_size,
            spacing=FLAGS.spacing,
            overwrite=FLAGS.overwrite,
            jpeg_quality=FLAGS.jpeg_quality,
        )
    except (FileExistsError, OutputDirectoryError, ValueError) as error:
        exit_with_user_error(error)
    places = ", ".join(f"{count} in {city}" for city, count in summary["places"].items())
    print(
        f"Wrote {summary['images']} images of synthetic places ({places}) in the GSV-Cities layout "
        f"to {summary['out_dir']} in {summary['seconds']:.1f} s"
    )


def run():
    run_command(main)


if __name__ == "__main__":
    run()
