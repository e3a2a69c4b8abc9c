"""Adversarial losses, a registry keyed by ``--loss``.

Each loss maps discriminator logits to per-example losses; the train step averages them over
the global batch (so N replicas compute the same update as one device). All formulas take raw
logits: sigmoid cross-entropy is computed with ``softplus`` for numerical stability. The
generator's loss sees the real logits too (constants to it): the relativistic loss pairs them.
Gradient penalties are not losses: ``penalties.py``, weighted by their own flags.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import tensorflow as tf

Tensor = tf.Tensor


@dataclasses.dataclass(frozen=True)
class GanLoss:
    discriminator: Callable[[Tensor, Tensor, float], Tensor]  # (real, fake, smoothing) → [B]
    generator: Callable[[Tensor, Tensor], Tensor]  # (real, fake) → [B]
    gp_weight: float = 0.0  # the WGAN-GP penalty's weight when --gp_weight is not given
    probabilistic: bool = True  # logits are log-odds: report D(x) as sigmoid(logit)
    supports_label_smoothing: bool = False
    # Logits with a meaningful zero (D(x) > 0: "real"); relativistic and Wasserstein critics are
    # defined up to a shift, so only differences of their logits say anything.
    anchored: bool = True
    description: str = ""

    def real_sign(self, real: Tensor, fake: Tensor) -> Tensor:
        """Per pair, +1 where D calls the real image real, -1 where not: the overfitting
        statistic ADA steers p by, sign(D(x)), or sign(D(x) - D(G(z))) for unanchored logits."""
        return tf.sign(real if self.anchored else real - tf.stop_gradient(fake))


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
        generator=lambda real, fake: tf.nn.softplus(-fake),  # -log D(G(z))
        supports_label_smoothing=True,
        description="BCE from logits; G maximizes log D(G(z)) (Goodfellow et al. 2014, §3)",
    ),
    "minimax": GanLoss(
        discriminator=_bce_discriminator,
        generator=lambda real, fake: -tf.nn.softplus(fake),  # log(1 - D(G(z)))
        supports_label_smoothing=True,
        description="the original saturating minimax game: G minimizes log(1 - D(G(z)))",
    ),
    "wasserstein_gp": GanLoss(
        discriminator=_unused_smoothing(lambda real, fake: fake - real),
        generator=lambda real, fake: -fake,
        gp_weight=10.0,
        probabilistic=False,
        anchored=False,
        description="WGAN critic with gradient penalty λ=10 (Gulrajani et al. 2017)",
    ),
    "hinge": GanLoss(
        discriminator=_unused_smoothing(
            lambda real, fake: tf.nn.relu(1.0 - real) + tf.nn.relu(1.0 + fake)
        ),
        generator=lambda real, fake: -fake,
        probabilistic=False,
        description="hinge loss (Lim & Ye 2017; SN-GAN, BigGAN)",
    ),
    "least_squares": GanLoss(
        discriminator=_unused_smoothing(
            lambda real, fake: 0.5 * (tf.square(real - 1.0) + tf.square(fake))
        ),
        generator=lambda real, fake: 0.5 * tf.square(fake - 1.0),
        probabilistic=False,
        description="least-squares GAN with 0/1 targets (Mao et al. 2017)",
    ),
    "relativistic": GanLoss(
        discriminator=_unused_smoothing(lambda real, fake: tf.nn.softplus(fake - real)),
        generator=lambda real, fake: tf.nn.softplus(real - fake),
        probabilistic=False,
        anchored=False,
        description=(
            "relativistic pairing loss RpGAN, softplus(D(fake) - D(real)) per pair (Jolicoeur-"
            "Martineau 2019; with R1 + R2, R3GAN: Huang et al. 2024)"
        ),
    ),
}
