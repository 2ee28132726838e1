"""SALAD: optimal-transport aggregation of local features with a dustbin (Izquierdo & Civera,
CVPR 2024, Sec. 3; the authors' ``salad/models/aggregators/salad.py``).

For local features ``x`` ``[B, H, W, C]`` (n = H*W positions) and a global token ``t``
``[B, C]`` (DINOv2's class token):

* token MLP ``g = Linear(512 -> g)(ReLU(Linear(C -> 512)(t)))``;
* cluster features ``f_i = Conv1x1(512 -> l)(ReLU(Dropout(Conv1x1(C -> 512)(x_i))))``;
* scores ``S_ji = Conv1x1(512 -> m)(ReLU(Dropout(Conv1x1(C -> 512)(x_i))))``, ``[B, m, n]``;
* optimal transport (Sec. 3.2): ``S`` gets one dustbin row filled with a learnable scalar
  ``z`` (init 1.0), and 3 log-domain Sinkhorn iterations (regularisation 1) solve for a plan
  with marginals, in log space, ``norm = -log(n + m)``,
  ``log a = [norm] * m + [norm + log(n - m)]`` (rows: m clusters, then the dustbin) and
  ``log b = [norm] * n`` (columns: features)::

      u = log a - LSE_i(S + v),   v = log b - LSE_j(S + u),   log P = S + u + v - norm

  so each feature spreads mass 1 over the clusters and the dustbin, each cluster receives
  about 1 and the dustbin about ``n - m``. ``P = exp(log P)``; the dustbin row is dropped;
* aggregation (Sec. 3.3): ``V[b, k, j] = sum_i f[b, k, i] P[b, j, i]`` ``[B, l, m]``, each
  cluster's vector L2-normalised over ``l``, flattened **row-major over [l, m]** (index
  ``k * m + j``, the order of PyTorch's ``V.flatten(1)``: not cluster-major), concatenated
  after the L2-normalised token, and the whole L2-normalised: ``[B, g + l*m]`` (8448 by
  default).

The Sinkhorn is the project's :class:`~cvft_tf.layers.sinkhorn.Sinkhorn` with
``cost = -S``, ``cost_scale = 1`` (= 1 / reg), ``dustbin=True`` and ``return_log=True``; its
alternating row/column normalisation equals the ``u``/``v`` form above (see its docstring).

Weights of the authors' PyTorch module (``aggregator.`` prefix in their checkpoints) map to
this layer as follows (:data:`TORCH_PARAMETER_NAMES`, :func:`load_torch_state_dict`):

=============================  =====================================  ======================
PyTorch parameter              Keras weight                           transform
=============================  =====================================  ======================
``token_features.0.weight``    ``token_hidden.kernel``  [C, 512]       ``W.T``
``token_features.0.bias``      ``token_hidden.bias``                  as is
``token_features.2.weight``    ``token_output.kernel``  [512, g]       ``W.T``
``token_features.2.bias``      ``token_output.bias``                  as is
``cluster_features.0.weight``  ``cluster_hidden.kernel`` [1,1,C,512]   ``W.transpose(2,3,1,0)``
``cluster_features.0.bias``    ``cluster_hidden.bias``                as is
``cluster_features.3.weight``  ``cluster_output.kernel`` [1,1,512,l]   ``W.transpose(2,3,1,0)``
``cluster_features.3.bias``    ``cluster_output.bias``                as is
``score.0.weight``             ``score_hidden.kernel``  [1,1,C,512]    ``W.transpose(2,3,1,0)``
``score.0.bias``               ``score_hidden.bias``                  as is
``score.3.weight``             ``score_output.kernel``  [1,1,512,m]    ``W.transpose(2,3,1,0)``
``score.3.bias``               ``score_output.bias``                  as is
``dust_bin``                   ``sinkhorn.dustbin`` (scalar)          as is
=============================  =====================================  ======================

(PyTorch's ``nn.Sequential`` indices skip the parameter-free Dropout / ReLU modules.) Their
local features are NCHW and flattened over (H, W) row-major, which is the order of the
``[B, H, W, C] -> [B, H*W, C]`` reshape here, so the descriptors agree element for element.
Weights and biases are initialised as PyTorch's defaults for ``nn.Linear`` / ``nn.Conv2d``
(uniform in ``±1/sqrt(fan_in)``), as the authors' heads start.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from cvft_tf.layers.sinkhorn import Sinkhorn

SALAD_NUM_CLUSTERS = 64
"""m, the number of clusters."""

SALAD_CLUSTER_DIM = 128
"""l, the dimension of each cluster's aggregated vector."""

SALAD_TOKEN_DIM = 256
"""g, the dimension of the global-token part of the descriptor."""

SALAD_HIDDEN_DIM = 512
"""Width of the hidden layer of the three MLPs."""

SALAD_DROPOUT = 0.3
"""Dropout on the hidden layer of the cluster-feature and score MLPs."""

SALAD_NUM_ITERATIONS = 3
"""Sinkhorn iterations of the authors' code (``get_matching_probs(p, self.dust_bin, 3)``)."""

SALAD_REGULARIZATION = 1.0
"""Entropic regularisation ``reg`` (the kernel is ``exp(S / reg)``)."""

SALAD_DUSTBIN_INIT = 1.0
"""Initial value of the dustbin score z (``nn.Parameter(torch.tensor(1.))``)."""

TORCH_PARAMETER_NAMES = {
    "token_features.0.weight": ("token_hidden", "kernel"),
    "token_features.0.bias": ("token_hidden", "bias"),
    "token_features.2.weight": ("token_output", "kernel"),
    "token_features.2.bias": ("token_output", "bias"),
    "cluster_features.0.weight": ("cluster_hidden", "kernel"),
    "cluster_features.0.bias": ("cluster_hidden", "bias"),
    "cluster_features.3.weight": ("cluster_output", "kernel"),
    "cluster_features.3.bias": ("cluster_output", "bias"),
    "score.0.weight": ("score_hidden", "kernel"),
    "score.0.bias": ("score_hidden", "bias"),
    "score.3.weight": ("score_output", "kernel"),
    "score.3.bias": ("score_output", "bias"),
    "dust_bin": ("sinkhorn", "dustbin"),
}
"""PyTorch parameter name (without the ``aggregator.`` prefix) -> (sub-layer, weight)."""


def dustbin_log_marginals(num_features, num_clusters):
    """SALAD's log marginals (``get_matching_probs`` of the authors' code).

    Args:
        num_features: n, int or scalar int tensor (should exceed ``num_clusters``).
        num_clusters: m, Python int.

    Returns:
        ``(norm, log_a, log_b)``: scalar ``-log(n + m)``; ``[m + 1]`` row marginals (``norm``
        for each cluster, ``norm + log(max(n - m, 1))`` for the dustbin); ``[n]`` column
        marginals (``norm``). All float32. For ``n > m`` this is the authors' ``log(n - m)``;
        the ``max`` only keeps the marginals finite for ``n <= m``, which :class:`SALAD`
        refuses (see :func:`assert_more_features_than_clusters`) except under XLA, where
        TensorFlow drops assertions and this fallback keeps the output finite.
    """
    n = tf.cast(num_features, tf.float32)
    norm = -tf.math.log(n + num_clusters)
    dustbin_mass = tf.maximum(n - num_clusters, 1.0)
    log_a = tf.concat([tf.fill([num_clusters], norm), [norm + tf.math.log(dustbin_mass)]], axis=0)
    log_b = tf.fill(tf.reshape(tf.cast(num_features, tf.int32), [1]), norm)
    return norm, log_a, log_b


def check_more_features_than_clusters(height, width, num_clusters):
    """Raises ``ValueError`` when a known ``height x width`` map has no more positions than clusters.

    SALAD's dustbin receives mass ``n - m`` (n = H*W local features, m clusters), so it needs
    ``n > m``; with ``n <= m`` the authors' ``log(n - m)`` is NaN. Unknown sizes (``None``)
    pass: :func:`assert_more_features_than_clusters` checks them when the layer runs.
    """
    if height is not None and width is not None and height * width <= num_clusters:
        raise ValueError(
            f"SALAD needs more local features than clusters (the dustbin's mass is n - m): "
            f"got n = {height}x{width} = {height * width} and m = {num_clusters}. Use larger "
            f"images (n = (H/14)*(W/14) for DINOv2) or fewer clusters."
        )


def assert_more_features_than_clusters(num_features, num_clusters):
    """Runtime check of ``n > m`` for maps of unknown size: an op that fails with
    ``tf.errors.InvalidArgumentError`` naming n and m (eager and graph mode; XLA drops it)."""
    return tf.debugging.Assert(
        num_features > num_clusters,
        ["SALAD needs more local features than clusters (the dustbin's mass is n - m); n = H*W =",
         num_features, "m =", num_clusters],
    )


def _torch_default_initializers(fan_in):
    """PyTorch's ``nn.Linear`` / ``nn.Conv2d`` init: kernel and bias uniform in ``±1/sqrt(fan_in)``."""
    bound = 1.0 / math.sqrt(fan_in)
    return dict(
        kernel_initializer=keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_in", distribution="uniform"),
        bias_initializer=keras.initializers.RandomUniform(-bound, bound),
    )


@keras.saving.register_keras_serializable(package="cvft_tf")
class SALAD(keras.layers.Layer):
    """Sinkhorn Algorithm for Locally Aggregated Descriptors (SALAD, Sec. 3).

    Args:
        num_clusters: m (64).
        cluster_dim: l (128).
        token_dim: g (256).
        hidden_dim: width of the MLPs' hidden layer (512).
        dropout: dropout rate on the hidden layer of the cluster and score MLPs (0.3).
        num_iterations: Sinkhorn iterations (3).
        regularization: entropic regularisation reg (1): the Sinkhorn's cost scale is 1 / reg.
        dustbin_init: initial dustbin score z (1.0).

    Call args:
        local_features: ``[B, H, W, C]`` (DINOv2 patch tokens); ``n = H*W`` must exceed m:
            a ``ValueError`` when built or called with known sizes, an
            ``InvalidArgumentError`` when run with unknown ones (under XLA, which drops
            that check, the dustbin mass ``max(n - m, 1)`` keeps the output finite).
        token: ``[B, C]`` global token (DINOv2 class token).
        training: enables dropout.

    Returns:
        dict of float32 tensors: ``"descriptor"`` ``[B, g + l*m]`` unit-norm; ``"plan"``
        ``[B, m + 1, H*W]`` the full transport plan ``exp(log P - norm)`` (last row the
        dustbin: every column sums to 1; cluster rows tend to 1, the dustbin row to n - m).
    """

    def __init__(
        self,
        num_clusters=SALAD_NUM_CLUSTERS,
        cluster_dim=SALAD_CLUSTER_DIM,
        token_dim=SALAD_TOKEN_DIM,
        hidden_dim=SALAD_HIDDEN_DIM,
        dropout=SALAD_DROPOUT,
        num_iterations=SALAD_NUM_ITERATIONS,
        regularization=SALAD_REGULARIZATION,
        dustbin_init=SALAD_DUSTBIN_INIT,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_clusters = int(num_clusters)
        self.cluster_dim = int(cluster_dim)
        self.token_dim = int(token_dim)
        self.hidden_dim = int(hidden_dim)
        self.dropout = float(dropout)
        self.num_iterations = int(num_iterations)
        self.regularization = float(regularization)
        self.dustbin_init = float(dustbin_init)
        self.sinkhorn = Sinkhorn(
            num_iterations=self.num_iterations,
            cost_scale=1.0 / self.regularization,
            dustbin=True,
            dustbin_init=self.dustbin_init,
            return_log=True,
            name="sinkhorn",
        )

    def build(self, local_features_shape, token_shape):
        _, height, width, channels = local_features_shape
        check_more_features_than_clusters(height, width, self.num_clusters)
        if token_shape[-1] != channels:
            raise ValueError(f"local features have {channels} channels but the token has {token_shape[-1]}.")

        def conv(units, fan_in, name):
            return keras.layers.Conv2D(
                units, 1, name=name, dtype=self.dtype_policy, **_torch_default_initializers(fan_in)
            )

        def dense(units, fan_in, name):
            return keras.layers.Dense(units, name=name, dtype=self.dtype_policy, **_torch_default_initializers(fan_in))

        self.token_hidden = dense(self.hidden_dim, channels, "token_hidden")
        self.token_output = dense(self.token_dim, self.hidden_dim, "token_output")
        self.cluster_hidden = conv(self.hidden_dim, channels, "cluster_hidden")
        self.cluster_dropout = keras.layers.Dropout(self.dropout, name="cluster_dropout", dtype=self.dtype_policy)
        self.cluster_output = conv(self.cluster_dim, self.hidden_dim, "cluster_output")
        self.score_hidden = conv(self.hidden_dim, channels, "score_hidden")
        self.score_dropout = keras.layers.Dropout(self.dropout, name="score_dropout", dtype=self.dtype_policy)
        self.score_output = conv(self.num_clusters, self.hidden_dim, "score_output")

        hidden_map = (*local_features_shape[:3], self.hidden_dim)
        self.token_hidden.build(token_shape)
        self.token_output.build((token_shape[0], self.hidden_dim))
        for first, second in ((self.cluster_hidden, self.cluster_output), (self.score_hidden, self.score_output)):
            first.build(local_features_shape)
            second.build(hidden_map)
        self.sinkhorn.build((local_features_shape[0], self.num_clusters, None))

    def log_transport_plan(self, scores):
        """``log P - norm`` ``[B, m + 1, n]`` from scores ``[B, m, n]`` (Sec. 3.2, float32)."""
        scores = tf.cast(scores, tf.float32)
        norm, log_a, log_b = dustbin_log_marginals(tf.shape(scores)[2], self.num_clusters)
        return self.sinkhorn(-scores, log_row_marginals=log_a, log_col_marginals=log_b) - norm

    def call(self, local_features, token, training=None):
        batch = tf.shape(local_features)[0]
        num_features = tf.shape(local_features)[1] * tf.shape(local_features)[2]
        _, height, width, _ = local_features.shape
        check_more_features_than_clusters(height, width, self.num_clusters)
        with tf.control_dependencies([assert_more_features_than_clusters(num_features, self.num_clusters)]):
            local_features = tf.identity(local_features)
        hidden = tf.nn.relu(self.cluster_dropout(self.cluster_hidden(local_features), training=training))
        features = self.cluster_output(hidden)
        hidden = tf.nn.relu(self.score_dropout(self.score_hidden(local_features), training=training))
        scores = self.score_output(hidden)
        global_token = self.token_output(tf.nn.relu(self.token_hidden(token)))

        features = tf.reshape(tf.cast(features, tf.float32), [batch, num_features, self.cluster_dim])
        scores = tf.transpose(tf.reshape(scores, [batch, num_features, self.num_clusters]), [0, 2, 1])
        plan = tf.exp(self.log_transport_plan(scores))
        assignment = plan[:, : self.num_clusters]
        # V[b, k, j] = sum_i f[b, k, i] P[b, j, i]: [B, l, m].
        clusters = tf.matmul(features, assignment, transpose_a=True, transpose_b=True)
        clusters = tf.nn.l2_normalize(clusters, axis=1)
        flat = tf.reshape(clusters, [batch, self.cluster_dim * self.num_clusters])
        global_token = tf.nn.l2_normalize(tf.cast(global_token, tf.float32), axis=-1)
        descriptor = tf.nn.l2_normalize(tf.concat([global_token, flat], axis=-1), axis=-1)
        return {"descriptor": descriptor, "plan": plan}

    @property
    def descriptor_size(self):
        """g + l*m."""
        return self.token_dim + self.cluster_dim * self.num_clusters

    def compute_output_spec(self, local_features, token, training=None):
        batch, height, width, _ = local_features.shape
        num_features = height * width if height is not None and width is not None else None
        return {
            "descriptor": keras.KerasTensor((batch, self.descriptor_size), dtype="float32"),
            "plan": keras.KerasTensor((batch, self.num_clusters + 1, num_features), dtype="float32"),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            num_clusters=self.num_clusters,
            cluster_dim=self.cluster_dim,
            token_dim=self.token_dim,
            hidden_dim=self.hidden_dim,
            dropout=self.dropout,
            num_iterations=self.num_iterations,
            regularization=self.regularization,
            dustbin_init=self.dustbin_init,
        )
        return config


def load_torch_state_dict(salad, state_dict, prefix=""):
    """Copies the authors' PyTorch SALAD parameters into a built :class:`SALAD` layer.

    Args:
        salad: a built ``SALAD`` layer of the same sizes.
        state_dict: mapping of PyTorch parameter names to arrays (``tensor.numpy()``), e.g.
            the ``state_dict`` of their checkpoint.
        prefix: prefix of the aggregator's parameters in ``state_dict`` (``"aggregator."``
            in the authors' ``VPRModel`` checkpoints).

    Raises:
        KeyError: a parameter of :data:`TORCH_PARAMETER_NAMES` is missing.
        ValueError: a shape does not match after the transposition.
    """
    for torch_name, (layer_name, weight_name) in TORCH_PARAMETER_NAMES.items():
        value = np.asarray(state_dict[prefix + torch_name], dtype=np.float32)
        if weight_name == "kernel" and value.ndim == 4:
            value = value.transpose(2, 3, 1, 0)
        elif weight_name == "kernel":
            value = value.T
        layer = getattr(salad, layer_name)
        variable = layer.dustbin_score if weight_name == "dustbin" else getattr(layer, weight_name)
        value = value.reshape(variable.shape) if weight_name == "dustbin" else value
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(
                f"{prefix + torch_name}: shape {value.shape} does not fit {variable.path} {variable.shape}"
            )
        variable.assign(value)
