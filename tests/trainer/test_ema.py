"""The generator's EMA: a half-life in images, ramped up with the images seen."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tests.trainer.test_training import one_step, tiny_config
from trainer import data, ema, settings
from trainer.gan import Gan


def test_decay_against_hand_computed_values():
    # 10 kimg at batch 32: 0.5 ** (32 / 10,000) = exp(-0.0032 · ln 2) = 0.9977844
    assert float(ema.decay(1e9, 32, 10.0, 0.0)) == pytest.approx(0.9977844, abs=1e-7)
    # Ramp-up: 6,400 images seen × 0.05 = a half-life of 320 images; 0.5 ** 0.1 = 0.9330330
    assert float(ema.decay(6400, 32, 10.0, 0.05)) == pytest.approx(0.9330330, abs=1e-7)
    # The cap wins once rampup × images passes it: 0.05 × 1e6 = 50 kimg > 10 kimg
    assert float(ema.decay(1e6, 32, 10.0, 0.05)) == pytest.approx(0.9977844, abs=1e-7)
    assert float(ema.decay(0, 32, 10.0, 0.05)) == 0.0  # starts as the generator itself


@pytest.mark.parametrize("batch", [16, 32, 128])
def test_the_half_life_is_in_images_whatever_the_batch(batch):
    """After 10,000 images' worth of steps an update weighs half of what it did."""
    beta = float(ema.decay(1e9, batch, 10.0, 0.0))
    assert beta ** (10_000 / batch) == pytest.approx(0.5, rel=1e-4)


def test_the_default_ramp_up_is_the_step_warm_up_it_replaced():
    """tf.train.ExponentialMovingAverage's warm-up, 1 - β = 9 / (10 + s) at step s (to 0.999)."""
    config = settings.TrainConfig()
    for step in (1000, 4000, 8000):
        beta = float(ema.decay(step * 64, 64, config.ema_kimg, config.ema_rampup))
        assert 1 - beta == pytest.approx(9 / (10 + step), rel=0.02), step


def _one_step(data_dir: str, job_dir: str, **overrides) -> tuple[Gan, list[np.ndarray]]:
    """A Gan after one train step, and its generator's weights before it."""
    config = dataclasses.replace(tiny_config(data_dir, job_dir), **overrides)
    gan = Gan(config, data.read_manifest(data_dir).spec, tf.distribute.get_strategy())
    initial = _weights(gan.generator)
    batch = np.random.default_rng(0).uniform(-1, 1, (16, 28, 28, 1)).astype(np.float32)
    one_step(gan, gan.make_train_function(), batch, np.zeros(16, np.int32))
    return gan, initial


def _largest_difference(model: tf.keras.Model, weights: list[np.ndarray]) -> float:
    return max(
        float(np.abs(x.numpy() - y).max())
        for x, y in zip(model.trainable_weights, weights, strict=True)
    )


def _weights(model: tf.keras.Model) -> list[np.ndarray]:
    return [w.numpy() for w in model.trainable_weights]


def test_the_train_step_feeds_the_images_seen(tiny_data_dir, tmp_path):
    """With a ramp-up the first update copies G (0 images seen); without one, a long half-life
    leaves the average at G's initial weights."""
    ramped, _ = _one_step(tiny_data_dir, str(tmp_path / "a"))
    assert _largest_difference(ramped.ema_generator, _weights(ramped.generator)) == 0.0
    flat, initial = _one_step(tiny_data_dir, str(tmp_path / "b"), ema_rampup=0.0, ema_kimg=1e6)
    assert _largest_difference(flat.ema_generator, _weights(flat.generator)) > 1e-4
    assert _largest_difference(flat.ema_generator, initial) < 1e-6
