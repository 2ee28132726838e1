"""Converts an original CVFT TF1 checkpoint to Keras weights; see ``cvft_tf/cli/convert.py``."""

from cvft_tf.cli.convert import run

if __name__ == "__main__":
    run()
