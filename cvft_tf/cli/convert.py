"""``cvft-convert``: the original's TF1 checkpoint -> Keras ``.weights.h5`` of this port.

    cvft-convert --tf1_checkpoint=Model/CVUSA/CVFT/9/model.ckpt --variant=cvft \\
        --out=converted/cvusa_cvft.weights.h5

Prints the map (TF1 name -> Keras path, shape) of every variable copied; refuses, listing
all of them, any missing, unexpected or wrong-shape variable (optimizer slots are skipped).
See :mod:`cvft_tf.interop.tf1_checkpoint`.
"""

import os

from absl import app, flags

from cvft_tf.cli.common import reports_user_errors, size_flag
from cvft_tf.cli.exits import run_command
from cvft_tf.data.preprocess import AERIAL_SIZE, GROUND_SIZE
from cvft_tf.interop import tf1_checkpoint
from cvft_tf.models.cross_view import VARIANTS
from cvft_tf.output_dirs import make_output_directory

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "tf1_checkpoint", None, "TF1 checkpoint prefix (.../model.ckpt), one of its files, or its directory."
)
flags.DEFINE_enum("variant", "cvft", VARIANTS, "Network of the checkpoint (the original's network_type).")
flags.DEFINE_string("out", None, "Output Keras weights file, ending in .weights.h5.")
flags.DEFINE_list("ground_size", list(map(str, GROUND_SIZE)), "Ground image H,W of the model.")
flags.DEFINE_list("aerial_size", list(map(str, AERIAL_SIZE)), "Aerial image H,W of the model.")
flags.DEFINE_list("map_size", None, "Output map h,w (default: the aerial map's own size, 8,8).")
flags.DEFINE_bool(
    "ignore_extra", False, "Skip checkpoint variables the variant has no place for (e.g. CVFT -> vgg_conv)."
)


@reports_user_errors
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not FLAGS.tf1_checkpoint or not FLAGS.out:
        raise app.UsageError("--tf1_checkpoint and --out are required.")
    if not FLAGS.out.endswith(".weights.h5"):
        raise app.UsageError(f"--out must end in .weights.h5 (Keras weights), got {FLAGS.out!r}.")
    if os.path.isdir(FLAGS.out):
        raise app.UsageError(f"--out {FLAGS.out} is a directory; give the path of the .weights.h5 file to write.")
    prefix = tf1_checkpoint.resolve_checkpoint_prefix(FLAGS.tf1_checkpoint)
    make_output_directory(os.path.dirname(os.path.abspath(FLAGS.out)), "folder of --out")
    rows = tf1_checkpoint.convert_checkpoint(
        prefix,
        FLAGS.out,
        variant=FLAGS.variant,
        ground_size=size_flag(FLAGS.ground_size, "ground_size"),
        aerial_size=size_flag(FLAGS.aerial_size, "aerial_size"),
        map_size=size_flag(FLAGS.map_size, "map_size"),
        ignore_extra=FLAGS.ignore_extra,
    )
    width = max(len(row.tf1_name) for row in rows)
    for row in rows:
        print(f"{row.tf1_name:<{width}}  ->  {row.keras_path} {list(row.shape)}")
    print(f"Wrote {len(rows)} variables ({FLAGS.variant}) to {FLAGS.out}")


def run():
    run_command(main)


if __name__ == "__main__":
    run()
