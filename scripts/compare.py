"""Runs `cvft-compare` from a source checkout: `python scripts/compare.py --run ...`."""

from cvft_tf.cli.compare import run

if __name__ == "__main__":
    run()
