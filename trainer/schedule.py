"""The learning rates over a run: constant, then a linear fall to zero at the last step.

A GAN trained at a constant learning rate ends where its last few hundred updates left it: G and
D still chase each other, and the samples' quality moves between neighbouring checkpoints.
Annealing both learning rates to zero over the last part of the run lets the pair settle;
CycleGAN and pix2pix decay linearly over the second half of training, R3GAN anneals its learning
rate with a cosine. Linear over the second half was measured best here: benchmarks/LOG.md,
"Learning-rate decay, adopted for the pipeline preset".
"""

from __future__ import annotations

import tensorflow as tf

from trainer import stats

# The learning rates' factor on the last step of a report, when they decay.
LR_SCALE = stats.declare("lr_scale", "lr", "×{:.2f}", stats.GLOBAL)


def decays(train_steps: int, decay_start: float) -> bool:
    """Whether the rates fall at all: ``decay_start`` below 1, over at least one step."""
    return decay_start < 1.0 and train_steps - decay_start * train_steps >= 1.0


def learning_rate_scale(step: tf.Tensor | int, train_steps: int, decay_start: float) -> tf.Tensor:
    """The factor on both learning rates for 0-based ``step`` of ``train_steps``.

    1 until ``decay_start · train_steps``, then ``(train_steps - step) / (train_steps - start)``:
    linearly down to ``1 / (train_steps - start)`` on the last step, zero after it (a run
    extended past its planned steps trains no further). ``decay_start`` ≥ 1: always 1.
    """
    if not decays(train_steps, decay_start):
        return tf.constant(1.0, tf.float32)
    start = decay_start * train_steps
    remaining = float(train_steps) - tf.cast(step, tf.float32)
    return tf.clip_by_value(remaining / (float(train_steps) - start), 0.0, 1.0)
