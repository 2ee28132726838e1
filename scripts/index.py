"""Runs `cvft-index` from a source checkout: `python scripts/index.py ...`."""

from cvft_tf.cli.index import run

if __name__ == "__main__":
    run()
