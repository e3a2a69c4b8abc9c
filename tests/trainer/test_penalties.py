"""Gradient penalties inside the train step: what each one touches, and when it applies."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tests.trainer.test_training import tiny_config
from trainer import data, penalties
from trainer.gan import Gan


def make_gan(data_dir: str, job_dir: str, like: Gan | None = None, **options) -> Gan:
    """A tiny Gan; ``like``: with that one's discriminator weights, to compare penalties."""
    # Dropout off: two evaluations of D on the same images must agree.
    config = tiny_config(data_dir, job_dir, d_dropout=0.0, **options)
    spec = data.read_manifest(data_dir).spec
    gan = Gan(config, spec, tf.distribute.get_strategy())
    if like is not None:
        for mine, theirs in zip(gan.discriminator.weights, like.discriminator.weights, strict=True):
            mine.assign(theirs)
    return gan


def batches(seed: int) -> tf.Tensor:
    return tf.random.stateless_uniform((4, 28, 28, 1), (seed, 0), -1.0, 1.0)


def penalty_and_gradients(gan: Gan, real, fake, step: int = 0):
    value, grads = penalty_and_gradients_graph(gan, real, fake, tf.constant(step, tf.int64))
    return value.numpy(), [g.numpy() for g in grads]


def weight_gradients(gan: Gan, tape: tf.GradientTape, total: tf.Tensor) -> list[tf.Tensor]:
    # A penalty on ∇ₓD does not depend on the logit's bias: its gradient is zero, not None.
    variables = gan.discriminator.trainable_variables
    grads = tape.gradient(total, variables)
    return [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables, strict=True)]


def assert_same(a, b, same: bool) -> None:
    close = all(np.allclose(x, y, rtol=1e-5, atol=1e-7) for x, y in zip(a[1], b[1], strict=True))
    assert np.allclose(a[0], b[0], rtol=1e-5) == same and close == same


@pytest.mark.parametrize("penalty, touches", [("r1_gamma", "real"), ("r2_gamma", "fake")])
def test_r1_touches_only_real_images_and_r2_only_generated_ones(
    penalty, touches, tiny_data_dir, tmp_path
):
    gan = make_gan(tiny_data_dir, str(tmp_path), **{penalty: 2.0})
    real, fake, other = batches(1), batches(2), batches(3)
    base = penalty_and_gradients(gan, real, fake)
    assert_same(base, penalty_and_gradients(gan, other, fake), same=touches == "fake")
    assert_same(base, penalty_and_gradients(gan, real, other), same=touches == "real")

    def critic(x):
        return gan.discriminator(x, training=True)

    # Its value is γ · ½‖∇D‖² at the images it touches, per example.
    at = real if touches == "real" else fake
    np.testing.assert_allclose(base[0], 2.0 * penalties.zero_centred(critic, at), rtol=1e-5)
    assert all(np.abs(g).max() > 0 for g in base[1][:1])  # it moves D's weights


def test_penalties_add_up_with_their_weights(tiny_data_dir, tmp_path):
    real, fake = batches(1), batches(2)
    first = make_gan(tiny_data_dir, str(tmp_path), r1_gamma=1.0)
    r1 = penalty_and_gradients(first, real, fake)
    r2 = penalty_and_gradients(
        make_gan(tiny_data_dir, str(tmp_path), first, r2_gamma=1.0), real, fake
    )
    both = make_gan(tiny_data_dir, str(tmp_path), first, r1_gamma=3.0, r2_gamma=0.5)
    np.testing.assert_allclose(
        penalty_and_gradients(both, real, fake)[0], 3.0 * r1[0] + 0.5 * r2[0], rtol=1e-5
    )
    gp = make_gan(tiny_data_dir, str(tmp_path), loss="wasserstein_gp")
    assert gp.config.penalty_weights == {"gp": 10.0}
    off = make_gan(tiny_data_dir, str(tmp_path), loss="wasserstein_gp", gp_weight=0.0)
    assert off.config.penalty_weights == {}
    np.testing.assert_array_equal(penalty_and_gradients(off, real, fake)[0], np.zeros(4))


def test_lazy_penalties_apply_every_kth_step_scaled_by_k(tiny_data_dir, tmp_path):
    eager = make_gan(tiny_data_dir, str(tmp_path), r1_gamma=1.0, r2_gamma=1.0)
    lazy = make_gan(
        tiny_data_dir, str(tmp_path), eager, r1_gamma=1.0, r2_gamma=1.0, penalty_every=3
    )
    real, fake = batches(1), batches(2)
    reference = penalty_and_gradients(eager, real, fake)
    # In a tf.function, as the train step runs it: the skipped branch is a graph cond.
    compiled = tf.function(lambda step: penalty_and_gradients_graph(lazy, real, fake, step))
    for step in range(7):
        value, grads = compiled(tf.constant(step, tf.int64))
        scale = 3.0 if step % 3 == 0 else 0.0
        np.testing.assert_allclose(value, scale * reference[0], rtol=1e-5, err_msg=str(step))
        for g, expected in zip(grads, reference[1], strict=True):
            np.testing.assert_allclose(g, scale * expected, rtol=1e-4, atol=1e-6)


def penalty_and_gradients_graph(gan: Gan, real, fake, step):
    labels = tf.zeros([4], tf.int32)
    critics = [gan._critic(labels, step, 0, kind) for kind in ("real", "fake")]
    with tf.GradientTape() as tape:
        value = gan._penalties(real, fake, *critics, step, 0)
        total = tf.reduce_sum(value)
    return value, weight_gradients(gan, tape, total)
