"""Runs `cvft-eval` from a source checkout: `python scripts/evaluate.py --config ...`."""

from cvft_tf.cli.evaluate import run

if __name__ == "__main__":
    run()
