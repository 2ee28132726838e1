"""Runs `cvft-train` from a source checkout: `python scripts/train.py --config ...`."""

from cvft_tf.cli.train import run

if __name__ == "__main__":
    run()
