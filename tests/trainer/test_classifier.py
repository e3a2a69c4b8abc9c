"""The evaluation classifier's scoring path: what every metric is computed from."""

from __future__ import annotations

import numpy as np


def test_scoring_in_calls_returns_what_the_model_computes_for_every_image():
    """Compiled and cut into calls of 200, the features and probabilities are the Keras model's
    own, image for image, the last short call included."""
    import keras

    from trainer import classifier

    model = classifier.build((28, 28, 1), 10, seed=3)
    scorer = classifier.Classifier(model, test_accuracy=0.0)
    images = np.random.default_rng(0).uniform(-1, 1, (450, 28, 28, 1))  # float64 from a user
    features, probs = scorer.features_and_probs(images, batch=200)
    expected = classifier.feature_model(model)(images.astype(np.float32), training=False)
    assert features.shape == (450, 128) and probs.shape == (450, 10)
    np.testing.assert_allclose(features, np.asarray(expected[0]), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        probs, np.asarray(keras.ops.softmax(expected[1])), rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)


def test_the_classifier_scores_in_float32_whatever_policy_it_was_built_under(tmp_path):
    """A model built in mixed_bfloat16 (as the trainer's --mixed_precision used to make it, and
    as a bf16 CPU trains it) scores with float32 layers and the same weights; saved and loaded,
    it stays float32. bf16 features would round every activation to 8 bits of mantissa."""
    import keras

    from trainer import classifier

    mixed = classifier.build((28, 28, 1), 10, seed=3, dtype="mixed_bfloat16")
    scorer = classifier.Classifier(mixed, test_accuracy=0.0)
    assert {layer.dtype_policy.name for layer in scorer.model.layers} == {"float32"}
    for got, want in zip(scorer.model.get_weights(), mixed.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    images = np.random.default_rng(0).uniform(-1, 1, (8, 28, 28, 1)).astype(np.float32)
    features, _ = scorer.features_and_probs(images)
    exact = classifier.build((28, 28, 1), 10)
    exact.set_weights(mixed.get_weights())
    want = classifier.feature_model(exact)(images, training=False)[0]
    np.testing.assert_allclose(features, np.asarray(want), rtol=1e-5, atol=1e-6)

    path = str(tmp_path / "classifier.keras")
    scorer.model.save(path)
    loaded = keras.saving.load_model(path)
    assert {layer.dtype_policy.name for layer in loaded.layers} == {"float32"}


def test_a_cached_classifier_loads_silently_whatever_optimizer_state_it_was_saved_with(
    tmp_path,
):
    """An entry whose model file carries an optimizer that does not fit it (as one written by an
    earlier version did) loads for scoring without Keras' "Skipping variable loading" warning on
    the user's terminal."""
    import warnings

    from trainer import classifier

    model = classifier.build((8, 8, 3), 4, seed=1)
    model.compile(optimizer="rmsprop", loss="mse")  # compiled, never built: no slot variables
    directory = str(tmp_path / "entry")
    entry = classifier.Classifier(model, test_accuracy=0.5)
    classifier.commit_entry(directory, classifier.put_model(directory, entry), "f" * 64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = classifier._load_entry(directory, "delete it")
    assert loaded.test_accuracy == 0.5 and loaded.sha256 == entry.sha256


def test_training_shifts_move_whole_images_by_at_most_an_eighth_and_repeat_by_seed():
    """Each image is itself moved (one bright pixel lands within 1/8 of the side of where it
    was); the shifts differ between images and repeat for the same seed."""
    import tensorflow as tf

    from trainer import classifier

    images = np.full((16, 32, 32, 1), -1.0, np.float32)
    images[:, 16, 16, 0] = 1.0
    seed = tf.constant([3, 0], tf.int64)
    moved = classifier.shifted(tf.constant(images), seed).numpy()
    assert moved.shape == images.shape
    spots = [np.argwhere(image[..., 0] == 1.0) for image in moved]
    assert all(len(spot) == 1 for spot in spots)
    offsets = np.array([spot[0] - 16 for spot in spots])
    assert np.abs(offsets).max() <= 4 and len({tuple(o) for o in offsets}) > 4
    np.testing.assert_array_equal(classifier.shifted(tf.constant(images), seed).numpy(), moved)


def test_a_small_data_set_trains_more_epochs_than_a_large_one():
    from trainer import classifier

    assert classifier.epochs_for(60_000) == classifier.MIN_EPOCHS  # MNIST: three, as ever
    assert classifier.epochs_for(3_429) == 18  # the Twemoji folder: 60,000 images
    assert classifier.epochs_for(100) == classifier.MAX_EPOCHS


def test_a_subset_is_scored_by_its_full_data_sets_classifier(tmp_path):
    """The first 1,000 MNIST digits (--train_examples) are scored in full MNIST's feature space:
    the bundled classifier, not one trained on the subset (which would need the data)."""
    import json
    import os

    from tests import helpers
    from trainer import classifier

    mnist = helpers.BUNDLED_MNIST_FINGERPRINT
    bundled = classifier.cache_dir(classifier.BUNDLED, mnist)
    with open(os.path.join(bundled, classifier.INFO_FILE)) as f:
        expected_sha256 = json.load(f)["model_sha256"]
    manifest = helpers.mnist_manifest("e" * 64, subset_of=mnist)
    assert classifier.feature_spaces(manifest) == [mnist, "e" * 64]
    scorer = classifier.load_or_train(str(tmp_path / "cache"), str(tmp_path / "no-data"), manifest)
    assert scorer.sha256 == expected_sha256
    assert classifier.feature_spaces(helpers.mnist_manifest("e" * 64)) == ["e" * 64]
