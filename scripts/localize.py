"""Runs `cvft-localize` from a source checkout: `python scripts/localize.py ...`."""

from cvft_tf.cli.localize import run

if __name__ == "__main__":
    run()
