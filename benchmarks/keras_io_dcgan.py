"""The keras-io DCGAN for 64×64 CelebA faces ("DCGAN to generate face images", fchollet), the
peer a user with a folder of RGB images would try first: its networks, its ``train_step`` (D on
real and fake images concatenated, labels with 0.05 uniform noise; then G against "all real"
labels on fresh z), BCE on sigmoid outputs, Adam(1e-4) for both, batch 32, trained by ``fit``.
Only the data differs: images already in memory in [0, 1], as its ``x / 255`` map makes them.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

LATENT_DIM = 128
BATCH_SIZE = 32


def build_discriminator(shape: tuple[int, int, int]) -> keras.Model:
    return keras.Sequential(
        [
            keras.Input(shape=shape),
            layers.Conv2D(64, kernel_size=4, strides=2, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2D(128, kernel_size=4, strides=2, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2D(128, kernel_size=4, strides=2, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Flatten(),
            layers.Dropout(0.2),
            layers.Dense(1, activation="sigmoid"),
        ],
        name="discriminator",
    )


def build_generator(channels: int) -> keras.Model:
    return keras.Sequential(
        [
            keras.Input(shape=(LATENT_DIM,)),
            layers.Dense(8 * 8 * 128),
            layers.Reshape((8, 8, 128)),
            layers.Conv2DTranspose(128, kernel_size=4, strides=2, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2DTranspose(256, kernel_size=4, strides=2, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2DTranspose(512, kernel_size=4, strides=2, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2D(channels, kernel_size=5, padding="same", activation="sigmoid"),
        ],
        name="generator",
    )


class GAN(keras.Model):
    def __init__(self, discriminator: keras.Model, generator: keras.Model):
        super().__init__()
        self.discriminator = discriminator
        self.generator = generator
        self.seed_generator = keras.random.SeedGenerator(1337)

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn

    def train_step(self, real_images):
        batch_size = ops.shape(real_images)[0]
        z = keras.random.normal((batch_size, LATENT_DIM), seed=self.seed_generator)
        combined = ops.concatenate([self.generator(z), real_images], axis=0)
        labels = ops.concatenate([ops.ones((batch_size, 1)), ops.zeros((batch_size, 1))], axis=0)
        labels += 0.05 * tf.random.uniform(tf.shape(labels))
        with tf.GradientTape() as tape:
            d_loss = self.loss_fn(labels, self.discriminator(combined))
        weights = self.discriminator.trainable_weights
        self.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, weights), weights, strict=True))

        z = keras.random.normal((batch_size, LATENT_DIM), seed=self.seed_generator)
        misleading_labels = ops.zeros((batch_size, 1))
        with tf.GradientTape() as tape:
            g_loss = self.loss_fn(misleading_labels, self.discriminator(self.generator(z)))
        weights = self.generator.trainable_weights
        self.g_optimizer.apply_gradients(zip(tape.gradient(g_loss, weights), weights, strict=True))
        return {"d_loss": d_loss, "g_loss": g_loss}


def make_gan(shape: tuple[int, int, int]) -> GAN:
    gan = GAN(build_discriminator(shape), build_generator(shape[-1]))
    gan.compile(
        d_optimizer=keras.optimizers.Adam(learning_rate=0.0001),
        g_optimizer=keras.optimizers.Adam(learning_rate=0.0001),
        loss_fn=keras.losses.BinaryCrossentropy(),
    )
    return gan


def dataset(images: np.ndarray, seed: int = 0) -> tf.data.Dataset:
    """``images`` in [-1, 1] → the example's [0, 1] batches, shuffled once, repeated."""
    order = np.random.default_rng(seed).permutation(len(images))
    unit = (images[order].astype(np.float32) + 1.0) / 2.0
    return tf.data.Dataset.from_tensor_slices(unit).repeat().batch(BATCH_SIZE, drop_remainder=True)
