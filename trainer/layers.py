"""Layers the architectures need beyond Keras's own: a cheaper dropout, a fused batch norm,
class-conditional batch norm, a cheaper class projection, minibatch standard deviation.

Each computes the textbook function; they differ from the Keras layers in how (dropout, fused
batch norm, class projection) or in what conditions the affine parameters (conditional batch
norm), so the seeds' models keep their math.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

_KEEP_LEVELS = 1 << 16  # masks are drawn as uint16: the rate is exact to 1/65536


class Dropout(layers.Layer):
    """Inverted dropout whose mask costs half the random numbers of ``keras.layers.Dropout``.

    Keras draws one float32/bf16 uniform per activation; here each 32-bit Philox output gives the
    keep/drop decision of two activations (uint16 compared with ``rate·2¹⁶``). The mask is still
    an independent Bernoulli draw per activation. In the DCGAN tutorial's discriminator the two
    dropout layers spent ~13% of a bf16 train step drawing masks (profile in benchmarks/README).
    The seed state is a ``SeedGenerator``, checkpointed with the model's dropout RNG state.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate {rate} must be in [0, 1)")
        self.rate = rate
        self.threshold = round(rate * _KEEP_LEVELS)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training or self.threshold == 0:
            return inputs
        seed = keras.random.randint((2,), 0, 2**31 - 1, dtype="int32", seed=self.seed_generator)
        count = tf.size(inputs)
        words = tf.random.stateless_uniform(
            [(count + 1) // 2], seed, minval=None, maxval=None, dtype=tf.uint32
        )
        levels = tf.reshape(tf.bitcast(words, tf.uint16), [-1])[:count]
        keep = tf.reshape(levels >= self.threshold, tf.shape(inputs))
        scale = tf.constant(_KEEP_LEVELS / (_KEEP_LEVELS - self.threshold), inputs.dtype)
        # A scaled mask times the input: its gradient is one multiply, not a select.
        return inputs * tf.where(keep, scale, tf.zeros_like(scale))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "rate": self.rate}


class BatchNormalization(layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` whose training pass on one replica is one fused kernel.

    Keras 3 normalizes in float32 with separate ops (casts, moments, and with
    ``synchronized=True`` a full-size tensor of ones to count elements) and so does its
    gradient; TensorFlow's ``FusedBatchNormV3`` (oneDNN on CPU, cuDNN on GPU) computes the same
    normalization in one pass with float32 statistics, also for bf16 inputs. Across several
    replicas the statistics must be all-reduced, so there the Keras path runs unchanged, as it
    does at inference. Same variables and moving-average update as the Keras layer.
    """

    def __init__(self, *, synchronized: bool = True, **kwargs):
        # Synchronized so that N replicas normalize over the global batch, as one device would.
        super().__init__(synchronized=synchronized, **kwargs)

    def _fusable(self, inputs, training, mask) -> bool:
        context = tf.distribute.get_replica_context()
        return bool(
            training
            and self.trainable
            and mask is None
            and not self.renorm
            and self.axis in (-1, len(inputs.shape) - 1)
            and len(inputs.shape) in (2, 4)
            and (context is None or context.num_replicas_in_sync == 1)
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        images = tf.reshape(inputs, [-1, 1, 1, channels]) if len(inputs.shape) == 2 else inputs
        scale = self.gamma if self.scale else tf.ones([channels])
        offset = self.beta if self.center else tf.zeros([channels])
        normalized, mean, unbiased_variance = tf.compat.v1.nn.fused_batch_norm(
            images, scale, offset, epsilon=self.epsilon, is_training=True
        )
        # The kernel reports the Bessel-corrected variance; Keras averages the biased one.
        count = tf.cast(tf.size(images) // channels, tf.float32)
        variance = unbiased_variance * (count - 1.0) / count
        momentum = self.momentum
        self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(self.moving_variance * momentum + variance * (1.0 - momentum))
        return tf.reshape(normalized, tf.shape(inputs))


def rows(table: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
    """``table[ids]`` ([N, F] table, ids of any shape) as a one-hot matrix product: the same
    values, and a dense gradient for the table where ``tf.gather``'s is a list of rows that the
    update must first sum into a dense one (``UnsortedSegmentSum``, a kernel a table a step)."""
    one_hot = tf.one_hot(tf.cast(ids, tf.int32), table.shape[0], dtype=table.dtype)
    return tf.tensordot(one_hot, table, axes=1)


class Embedding(layers.Embedding):
    """``keras.layers.Embedding`` looked up by ``rows``: for class labels (a few rows), where
    the one-hot product costs less than the sparse gradient it saves. Same variable."""

    def call(self, inputs):
        return tf.cast(rows(self.embeddings, inputs), self.compute_dtype)


class ConditionalBatchNorm(layers.Layer):
    """Batch norm whose scale and offset are looked up per class: ``γ[y]·x̂ + β[y]`` (labels
    of several groups, [B, G]: the groups' rows averaged).

    (de Vries et al. 2017; Miyato & Koyama 2018; BigGAN.) The label modulates every feature map
    of the generator, instead of entering once beside ``z``; a generator conditioned only by an
    input embedding learned to ignore ``z`` here (one image per class, recall 0).
    """

    def __init__(self, num_classes: int, momentum: float = 0.99, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.momentum = momentum
        self.norm = BatchNormalization(momentum=momentum, center=False, scale=False)

    def build(self, input_shape):
        features_shape, _ = input_shape
        channels = features_shape[-1]
        self.norm.build(features_shape)
        self.gamma = self.add_weight(
            shape=(self.num_classes, channels), initializer="ones", name="gamma"
        )
        self.beta = self.add_weight(
            shape=(self.num_classes, channels), initializer="zeros", name="beta"
        )

    def call(self, inputs, training=None):
        features, labels = inputs
        normalized = self.norm(features, training=training)
        broadcast = [-1] + [1] * (len(features.shape) - 2) + [features.shape[-1]]

        def lookup(table: tf.Variable) -> tf.Tensor:
            looked_up = rows(table, labels)  # labels [B] or, one per group, [B, G]
            grouped = len(labels.shape) == 2
            return tf.reshape(tf.reduce_mean(looked_up, 1) if grouped else looked_up, broadcast)

        gamma, beta = lookup(self.gamma), lookup(self.beta)
        return normalized * tf.cast(gamma, normalized.dtype) + tf.cast(beta, normalized.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self) -> dict:
        return {**super().get_config(), "num_classes": self.num_classes, "momentum": self.momentum}


class ClassProjection(layers.Layer):
    """Projection conditioning (Miyato & Koyama 2018): ``embed(y) · features``, [B, 1], with
    the embeddings of labels of several groups ([B, G]) averaged.

    Computed as one matrix product of the features with every class's embedding, then a pick
    by label: an embedding lookup and an elementwise product summed over the features (a
    broadcast, a product and a tile in each gradient) cost 7% of the pipeline default's step
    (benchmarks/LOG.md, "The projection as a matrix product")."""

    def __init__(self, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes

    def build(self, input_shape):
        features_shape, _ = input_shape
        # The initializer keras.layers.Embedding gives its table.
        self.embeddings = self.add_weight(
            shape=(self.num_classes, features_shape[-1]), initializer="uniform", name="embeddings"
        )

    def call(self, inputs):
        features, labels = inputs
        scores = tf.matmul(
            tf.cast(features, self.compute_dtype),
            tf.cast(self.embeddings, self.compute_dtype),
            transpose_b=True,
        )
        picks = tf.one_hot(tf.cast(labels, tf.int32), self.num_classes, dtype=scores.dtype)
        if len(picks.shape) == 3:  # one label per group: their embeddings' mean
            picks = tf.reduce_mean(picks, axis=1)
        return tf.reduce_sum(scores * picks, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 1)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_classes": self.num_classes}


class MinibatchStdDev(layers.Layer):
    """Appends how varied the inputs' group is as one more feature (Karras et al. 2018,
    "Progressive Growing of GANs", §3; StyleGAN and StyleGAN2 use groups of 4).

    The batch splits into groups of ``group_size`` (the largest size up to it that divides the
    batch); for each group, the standard deviation over its members of every feature, averaged
    over the features, ``s = mean_f sqrt(Var_group(x_f) + 1e-8)``, is appended to each member as
    a constant map. D then judges a group of samples as well as each sample: a generator that
    draws few kinds of images makes groups less varied than real ones, and D can tell.
    Sample ``i`` belongs to group ``i mod (batch / group_size)``, as in StyleGAN2.
    """

    def __init__(self, group_size: int = 4, **kwargs):
        super().__init__(**kwargs)
        if group_size < 2:
            raise ValueError(f"minibatch std group size {group_size} must be >= 2")
        self.group_size = group_size

    def call(self, inputs):
        shape = tf.shape(inputs)
        batch = shape[0]
        sizes = tf.range(self.group_size, 0, -1)
        group = tf.boolean_mask(sizes, tf.equal(batch % sizes, 0))[0]
        grouped = tf.reshape(tf.cast(inputs, tf.float32), tf.concat([[group, -1], shape[1:]], 0))
        spread = tf.sqrt(tf.math.reduce_variance(grouped, axis=0) + 1e-8)
        per_group = tf.reduce_mean(tf.reshape(spread, [batch // group, -1]), axis=1)
        rank = len(inputs.shape)
        per_sample = tf.reshape(tf.tile(per_group, [group]), [-1] + [1] * (rank - 1))
        feature = tf.ones_like(inputs[..., :1]) * tf.cast(per_sample, inputs.dtype)
        return tf.concat([inputs, feature], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 1)

    def get_config(self) -> dict:
        return {**super().get_config(), "group_size": self.group_size}
