"""Runs `cvft-make-synthetic` from a source checkout: `python scripts/make_synthetic.py --out DIR ...`."""

from cvft_tf.cli.make_synthetic import run

if __name__ == "__main__":
    run()
