"""Gradient penalties on the discriminator, a choice of their own beside the loss.

Each function returns a per-example value ``[B]``; the train step weights it (``--r1_gamma``,
``--r2_gamma``, ``--gp_weight``), adds it to the discriminator's per-example loss and averages
over the global batch like the loss itself. With ``--penalty_every=k`` (StyleGAN2's lazy
regularization) the penalties are computed on every k-th step only, scaled by k, so their
expected gradient is unchanged at 1/k of the cost.

``critic`` maps images to one logit per image (labels, when conditional, are bound in already).
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from trainer import stats

Tensor = tf.Tensor
Critic = Callable[[Tensor], Tensor]
# The weighted penalties a step adds to D's loss, per example (0 on the steps lazy ones skip).
PENALTY = stats.declare("grad_penalty", "penalty", "{:.3g}", panel="losses")


def input_gradients(critic: Critic, images: Tensor) -> Tensor:
    """``∇ₓ D(x)`` for each image, kept on the tape so a penalty on it can be differentiated."""
    with tf.GradientTape() as tape:
        tape.watch(images)
        scores = critic(images)
    return tape.gradient(scores, images)


def squared_norms(gradients: Tensor) -> Tensor:
    """``‖g‖₂²`` per example, summed over every axis but the batch's, in float32."""
    g = tf.cast(gradients, tf.float32)
    return tf.reduce_sum(tf.square(g), axis=tf.range(1, tf.rank(g)))


def zero_centred(critic: Critic, images: Tensor) -> Tensor:
    """``½ ‖∇ₓ D(x)‖₂²`` per example at the given images.

    On real images this is R1, on generated ones R2 (Mescheder, Geiger & Nowozin 2018, "Which
    Training Methods for GANs do actually Converge?", eq. 9–10, penalty ``γ/2 · E‖∇D‖²``; both
    together are R3GAN's regularizer, Huang et al. 2024). The ½ is the papers' own, so
    ``--r1_gamma`` means the γ they report.
    """
    return 0.5 * squared_norms(input_gradients(critic, images))


def wasserstein_gp(critic: Critic, real: Tensor, fake: Tensor, alpha: Tensor) -> Tensor:
    """``(‖∇D(x̂)‖₂ - 1)²`` per example at ``x̂ = real + α (fake - real)``, ``α ~ U[0, 1]``.

    The WGAN-GP penalty (Gulrajani et al. 2017, "Improved Training of Wasserstein GANs", Alg. 1),
    weight λ = 10 there.
    """
    mixed = real + tf.cast(alpha, real.dtype) * (tf.cast(fake, real.dtype) - real)
    norms = tf.sqrt(squared_norms(input_gradients(critic, mixed)) + 1e-12)
    return tf.square(norms - 1.0)
