"""Command-line entry points (absl flags + Python configs).

Importing this package keeps TensorFlow's start-up logs off the terminal (see
:mod:`cvft_tf.cli.console`); it runs before any command module imports TensorFlow.
"""

from cvft_tf.cli.console import quiet_tensorflow_start

quiet_tensorflow_start()
