"""cvft_tf: Optimal Feature Transport (CVFT, AAAI 2020) and SALAD on TensorFlow 2 / Keras 3."""

__version__ = "0.1.0"
