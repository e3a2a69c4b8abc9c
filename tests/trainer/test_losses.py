"""Losses and gradient penalties against values computed by hand on small inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from trainer import losses, penalties


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


REAL, FAKE = 2.0, -1.0  # one real and one fake logit
# (loss, smoothing, discriminator loss, generator loss), each written out from its formula.
CASES = [
    ("non_saturating", 0.0, softplus(-2) + softplus(-1), softplus(1)),
    ("non_saturating", 0.1, 0.9 * softplus(-2) + 0.1 * softplus(2) + softplus(-1), softplus(1)),
    ("minimax", 0.0, softplus(-2) + softplus(-1), -softplus(-1)),
    ("wasserstein_gp", 0.0, -1.0 - 2.0, 1.0),
    ("hinge", 0.0, max(0, 1 - 2) + max(0, 1 - 1), 1.0),
    ("least_squares", 0.0, 0.5 * ((2 - 1) ** 2 + (-1) ** 2), 0.5 * (-1 - 1) ** 2),
    ("relativistic", 0.0, softplus(-1 - 2), softplus(2 + 1)),
]


@pytest.mark.parametrize("name, smoothing, d_expected, g_expected", CASES)
def test_losses_equal_their_formulas(name, smoothing, d_expected, g_expected):
    loss = losses.LOSSES[name]
    real, fake = tf.constant([REAL]), tf.constant([FAKE])
    assert float(loss.discriminator(real, fake, smoothing)[0]) == pytest.approx(d_expected, 1e-6)
    assert float(loss.generator(real, fake)[0]) == pytest.approx(g_expected, 1e-6)


def test_every_registered_loss_has_a_hand_computed_case():
    assert {case[0] for case in CASES} == set(losses.LOSSES)


def test_the_relativistic_loss_depends_only_on_the_difference_of_each_pair():
    loss = losses.LOSSES["relativistic"]
    real, fake = tf.constant([0.0, 5.0, -3.0]), tf.constant([0.0, 5.0, -3.0])
    np.testing.assert_allclose(loss.discriminator(real, fake, 0.0), [math.log(2)] * 3, rtol=1e-6)
    shifted = loss.discriminator(real + 7.0, fake + 7.0, 0.0)
    np.testing.assert_allclose(shifted, loss.discriminator(real, fake, 0.0), rtol=1e-6)
    # Pairs are by position: swapping two fakes changes the per-example losses.
    swapped = loss.discriminator(tf.constant([1.0, 4.0]), tf.constant([4.0, 1.0]), 0.0)
    np.testing.assert_allclose(swapped, [softplus(3), softplus(-3)], rtol=1e-6)


# Two critics whose input gradients are known in closed form, on 2×2×1 images.
def linear(x: tf.Tensor) -> tf.Tensor:  # D(x) = Σ 0.5·x  →  ∇D = 0.5 everywhere, ‖∇D‖² = 1
    return tf.reduce_sum(0.5 * x, axis=[1, 2, 3])


def quadratic(x: tf.Tensor) -> tf.Tensor:  # D(x) = Σ x²  →  ∇D = 2x, ‖∇D‖² = 4 Σ x²
    return tf.reduce_sum(tf.square(x), axis=[1, 2, 3])


IMAGES = tf.constant([[[1.0], [2.0]], [[0.0], [-1.0]]])[None]  # Σ x² = 6


def test_zero_centred_penalty_is_half_the_squared_input_gradient_norm():
    assert float(penalties.zero_centred(linear, IMAGES)[0]) == pytest.approx(0.5 * 1.0)
    assert float(penalties.zero_centred(quadratic, IMAGES)[0]) == pytest.approx(0.5 * 4 * 6)
    batch = tf.concat([IMAGES, tf.zeros_like(IMAGES)], axis=0)  # per example, not pooled
    np.testing.assert_allclose(penalties.zero_centred(quadratic, batch), [12.0, 0.0])


def test_wasserstein_gp_penalizes_the_distance_of_the_gradient_norm_from_one():
    real, fake = tf.zeros([1, 2, 2, 1]), tf.constant([[[1.0], [0.0]], [[0.0], [0.0]]])[None]
    alpha = tf.constant([[[[0.25]]]])
    # x̂ = (0.25, 0, 0, 0): ‖∇D(x̂)‖ = ‖2x̂‖ = 0.5, penalty (0.5 - 1)² = 0.25
    assert float(penalties.wasserstein_gp(quadratic, real, fake, alpha)[0]) == pytest.approx(0.25)
    # A 1-Lipschitz critic (‖∇D‖ = 1 everywhere) costs nothing.
    assert float(penalties.wasserstein_gp(linear, real, fake, alpha)[0]) == pytest.approx(
        0, abs=1e-5
    )


def test_a_penalty_can_be_differentiated_with_respect_to_the_critic():
    # D_w(x) = w·Σx² → R1 = ½·(2w)²·Σx² = 2w²·Σx²; d/dw = 4w·Σx² = 4·3·6 = 72 at w = 3.
    w = tf.Variable(3.0)
    with tf.GradientTape() as tape:
        value = penalties.zero_centred(lambda x: w * quadratic(x), IMAGES)[0]
    assert float(value) == pytest.approx(2 * 9 * 6)
    assert float(tape.gradient(value, w)) == pytest.approx(72.0)
