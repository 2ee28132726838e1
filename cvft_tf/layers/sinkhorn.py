"""Unrolled log-domain Sinkhorn normalisation (Eqs. 2-3 of CVFT; Sec. 3.2 of SALAD).

Given a log kernel ``log_alpha`` of shape ``[batch, rows, cols]``, each iteration
subtracts the log-sum-exp over the last axis (row normalisation N^r of Eq. 2) and then over
axis 1 (column normalisation N^c), exactly as the original TF1 code::

    for _ in range(num_iterations):
        log_alpha -= logsumexp(log_alpha, axis=2) - log_row_marginals
        log_alpha -= logsumexp(log_alpha, axis=1) - log_col_marginals
    P = exp(log_alpha)

With no marginals the rows and columns are driven to sum to one (a doubly stochastic
matrix, CVFT). With marginals ``a`` (rows) and ``b`` (columns) this is the Sinkhorn-Knopp
algorithm for the entropic OT problem ``min <P, C> - eps * H(P)`` s.t. ``P 1 = a``,
``P^T 1 = b`` with kernel ``K = exp(log_alpha)`` (Cuturi 2013). The alternating
normalisation above equals the ``u``/``v`` potential form used by SALAD and SuperGlue
(``u = log a - LSE(S + v)``, ``v = log b - LSE(S + u)``, ``log P = S + u + v``).

The iteration count is a Python int: the loop is unrolled at trace time, as in the
original, so it compiles into the train step's ``tf.function`` / XLA graph.
"""

import keras
import tensorflow as tf

CVFT_COST_SCALE = 100.0
"""lambda of C' = exp(-lambda * C) in the original code (``sinkhorn(fc_feature * (-100.))``)."""

CVFT_NUM_ITERATIONS = 20
"""Sinkhorn iterations of the original code."""


def log_sinkhorn(log_alpha, num_iterations, log_row_marginals=None, log_col_marginals=None):
    """Runs ``num_iterations`` row-then-column log-domain normalisations.

    Args:
        log_alpha: float tensor ``[batch, rows, cols]``, the log kernel.
        num_iterations: Python int, number of (row, column) normalisation pairs.
        log_row_marginals: optional ``[batch, rows]`` (or broadcastable ``[rows]``) log of
            the target row sums; ``None`` means every row sums to one.
        log_col_marginals: optional ``[batch, cols]`` (or ``[cols]``) log of the target
            column sums; ``None`` means every column sums to one.

    Returns:
        ``[batch, rows, cols]`` log of the transport plan after the last column step.
    """
    row_target = 0.0 if log_row_marginals is None else log_row_marginals[..., :, None]
    col_target = 0.0 if log_col_marginals is None else log_col_marginals[..., None, :]
    for _ in range(num_iterations):
        log_alpha = log_alpha - (tf.reduce_logsumexp(log_alpha, axis=-1, keepdims=True) - row_target)
        log_alpha = log_alpha - (tf.reduce_logsumexp(log_alpha, axis=-2, keepdims=True) - col_target)
    return log_alpha


@keras.saving.register_keras_serializable(package="cvft_tf")
class Sinkhorn(keras.layers.Layer):
    """Entropic transport plan from a cost matrix by unrolled log-domain Sinkhorn.

    ``log_alpha = -cost_scale * cost`` (the exponential kernel C' = exp(-lambda C) of CVFT
    Sec. 4.2), optionally with a learnable dustbin row appended (SALAD), then
    :func:`log_sinkhorn`. Always computes in float32, also under a mixed-precision policy.

    Args:
        num_iterations: int, unrolled iterations (CVFT: 20, SALAD: 3).
        cost_scale: float, lambda in ``exp(-lambda * C)`` (CVFT: 100). SALAD passes the
            negated scores as cost with ``cost_scale = 1 / reg = 1``.
        dustbin: bool, append one row filled with a learnable scalar (in log-kernel units)
            that can absorb mass (SALAD's dustbin). The output then has ``rows + 1`` rows.
        dustbin_init: float, initial value of the dustbin scalar (SALAD: 1.0).
        return_log: bool, return ``log P`` instead of ``P``.

    Call args:
        cost: ``[batch, rows, cols]`` cost matrix C.
        log_row_marginals: optional ``[batch, rows(+1)]`` log row sums.
        log_col_marginals: optional ``[batch, cols]`` log column sums.

    Returns:
        ``[batch, rows(+1), cols]`` float32 transport plan P (or its log).
    """

    def __init__(
        self,
        num_iterations=CVFT_NUM_ITERATIONS,
        cost_scale=CVFT_COST_SCALE,
        dustbin=False,
        dustbin_init=1.0,
        return_log=False,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_iterations = int(num_iterations)
        self.cost_scale = float(cost_scale)
        self.dustbin = bool(dustbin)
        self.dustbin_init = float(dustbin_init)
        self.return_log = bool(return_log)

    def build(self, cost_shape, log_row_marginals_shape=None, log_col_marginals_shape=None):
        if self.dustbin:
            self.dustbin_score = self.add_weight(
                name="dustbin",
                shape=(),
                initializer=keras.initializers.Constant(self.dustbin_init),
                dtype="float32",
            )

    def call(self, cost, log_row_marginals=None, log_col_marginals=None):
        log_alpha = -self.cost_scale * tf.cast(cost, tf.float32)
        if self.dustbin:
            shape = tf.shape(log_alpha)
            dustbin_row = tf.fill([shape[0], 1, shape[2]], tf.cast(self.dustbin_score, tf.float32))
            log_alpha = tf.concat([log_alpha, dustbin_row], axis=1)
        if log_row_marginals is not None:
            log_row_marginals = tf.cast(log_row_marginals, tf.float32)
        if log_col_marginals is not None:
            log_col_marginals = tf.cast(log_col_marginals, tf.float32)
        log_plan = log_sinkhorn(log_alpha, self.num_iterations, log_row_marginals, log_col_marginals)
        return log_plan if self.return_log else tf.exp(log_plan)

    def compute_output_shape(self, cost_shape, log_row_marginals_shape=None, log_col_marginals_shape=None):
        batch, rows, cols = cost_shape
        if self.dustbin and rows is not None:
            rows += 1
        return (batch, rows, cols)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_iterations=self.num_iterations,
            cost_scale=self.cost_scale,
            dustbin=self.dustbin,
            dustbin_init=self.dustbin_init,
            return_log=self.return_log,
        )
        return config
