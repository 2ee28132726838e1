"""Runs `cvft-train-place` from a source checkout: `python scripts/train_place.py --config ...`."""

from cvft_tf.cli.train_place import run

if __name__ == "__main__":
    run()
