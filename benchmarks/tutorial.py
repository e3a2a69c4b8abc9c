"""A faithful copy of the TensorFlow DCGAN tutorial (the seeds' text 002), the baseline we race.

Same models, same losses (BCE from logits), Adam(1e-4) for both, the same ``@tf.function``
``train_step`` with two GradientTapes, and the same tf.data pipeline
(``from_tensor_slices → shuffle(60000) → batch``). Only the batch size is a parameter.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.keras import layers

NOISE_DIM = 100


def build_generator() -> tf.keras.Model:
    return tf.keras.Sequential(
        [
            layers.Input((NOISE_DIM,)),
            layers.Dense(7 * 7 * 256, use_bias=False),
            layers.BatchNormalization(),
            layers.LeakyReLU(),
            layers.Reshape((7, 7, 256)),
            layers.Conv2DTranspose(128, (5, 5), strides=(1, 1), padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.LeakyReLU(),
            layers.Conv2DTranspose(64, (5, 5), strides=(2, 2), padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.LeakyReLU(),
            layers.Conv2DTranspose(
                1, (5, 5), strides=(2, 2), padding="same", use_bias=False, activation="tanh"
            ),
        ]
    )


def build_discriminator() -> tf.keras.Model:
    return tf.keras.Sequential(
        [
            layers.Input((28, 28, 1)),
            layers.Conv2D(64, (5, 5), strides=(2, 2), padding="same"),
            layers.LeakyReLU(),
            layers.Dropout(0.3),
            layers.Conv2D(128, (5, 5), strides=(2, 2), padding="same"),
            layers.LeakyReLU(),
            layers.Dropout(0.3),
            layers.Flatten(),
            layers.Dense(1),
        ]
    )


class Tutorial:
    def __init__(self, images_uint8: np.ndarray, batch_size: int = 256):
        x = images_uint8.reshape(-1, 28, 28, 1).astype("float32")
        x = (x - 127.5) / 127.5  # Normalize to [-1, 1]
        self.batch_size = batch_size
        self.dataset = tf.data.Dataset.from_tensor_slices(x).shuffle(60000).batch(batch_size)
        self.generator = build_generator()
        self.discriminator = build_discriminator()
        self.generator_optimizer = tf.keras.optimizers.Adam(1e-4)
        self.discriminator_optimizer = tf.keras.optimizers.Adam(1e-4)
        cross_entropy = tf.keras.losses.BinaryCrossentropy(from_logits=True)

        def discriminator_loss(real_output, fake_output):
            real_loss = cross_entropy(tf.ones_like(real_output), real_output)
            fake_loss = cross_entropy(tf.zeros_like(fake_output), fake_output)
            return real_loss + fake_loss

        def generator_loss(fake_output):
            return cross_entropy(tf.ones_like(fake_output), fake_output)

        generator, discriminator = self.generator, self.discriminator

        @tf.function
        def train_step(images):
            noise = tf.random.normal([batch_size, NOISE_DIM])
            with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
                generated = generator(noise, training=True)
                real_output = discriminator(images, training=True)
                fake_output = discriminator(generated, training=True)
                gen_loss = generator_loss(fake_output)
                disc_loss = discriminator_loss(real_output, fake_output)
            gradients_of_gen = gen_tape.gradient(gen_loss, generator.trainable_variables)
            gradients_of_disc = disc_tape.gradient(disc_loss, discriminator.trainable_variables)
            self.generator_optimizer.apply_gradients(
                zip(gradients_of_gen, generator.trainable_variables)  # noqa: B905 - verbatim
            )
            self.discriminator_optimizer.apply_gradients(
                zip(gradients_of_disc, discriminator.trainable_variables)  # noqa: B905 - verbatim
            )

        self.train_step = train_step

    def batches(self):
        while True:
            for image_batch in self.dataset:
                if image_batch.shape[0] == self.batch_size:  # its last partial batch would retrace
                    yield image_batch

    def generate(self, z: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        return np.asarray(self.generator(z, training=False))
