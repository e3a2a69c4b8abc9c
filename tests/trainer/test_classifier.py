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
