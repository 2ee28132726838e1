"""Runs `cvft-export` from a source checkout: `python scripts/export.py --config ...`."""

from cvft_tf.cli.export import run

if __name__ == "__main__":
    run()
