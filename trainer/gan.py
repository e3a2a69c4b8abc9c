"""The GAN and its train step: networks, optimizers, EMA generator, and the adversarial update.

One train step = ``training_ratio`` discriminator updates, the last of which shares its single
generator forward pass with the generator update (the TensorFlow DCGAN tutorial's step, when
``training_ratio`` is 1). Per-example losses are averaged over the *global* batch and gradients
summed over replicas, so N replicas apply the update one device would.

All randomness is stateless and indexed by ``(seed, step)`` (noise, gradient-penalty mixing) or
checkpointed (dropout seed state), so a resumed run continues bit for bit.
"""

from __future__ import annotations

import hashlib

import keras
import numpy as np
import tensorflow as tf

from common.schema import DataSpec
from trainer import augment, clusters, ema, losses, models, optimizers, penalties, schedule, stats
from trainer.config import TrainConfig

D_LOSS = stats.declare("d_loss", "d_loss", "{:.4f}", panel="losses")
G_LOSS = stats.declare("g_loss", "g_loss", "{:.4f}", panel="losses")
D_REAL = stats.declare("d_real", "D(x)", "{:.3f}", panel="discriminator outputs")
D_FAKE = stats.declare("d_fake", "D(G(z))", "{:.3f}", panel="discriminator outputs")
# Not per-example means: the L2 norm of each replica's gradient, summed over replicas (the exact
# global norm on one replica; an upper bound on several, where gradients add before the update).
D_GRAD_NORM = stats.declare("d_grad_norm", "|grad D|", "{:.3g}", stats.TOTAL, "gradient norms")
G_GRAD_NORM = stats.declare("g_grad_norm", "|grad G|", "{:.3g}", stats.TOTAL, "gradient norms")
SUBSTEP_LOSSES = "substep_d_losses"
# Distinct stateless RNG streams.
NOISE_STREAM, ALPHA_STREAM, MIRROR_STREAM = 0x6E6F697365, 0x616C706861, 0x6D6972726F72
AUGMENT_STREAMS = {"real": (0x6175677275, 0x6175677256), "fake": (0x6175676675, 0x6175676656)}


def _adam(config: TrainConfig, learning_rate: float) -> keras.optimizers.Optimizer:
    optimizer = optimizers.FusedAdam(learning_rate, beta_1=config.beta1, beta_2=config.beta2)
    if config.mixed_precision == "fp16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


class Gan:
    """Networks, optimizers and the distributed train step. Build it inside ``strategy.scope()``."""

    def __init__(self, config: TrainConfig, data: DataSpec, strategy: tf.distribute.Strategy):
        self.config = config
        self.strategy = strategy
        self.data = data
        self.loss: losses.GanLoss = config.gan_loss
        self.model_spec = spec = config.model_spec(data)
        # Self-conditioning: the clusters' variables are filled by fit_clusters or a restore.
        self.clusters = (
            clusters.build(config.self_conditioning, data.shape, config.clusters_per_channel)
            if config.self_conditioning
            else None
        )
        self.generator = models.build_generator(config.architecture, spec)
        self.discriminator = models.build_discriminator(config.architecture, spec)
        self.ema_generator = (
            models.build_generator(config.architecture, spec) if config.ema_kimg > 0 else None
        )
        if self.ema_generator is not None:
            for average, weight in zip(
                self.ema_generator.weights, self.generator.weights, strict=True
            ):
                average.assign(weight)
        self.augmentation = augment.PIPELINES[config.augment]
        self.augment_p = tf.Variable(
            config.augment_p, dtype=tf.float32, trainable=False, name="augment_p"
        )
        self.g_optimizer = _adam(config, config.g_learning_rate)
        self.d_optimizer = _adam(config, config.d_learning_rate)
        # Built now, so a checkpoint restores into existing slots rather than deferred ones.
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.global_batch = config.batch_size
        self.per_replica_batch = config.batch_size // strategy.num_replicas_in_sync

    # --- what a checkpoint holds ----------------------------------------------------------------

    def dropout_rng_state(self) -> list[tf.Variable]:
        """Keras dropout seed states: model variables that tf.train.Checkpoint does not track."""
        return [
            v
            for model in (self.generator, self.discriminator)
            for v in model.variables
            if "seed_generator" in v.path
        ]

    def checkpoint_objects(self) -> dict:
        objects = {
            "generator": self.generator,
            "discriminator": self.discriminator,
            "g_optimizer": self.g_optimizer,
            "d_optimizer": self.d_optimizer,
            "step": self.step,
            "dropout_rng": self.dropout_rng_state(),
        }
        if self.ema_generator is not None:
            objects["ema_generator"] = self.ema_generator
        if self.clusters is not None:
            objects["clusters"] = self.clusters
        if self.augmentation.adaptive:
            objects["augment_p"] = self.augment_p
        return objects

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The statistics (``trainer/stats.py``) each train call reports, in order."""
        penalty = (penalties.PENALTY,) if self.config.penalty_weights else ()
        adaptive = augment.ADAPTIVE_STATS if self.augmentation.adaptive else ()
        return (D_LOSS, G_LOSS, D_REAL, D_FAKE, *penalty, D_GRAD_NORM, G_GRAD_NORM, *adaptive)

    def fit_clusters(self, images: np.ndarray) -> list[clusters.Fitted]:
        """Self-conditioning's clusters (one fit per channel when clustered per channel), from
        a sample of the training images (a fresh run)."""
        return self.clusters.fit(images, self.config.seed)

    def _schedule_learning_rates(self) -> None:
        """This step's learning rates: the flags' (they win over a checkpoint's: a resumed run
        may change them) scaled by the schedule at the restored step, so a resumed run
        continues the schedule where it stopped."""
        scale = schedule.learning_rate_scale(
            self.step, self.config.train_steps, self.config.lr_decay_start
        )
        self.g_optimizer.learning_rate.assign(self.config.g_learning_rate * scale)
        self.d_optimizer.learning_rate.assign(self.config.d_learning_rate * scale)

    @property
    def sampler(self) -> keras.Model:
        """The generator used for samples and export: the EMA copy when there is one."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    # --- randomness ------------------------------------------------------------------------------

    def _stateless(
        self, stream: int, step: tf.Tensor, substep: int, shape_tail: tuple, normal: bool = False
    ) -> tf.Tensor:
        """This replica's slice of a global-batch random tensor for (step, substep), normal or
        uniform in [0, 1)."""
        context = tf.distribute.get_replica_context()
        counter = step * (self.config.training_ratio + 1) + substep
        seed = tf.stack([tf.constant(self.config.seed * 1_000_003 + stream, tf.int64), counter])
        draw = tf.random.stateless_normal if normal else tf.random.stateless_uniform
        full = draw((self.global_batch, *shape_tail), seed=seed)
        start = tf.cast(context.replica_id_in_sync_group, tf.int32) * self.per_replica_batch
        return full[start : start + self.per_replica_batch]

    # --- the per-replica step --------------------------------------------------------------------

    def _inputs(self, tensors: tf.Tensor, labels: tf.Tensor) -> list:
        return [tensors, labels] if self.model_spec.conditional else [tensors]

    def _critic(self, labels, step, substep, kind: str) -> penalties.Critic:
        """D's logits for real or fake (``kind``) images of this (step, substep), through the
        augmentation: every evaluation of D on them (loss, penalty) sees the same augmented
        images, and gradients to the images pass through it."""

        def critic(images: tf.Tensor) -> tf.Tensor:
            return self.discriminator(self._inputs(images, labels), training=True)

        if self.config.augment == "none":
            return critic
        uniform, normal = AUGMENT_STREAMS[kind]
        draws = augment.Draws(
            self._stateless(uniform, step, substep, (augment.DRAWS,)),
            self._stateless(normal, step, substep, (augment.DRAWS,), normal=True),
        )
        height, width = self.data.shape[:2]
        transform = self.augmentation.bind(draws, self.augment_p, height, width)
        return lambda images: critic(transform(images))

    def _discriminator_loss(
        self, real, fake, labels, step, substep
    ) -> tuple[tf.Tensor, dict, tf.Tensor, tf.Tensor]:
        """(mean loss, per-example metrics, real logits, fake logits) of one D evaluation."""
        real_critic = self._critic(labels, step, substep, "real")
        fake_critic = self._critic(labels, step, substep, "fake")
        real_logits, fake_logits = real_critic(real), fake_critic(fake)
        per_example = self.loss.discriminator(real_logits, fake_logits, self.config.label_smoothing)
        penalty = self._penalties(
            real, tf.cast(fake, real.dtype), real_critic, fake_critic, step, substep
        )
        shown = tf.sigmoid if self.loss.probabilistic else tf.identity
        metrics = {D_LOSS: per_example, D_REAL: shown(real_logits), D_FAKE: shown(fake_logits)}
        if self.config.penalty_weights:
            metrics[penalties.PENALTY] = penalty
        if self.augmentation.adaptive:
            metrics[augment.REAL_SIGN] = self.loss.real_sign(real_logits, fake_logits)
        return self._average(per_example + penalty), metrics, real_logits, fake_logits

    def _penalties(self, real, fake, real_critic, fake_critic, step, substep) -> tf.Tensor:
        """The weighted sum of the configured penalties per example; lazily every k-th step."""
        weights = self.config.penalty_weights

        def none() -> tf.Tensor:
            return tf.zeros([tf.shape(real)[0]])

        if not weights:
            return none()

        def weighted_sum() -> tf.Tensor:
            terms = {
                "r1": lambda: penalties.zero_centred(real_critic, real),
                "r2": lambda: penalties.zero_centred(fake_critic, fake),
                "gp": lambda: penalties.wasserstein_gp(
                    real_critic,
                    real,
                    fake,
                    self._stateless(ALPHA_STREAM, step, substep, (1, 1, 1)),
                ),
            }
            return tf.add_n([weight * terms[name]() for name, weight in weights.items()])

        every = self.config.penalty_every
        if every == 1:
            return weighted_sum()
        # A cond, not a multiply by zero: the skipped steps skip the double backprop's cost.
        return tf.cond(
            tf.equal(step % every, 0),
            lambda: float(every) * weighted_sum(),
            none,
        )

    def _average(self, per_example: tf.Tensor) -> tf.Tensor:
        return tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch)

    def _apply(self, optimizer, tape, loss, variables) -> tf.Tensor:
        """One update; returns the gradient's L2 norm (unscaled when loss scaling is on)."""
        scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        if scaled:
            loss = optimizer.scale_loss(loss)
        # Dense, not IndexedSlices: FusedAdam takes dense gradients, and a sparse one is
        # all-gathered across workers, where with the lazy penalties' tf.cond its row count
        # differs between them (MultiWorkerMirrored: "another member in the group expected
        # shape"). The label embeddings (layers.rows) already give dense ones.
        gradients = [
            tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g
            for g in tape.gradient(loss, variables)
        ]
        norm = tf.linalg.global_norm([tf.cast(g, tf.float32) for g in gradients])
        if scaled:
            norm = norm / tf.cast(optimizer.dynamic_scale, tf.float32)
        optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return norm

    def _discriminator_only_step(self, real, labels, step, substep) -> tf.Tensor:
        z = self._stateless(NOISE_STREAM, step, substep, (self.model_spec.latent_dim,), normal=True)
        fake = self.generator(self._inputs(z, labels), training=True)
        with tf.GradientTape() as tape:
            d_loss, _, _, _ = self._discriminator_loss(real, fake, labels, step, substep)
        self._apply(self.d_optimizer, tape, d_loss, self.discriminator.trainable_variables)
        return tf.cast(d_loss, tf.float32)

    def _joint_step(self, real, labels, step) -> dict:
        substep = self.config.training_ratio - 1
        z = self._stateless(NOISE_STREAM, step, substep, (self.model_spec.latent_dim,), normal=True)
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = self.generator(self._inputs(z, labels), training=True)
            d_loss, metrics, real_logits, fake_logits = self._discriminator_loss(
                real, fake, labels, step, substep
            )
            g_per_example = self.loss.generator(tf.stop_gradient(real_logits), fake_logits)
            g_loss = self._average(g_per_example)
        d_norm = self._apply(
            self.d_optimizer, d_tape, d_loss, self.discriminator.trainable_variables
        )
        g_norm = self._apply(self.g_optimizer, g_tape, g_loss, self.generator.trainable_variables)
        metrics[G_LOSS] = g_per_example
        # Per-replica sums scaled by the global batch: a SUM over replicas is the global mean.
        means = {
            k: tf.reduce_sum(tf.cast(v, tf.float32)) / self.global_batch for k, v in metrics.items()
        }
        return {**means, D_GRAD_NORM: d_norm, G_GRAD_NORM: g_norm}

    def _reals(self, images: tf.Tensor, step: tf.Tensor, substep: int) -> tf.Tensor:
        """A sub-step's real images as the data set gives them: x-flipped half the time with
        --mirror."""
        if not self.config.mirror:
            return images
        return augment.mirror(images, self._stateless(MIRROR_STREAM, step, substep, ()))

    def _replica_step(self, images: tf.Tensor, labels: tf.Tensor, step: tf.Tensor) -> dict:
        if self.clusters is not None:
            labels = self.clusters.assign(images)
        b = self.per_replica_batch
        # The extra discriminator updates' losses, summed: the NaN guard sees every sub-step.
        substep_losses = tf.constant(0.0)
        for substep in range(self.config.training_ratio - 1):
            substep_losses += self._discriminator_only_step(
                self._reals(images[substep * b : (substep + 1) * b], step, substep),
                labels[substep * b : (substep + 1) * b],
                step,
                substep,
            )
        last = (self.config.training_ratio - 1) * b
        reals = self._reals(images[last:], step, self.config.training_ratio - 1)
        metrics = self._joint_step(reals, labels[last:], step)
        return {**metrics, SUBSTEP_LOSSES: substep_losses}

    # --- cross-replica ---------------------------------------------------------------------------

    def _update_ema(self) -> None:
        if self.ema_generator is None:
            return
        decay = ema.decay(
            self.step * self.global_batch,
            self.global_batch,
            self.config.ema_kimg,
            self.config.ema_rampup,
        )
        for average, weight in zip(self.ema_generator.weights, self.generator.weights, strict=True):
            if weight.trainable:
                average.assign(decay * average + (1.0 - decay) * weight)
            else:
                average.assign(weight)  # batch-norm statistics follow the live generator

    def make_train_function(self):
        """A tf.function running ``n`` steps from a distributed iterator; returns mean metrics."""

        replica_step = (
            tf.function(self._replica_step, jit_compile=True)
            if self.config.xla
            else self._replica_step
        )

        names = self.metric_names
        replicated = [name for name in names if stats.combine(name) != stats.GLOBAL]

        # A while_loop written out, autograph off: converting the ~30 functions a step calls
        # costs a second of every trace (benchmarks/LOG.md, "The projection as a matrix
        # product; tracing without autograph").
        @tf.function(autograph=False)
        def train_steps(iterator, n: tf.Tensor) -> tuple[dict, tf.Tensor]:
            def step(i: tf.Tensor, totals: tf.Tensor, finite: tf.Tensor):
                images, labels = next(iterator)
                self._schedule_learning_rates()
                p = tf.identity(self.augment_p)
                per_replica = self.strategy.run(replica_step, (images, labels, self.step))
                reduced = {
                    k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica[k], axis=None)
                    for k in replicated
                }
                if self.augmentation.adaptive:
                    reduced[augment.AUGMENT_P] = p
                    self._adapt_p(reduced[augment.REAL_SIGN])
                metrics = tf.stack([reduced[k] for k in names])
                self._update_ema()
                self.step.assign_add(1)
                substeps = self.strategy.reduce(
                    tf.distribute.ReduceOp.SUM, per_replica[SUBSTEP_LOSSES], axis=None
                )
                finite = tf.logical_and(finite, tf.reduce_all(tf.math.is_finite(metrics)))
                finite = tf.logical_and(finite, tf.math.is_finite(substeps))
                return i + 1, totals + metrics, finite

            start = (tf.zeros([], n.dtype), tf.zeros([len(names)]), tf.constant(True))
            _, totals, finite = tf.while_loop(lambda i, *_: i < n, step, start)
            means = totals / tf.cast(n, tf.float32)
            return {k: means[i] for i, k in enumerate(names)}, finite

        return train_steps

    def _adapt_p(self, real_sign: tf.Tensor) -> None:
        """ADA: p toward the --ada_target overfitting statistic; held with --ada_kimg=0."""
        if self.config.ada_kimg > 0:
            self.augment_p.assign(
                augment.adjusted_p(
                    self.augment_p,
                    real_sign,
                    self.config.ada_target,
                    self.global_batch,
                    self.config.ada_kimg,
                )
            )

    def non_finite_weights(self) -> list[str]:
        """Names of the weights (G, D, EMA G) holding a NaN or an infinity: never to be saved."""
        bad = []
        for model in (self.generator, self.discriminator, self.ema_generator):
            for weight in model.weights if model is not None else []:
                values = np.asarray(weight.numpy())
                if values.dtype.kind == "f" and not np.isfinite(values).all():
                    bad.append(f"{model.name}/{weight.path}")
        return bad

    def fingerprint(self) -> str:
        """sha256 over every weight of G, D and EMA G (and the clusters): equal on every worker
        of a sync run."""
        digest = hashlib.sha256()
        networks = (self.generator, self.discriminator, self.ema_generator)
        for weight in [
            *(weight for model in networks if model is not None for weight in model.weights),
            *(self.clusters.variables if self.clusters is not None else ()),
        ]:
            digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
        return digest.hexdigest()

    def generate(self, z: tf.Tensor, labels: tf.Tensor | None = None) -> tf.Tensor:
        """The sampler's images for ``z`` (and ``labels`` when the data's labels condition G; a
        self-conditioned G draws its clusters from z)."""
        if self.clusters is not None:
            z, labels = self.clusters.draw(z)
        inputs = [z, labels] if self.model_spec.conditional else [z]
        return self.sampler(inputs, training=False)

    def sample(self, z: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        return np.asarray(self.generate(z, labels))
