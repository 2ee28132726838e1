"""Running on TensorFlow's distributed engine, ``tf.distribute``: the strategy a config names.

``config.distribute.strategy`` is one of :data:`STRATEGIES`:

* ``default``: TensorFlow's default strategy, one device;
* ``mirrored``: ``tf.distribute.MirroredStrategy``, every GPU of this machine (or, with
  ``config.distribute.logical_cpus=N``, N logical devices carved out of the CPU);
* ``multi_worker``: ``tf.distribute.MultiWorkerMirroredStrategy``, the machines and ports
  that the ``TF_CONFIG`` environment variable lists, each with its local devices;
* ``tpu``: ``tf.distribute.TPUStrategy`` on the TPU that ``config.distribute.tpu`` names
  (empty: the local one).

The strategy is made before anything else touches TensorFlow's devices: logical CPUs must
be configured before TensorFlow initialises them, and a multi-worker strategy starts its
collective ops at creation.
"""

import contextlib
import shutil
import tempfile

import tensorflow as tf

from cvft_tf import directory_lock

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
"""Values of ``config.distribute.strategy``."""


class StrategyError(RuntimeError):
    """The strategy a config names cannot be made here (no TPU, devices already initialised)."""


def split_cpu(logical_cpus):
    """Splits the first physical CPU into ``logical_cpus`` logical devices (0: left whole).

    Must run before TensorFlow initialises its devices (before the first op).

    Raises:
        StrategyError: TensorFlow's devices are already initialised.
    """
    if logical_cpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * logical_cpus)
        except RuntimeError as error:
            raise StrategyError(f"cannot split the CPU into {logical_cpus} logical devices: {error}") from None


def make_strategy(name, logical_cpus=0, tpu=""):
    """The ``tf.distribute.Strategy`` called ``name`` (one of :data:`STRATEGIES`).

    Args:
        name: the strategy (module docstring).
        logical_cpus: split the CPU into this many logical devices first (0: no split);
            ``mirrored`` then runs one replica on each when the machine has no GPU.
        tpu: the TPU's name or address for ``tpu`` (empty: the local TPU).

    Raises:
        ValueError: an unknown name.
        StrategyError: the CPU cannot be split any more, or no TPU answers.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; expected one of {STRATEGIES}.")
    split_cpu(logical_cpus)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = None
        if logical_cpus and not tf.config.list_logical_devices("GPU"):
            devices = [device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        raise StrategyError(f"no TPU {tpu or '(local)'} for config.distribute.strategy='tpu': {error}") from None
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy):
    """Whether this process writes the run's files: True except on a multi-worker strategy's
    non-chief workers."""
    return bool(strategy.extended.should_checkpoint)


@contextlib.contextmanager
def writing_directory(workdir, strategy):
    """The directory this process writes the run's files into: ``workdir`` for the chief,
    which holds the workdir's lock for the whole run (:mod:`cvft_tf.directory_lock`: a
    second run on the same workdir stops at once).

    The other workers of a multi-worker strategy run the same program, so they take the same
    steps (a strategy's collective ops need every worker), but write into a temporary
    directory of their own, removed when the run ends, and never into the chief's workdir
    (the pattern of TensorFlow's multi-worker guide). Every worker reads ``workdir`` to
    resume, so it must be on storage that all of them see.

    Raises:
        OutputDirectoryError: the chief cannot write ``workdir``.
        DirectoryInUseError: another run holds ``workdir``.
    """
    if is_chief(strategy):
        with directory_lock.hold(workdir, "workdir"):
            yield workdir
        return
    task = strategy.cluster_resolver.task_id
    scratch = tempfile.mkdtemp(prefix=f"cvft-worker-{task}-")
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
