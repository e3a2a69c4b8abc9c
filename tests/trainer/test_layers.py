"""The architectures' own layers compute the textbook functions they replace."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainer import layers as gan_layers
from trainer import models


@pytest.mark.parametrize("rate", [0.3, 0.5])
def test_dropout_drops_at_its_rate_and_keeps_the_mean(rate):
    layer = gan_layers.Dropout(rate, seed=7)
    x = tf.ones([64, 14, 14, 33])  # odd element count: the last uint32 word is split
    y = layer(x, training=True).numpy()
    dropped = np.mean(y == 0)
    # 413,952 Bernoulli draws: 5 standard deviations are < 0.004.
    assert abs(dropped - rate) < 0.004
    assert abs(y.mean() - 1.0) < 0.01
    values = np.unique(y)
    assert len(values) == 2 and values[0] == 0.0
    assert values[1] == pytest.approx(1 / (1 - rate), rel=1e-2)


def test_dropout_masks_are_independent_per_call_and_reproducible_per_seed():
    x = tf.ones([8, 100])
    first, second = gan_layers.Dropout(0.3, seed=1), gan_layers.Dropout(0.3, seed=1)
    a1, a2 = first(x, training=True), first(x, training=True)
    b1 = second(x, training=True)
    assert not np.array_equal(a1, a2)
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(first(x, training=False), x)


def test_dropout_passes_gradients_only_through_kept_units():
    layer = gan_layers.Dropout(0.5, seed=3)
    x = tf.random.normal([4, 50])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(y)
    grad = tape.gradient(loss, x).numpy()
    kept = y.numpy() != 0
    np.testing.assert_allclose(grad[kept], 2.0)
    np.testing.assert_array_equal(grad[~kept], 0.0)


def test_conditional_batch_norm_scales_and_shifts_per_class():
    layer = gan_layers.ConditionalBatchNorm(num_classes=3)
    features = tf.random.normal([6, 4, 4, 2], mean=5.0, stddev=3.0)
    labels = tf.constant([0, 1, 2, 0, 1, 2])
    layer([features, labels], training=True)
    layer.gamma.assign([[1.0, 1.0], [2.0, 3.0], [0.0, 0.0]])
    layer.beta.assign([[0.0, 0.0], [1.0, -1.0], [7.0, 7.0]])
    out = layer([features, labels], training=True).numpy()
    mean = features.numpy().mean(axis=(0, 1, 2))
    std = np.sqrt(features.numpy().var(axis=(0, 1, 2)) + 1e-3)
    normalized = (features.numpy() - mean) / std
    np.testing.assert_allclose(out[0], normalized[0], atol=1e-4)
    np.testing.assert_allclose(out[1], normalized[1] * [2.0, 3.0] + [1.0, -1.0], atol=1e-4)
    np.testing.assert_allclose(out[2], 7.0, atol=1e-5)


def randomize_label_tables(*networks) -> None:
    """Per-class tables that differ by class (they start equal), seeded, and mild: N(0, 1) scales
    and offsets saturated the upsample generator's tanh until z moved its output by < 1e-3."""
    keras.utils.set_random_seed(0)
    for weight in [w for network in networks for w in network.trainable_weights]:
        if "gamma" in weight.path:
            weight.assign(1.0 + 0.3 * tf.random.normal(weight.shape))
        elif "beta" in weight.path or "embedding" in weight.path:
            weight.assign(0.3 * tf.random.normal(weight.shape))


def test_conditional_batch_norm_averages_the_rows_of_a_labels_groups():
    # Labels of two groups ([B, 2], clusters per channel): γ and β are their rows' means.
    layer = gan_layers.ConditionalBatchNorm(num_classes=4)
    features = tf.random.normal([2, 3, 3, 2], mean=5.0, stddev=3.0)
    labels = tf.constant([[0, 2], [1, 3]])
    layer([features, labels], training=True)
    layer.gamma.assign([[1.0, 1.0], [2.0, 4.0], [3.0, 3.0], [0.0, 2.0]])
    layer.beta.assign([[0.0, 0.0], [1.0, -1.0], [2.0, 2.0], [3.0, 5.0]])
    out = layer([features, labels], training=True).numpy()
    mean = features.numpy().mean(axis=(0, 1, 2))
    std = np.sqrt(features.numpy().var(axis=(0, 1, 2)) + 1e-3)
    normalized = (features.numpy() - mean) / std
    np.testing.assert_allclose(out[0], normalized[0] * [2.0, 2.0] + [1.0, 1.0], atol=1e-4)
    np.testing.assert_allclose(out[1], normalized[1] * [1.0, 3.0] + [2.0, 2.0], atol=1e-4)


@pytest.mark.parametrize("architecture", sorted(models.ARCHITECTURES))
def test_networks_with_a_label_per_channel_depend_on_every_channels_label(architecture):
    spec = models.ModelSpec(
        latent_dim=8, image_shape=(28, 28, 3), num_classes=6, width=4, label_groups=3
    )
    generator = models.build_generator(architecture, spec)
    discriminator = models.build_discriminator(architecture, spec)
    randomize_label_tables(generator, discriminator)
    z = tf.repeat(tf.random.normal([1, 8]), 4, axis=0)
    labels = tf.constant([[0, 2, 4], [1, 2, 4], [0, 3, 4], [0, 2, 5]])  # one channel's differs
    images = generator([z, labels], training=False).numpy()
    logits = discriminator([tf.repeat(images[:1], 4, axis=0), labels], training=False).numpy()
    for changed in (1, 2, 3):
        assert np.abs(images[changed] - images[0]).max() > 1e-3, changed
        assert abs(logits[changed] - logits[0]) > 1e-4, changed


@pytest.mark.parametrize("architecture", sorted(models.ARCHITECTURES))
def test_conditional_generators_depend_on_both_z_and_label(architecture):
    spec = models.ModelSpec(latent_dim=8, num_classes=10, width=4)
    generator = models.build_generator(architecture, spec)
    randomize_label_tables(generator)
    z = tf.random.normal([2, 8])
    same_z = tf.stack([z[0], z[0]])
    by_label = generator([same_z, tf.constant([3, 4])], training=False).numpy()
    by_z = generator([z, tf.constant([3, 3])], training=False).numpy()
    assert np.abs(by_label[0] - by_label[1]).max() > 1e-3
    assert np.abs(by_z[0] - by_z[1]).max() > 1e-3


@pytest.mark.parametrize("shape", [(32, 24), (16, 5, 5, 6)], ids=["dense", "conv"])
def test_fused_batch_norm_matches_keras_values_gradients_and_moving_statistics(shape):
    import keras

    reference = keras.layers.BatchNormalization(momentum=0.9, synchronized=True)
    fused = gan_layers.BatchNormalization(momentum=0.9, synchronized=True)
    x = tf.random.normal(shape, mean=2.0, stddev=3.0)
    reference.build(shape)
    fused.build(shape)
    for layer in (reference, fused):
        layer.gamma.assign(tf.linspace(0.5, 2.0, shape[-1]))
        layer.beta.assign(tf.linspace(-1.0, 1.0, shape[-1]))
    results = []
    for layer in (reference, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * tf.reshape(tf.range(tf.size(y), dtype=tf.float32), shape))
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results.append([y, *grads, layer.moving_mean, layer.moving_variance])
    for expected, actual in zip(*results, strict=True):
        expected, actual = np.asarray(expected), np.asarray(actual)
        # float32 sums of many terms, in another order: tolerance relative to the largest term
        np.testing.assert_allclose(actual, expected, rtol=0, atol=2e-5 * np.abs(expected).max())
    np.testing.assert_allclose(
        fused(x, training=False), reference(x, training=False), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("architecture", sorted(models.ARCHITECTURES))
def test_d_width_widens_the_discriminator_only(architecture):
    def widths(model):
        return [w.shape[-1] for w in model.weights if w.path.endswith("kernel")]

    spec = models.ModelSpec(latent_dim=8, width=4)
    wide = models.ModelSpec(latent_dim=8, width=4, d_width=12)
    g, wide_g = (models.build_generator(architecture, s) for s in (spec, wide))
    d, wide_d = (models.build_discriminator(architecture, s) for s in (spec, wide))
    assert widths(wide_g) == widths(g)
    # Every hidden layer of D is 3× as wide; the logit stays one unit.
    assert widths(wide_d) == [3 * n for n in widths(d)[:-1]] + [1]


def test_minibatch_std_appends_each_groups_mean_standard_deviation():
    # Groups of 2 in a batch of 4: sample i is in group i mod 2, so {x0, x2} and {x1, x3}.
    x = tf.constant([[0.0, 0.0], [2.0, 4.0], [2.0, 2.0], [2.0, 2.0]])
    out = gan_layers.MinibatchStdDev(group_size=2)(x).numpy()
    np.testing.assert_array_equal(out[:, :2], x)
    # {x0, x2}: per-feature std (1, 1), mean 1; {x1, x3}: std (0, 1), mean 0.5.
    np.testing.assert_allclose(out[:, 2], [1.0, 0.5, 1.0, 0.5], atol=1e-3)


def test_minibatch_std_groups_divide_the_batch_and_fill_a_constant_map():
    maps = tf.random.normal([6, 3, 3, 2])
    out = gan_layers.MinibatchStdDev(group_size=4)(maps).numpy()  # 6 = 2 groups of 3
    assert out.shape == (6, 3, 3, 3)
    feature = out[..., 2]
    assert np.ptp(feature, axis=(1, 2)).max() == 0.0
    grouped = maps.numpy().reshape(3, 2, 3, 3, 2)
    expected = np.sqrt(grouped.var(axis=0) + 1e-8).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(feature[:, 0, 0], np.tile(expected, 3), rtol=1e-5)
    same = gan_layers.MinibatchStdDev(group_size=4)(tf.ones([4, 3, 3, 2])).numpy()
    np.testing.assert_allclose(same[..., 2], 1e-4, rtol=1e-3)  # sqrt(0 + 1e-8)


@pytest.mark.parametrize("architecture", sorted(models.ARCHITECTURES))
def test_minibatch_std_makes_d_judge_a_sample_with_its_group(architecture):
    images = tf.random.uniform([4, 28, 28, 1], -1.0, 1.0)
    others = tf.concat([images[:1], tf.random.uniform([3, 28, 28, 1], -1.0, 1.0)], axis=0)
    for group, depends in ((0, False), (4, True)):
        spec = models.ModelSpec(latent_dim=8, width=4, dropout=0.0, minibatch_std=group)
        d = models.build_discriminator(architecture, spec)
        first = d(images, training=False)[0], d(others, training=False)[0]
        assert (abs(float(first[0] - first[1])) > 1e-6) == depends, (architecture, group)


@pytest.mark.parametrize("labels", [[2, 0, 2, 1], [[2, 0], [1, 1], [0, 0], [2, 1]]])
def test_class_projection_is_the_labels_embedding_dotted_with_the_features(labels):
    features = tf.random.normal([4, 7], seed=1)
    labels = tf.constant(labels)
    projection = gan_layers.ClassProjection(3)
    projection.build((features.shape, labels.shape))
    table = projection.embeddings.numpy()
    # By hand: the label's row (the groups' rows averaged) dotted with each example's features.
    rows = table[labels.numpy()]
    embedded = rows.mean(axis=1) if rows.ndim == 3 else rows
    expected = np.sum(embedded * features.numpy(), axis=1, keepdims=True)
    with tf.GradientTape() as tape:
        tape.watch(features)
        ours = projection([features, labels])
    assert ours.shape == (4, 1)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)
    # d/d features of Σ_b e(y_b)·f_b is e(y_b); d/d table[c] is the features of c's examples.
    gradient_features, gradient_table = tape.gradient(
        ours, [features, projection.embeddings], output_gradients=tf.ones_like(ours)
    )
    np.testing.assert_allclose(gradient_features, embedded, rtol=1e-5, atol=1e-6)
    picks = np.eye(3)[labels.numpy()]
    picks = picks.mean(axis=1) if picks.ndim == 3 else picks
    np.testing.assert_allclose(gradient_table, picks.T @ features.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("ids", [[2, 0, 2, 1], [[2, 0], [1, 1]]])
def test_rows_is_gather_with_a_dense_gradient(ids):
    table = tf.Variable(tf.random.normal([3, 5], seed=3))
    ids = tf.constant(ids)
    with tf.GradientTape(persistent=True) as tape:
        ours = gan_layers.rows(table, ids)
        gathered = tf.gather(table, ids)
        weights = tf.random.normal(gathered.shape, seed=4)
        ours_loss, gathered_loss = tf.reduce_sum(ours * weights), tf.reduce_sum(gathered * weights)
    np.testing.assert_array_equal(ours, gathered)
    dense = tape.gradient(ours_loss, table)
    assert isinstance(dense, tf.Tensor)
    np.testing.assert_allclose(dense, tf.convert_to_tensor(tape.gradient(gathered_loss, table)))
    embedding = gan_layers.Embedding(3, 5)
    embedding.build(ids.shape)
    np.testing.assert_array_equal(embedding(ids), tf.gather(embedding.embeddings, ids))
