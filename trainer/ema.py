"""The exponential moving average of the generator's weights, measured in images, not steps.

A per-step decay means a different average at every batch size: 0.999 a step is a half-life of
693 steps, 22 kimg at batch 32 and 89 kimg at batch 128. StyleGAN2-ADA states the half-life in
images instead (``ema_kimg``) and ramps it up with training (``ema_rampup``): after n images the
half-life is ``min(ema_kimg · 1000, ema_rampup · n)``, so the first steps' samples are not stuck
near the random initialization, and a long run averages over a long stretch of it.
"""

from __future__ import annotations

import tensorflow as tf


def decay(
    images_seen: tf.Tensor | float, batch_size: int, half_life_kimg: float, rampup: float
) -> tf.Tensor:
    """The EMA's decay for one step of ``batch_size`` images after ``images_seen``.

    ``β = 0.5 ** (batch / h)`` with ``h = min(1000 · half_life_kimg, rampup · images_seen)``
    (``rampup`` 0: no ramp-up), so ``h`` images after the last update a weight counts half as
    much as one just made, whatever the batch (Karras et al. 2020, StyleGAN2-ADA). At
    ``images_seen`` 0 with a ramp-up, β is 0: the average starts as the generator itself.
    """
    half_life = tf.constant(1000.0 * half_life_kimg, tf.float32)
    if rampup > 0:
        half_life = tf.minimum(half_life, rampup * tf.cast(images_seen, tf.float32))
    return tf.pow(0.5, batch_size / tf.maximum(half_life, 1e-8))
