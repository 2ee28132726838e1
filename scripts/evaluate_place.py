"""Runs `cvft-eval-place` from a source checkout: `python scripts/evaluate_place.py --weights ...`."""

from cvft_tf.cli.evaluate_place import run

if __name__ == "__main__":
    run()
