"""Adversarial losses, a registry keyed by ``--loss``.

Each loss maps discriminator logits to per-example losses; the train step averages them over
the global batch (so N replicas compute the same update as one device). All formulas take raw
logits: sigmoid cross-entropy is computed with ``softplus`` for numerical stability.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import tensorflow as tf

Tensor = tf.Tensor


@dataclasses.dataclass(frozen=True)
class GanLoss:
    discriminator: Callable[[Tensor, Tensor, float], Tensor]  # (real, fake, smoothing) → [B]
    generator: Callable[[Tensor], Tensor]  # fake logits → [B]
    gradient_penalty: float = 0.0  # weight of the WGAN-GP penalty on the critic
    probabilistic: bool = True  # logits are log-odds: report D(x) as sigmoid(logit)
    supports_label_smoothing: bool = False
    description: str = ""


def _bce_discriminator(real: Tensor, fake: Tensor, smoothing: float) -> Tensor:
    # Cross-entropy with target (1 - smoothing) for real (one-sided label smoothing), 0 for fake.
    target = 1.0 - smoothing
    real_loss = target * tf.nn.softplus(-real) + (1.0 - target) * tf.nn.softplus(real)
    return real_loss + tf.nn.softplus(fake)


def _unused_smoothing(fn: Callable[[Tensor, Tensor], Tensor]) -> Callable:
    return lambda real, fake, smoothing: fn(real, fake)


LOSSES: dict[str, GanLoss] = {
    "non_saturating": GanLoss(
        discriminator=_bce_discriminator,
        generator=lambda fake: tf.nn.softplus(-fake),  # -log D(G(z))
        supports_label_smoothing=True,
        description="BCE from logits; G maximizes log D(G(z)) (Goodfellow et al. 2014, §3)",
    ),
    "minimax": GanLoss(
        discriminator=_bce_discriminator,
        generator=lambda fake: -tf.nn.softplus(fake),  # log(1 - D(G(z)))
        supports_label_smoothing=True,
        description="the original saturating minimax game: G minimizes log(1 - D(G(z)))",
    ),
    "wasserstein_gp": GanLoss(
        discriminator=_unused_smoothing(lambda real, fake: fake - real),
        generator=lambda fake: -fake,
        gradient_penalty=10.0,
        probabilistic=False,
        description="WGAN critic with gradient penalty λ=10 (Gulrajani et al. 2017)",
    ),
    "hinge": GanLoss(
        discriminator=_unused_smoothing(
            lambda real, fake: tf.nn.relu(1.0 - real) + tf.nn.relu(1.0 + fake)
        ),
        generator=lambda fake: -fake,
        probabilistic=False,
        description="hinge loss (Lim & Ye 2017; SN-GAN, BigGAN)",
    ),
    "least_squares": GanLoss(
        discriminator=_unused_smoothing(
            lambda real, fake: 0.5 * (tf.square(real - 1.0) + tf.square(fake))
        ),
        generator=lambda fake: 0.5 * tf.square(fake - 1.0),
        probabilistic=False,
        description="least-squares GAN with 0/1 targets (Mao et al. 2017)",
    ),
}


def gradient_penalty(
    critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, alpha: Tensor
) -> Tensor:
    """Per-example ``(‖∇D(x̂)‖₂ - 1)²`` at ``x̂ = real + α (fake - real)``."""
    mixed = real + alpha * (fake - real)
    with tf.GradientTape() as tape:
        tape.watch(mixed)
        scores = critic(mixed)
    grads = tape.gradient(scores, mixed)
    norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + 1e-12)
    return tf.square(norms - 1.0)
