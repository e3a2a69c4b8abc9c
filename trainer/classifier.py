"""The evaluator's feature extractor: a small MNIST classifier, trained once per data set.

Inception features are neither available offline nor meaningful for 28×28 digits, so the
pipeline trains its own classifier on the training split and uses its penultimate layer as the
feature space (Fréchet distance, precision/recall) and its softmax as p(y|x) (classifier score,
coverage). It is cached by the data manifest's fingerprint: the same data set never trains it
twice, and a different one never reuses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time

import keras
import numpy as np
from keras import layers

from common import schema, storage
from common.cli import UserError
from trainer import data

MODEL_FILE = "classifier.keras"
INFO_FILE = "classifier.json"
FEATURE_LAYER = "features"
MIN_ACCURACY = 0.99
DEFAULT_CACHE = os.path.join(tempfile.gettempdir(), f"gan-pipeline-{os.getuid()}", "classifiers")


class ClassifierError(UserError, RuntimeError):
    """The classifier could not be trained to the accuracy the metrics rely on."""


def build(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(schema.IMAGE_SHAPE)
    x = inputs
    for filters in (32, 64):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.3)(x)
    features = layers.Dense(128, activation="relu", name=FEATURE_LAYER)(x)
    logits = layers.Dense(schema.NUM_CLASSES, name="logits")(layers.Dropout(0.3)(features))
    return keras.Model(inputs, logits, name="mnist_classifier")


def cache_dir(root: str, manifest: dict) -> str:
    return storage.join(root, manifest["fingerprint"][:16])


class Classifier:
    """Features and class probabilities of images in [-1, 1]."""

    def __init__(self, model: keras.Model, test_accuracy: float):
        self.model = model
        self.test_accuracy = test_accuracy
        self._extractor = keras.Model(
            model.input, [model.get_layer(FEATURE_LAYER).output, model.output]
        )

    def features_and_probs(
        self, images: np.ndarray, batch: int = 1000
    ) -> tuple[np.ndarray, np.ndarray]:
        feats, probs = [], []
        for start in range(0, len(images), batch):
            f, logits = self._extractor(images[start : start + batch], training=False)
            feats.append(np.asarray(f, np.float64))
            probs.append(np.asarray(keras.ops.softmax(logits), np.float64))
        return np.concatenate(feats), np.concatenate(probs)


def train(data_dir: str, manifest: dict, epochs: int = 3, seed: int = 0) -> Classifier:
    train_split = data.load_split(data_dir, manifest, "train")
    test_split = data.load_split(data_dir, manifest, "test")
    model = build(seed)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    started = time.monotonic()
    print(
        f"classifier: training the evaluation classifier on {len(train_split.labels)} images, "
        f"{epochs} epochs (once per data set, then cached)",
        flush=True,
    )
    model.fit(
        train_split.images,
        train_split.labels,
        batch_size=128,
        epochs=epochs,
        shuffle=True,
        verbose=0,
        callbacks=[_EpochLine(epochs, started)],
    )
    _, accuracy = model.evaluate(test_split.images, test_split.labels, batch_size=1000, verbose=0)
    print(
        f"classifier: test accuracy {accuracy:.4f} after {time.monotonic() - started:.0f}s",
        flush=True,
    )
    return Classifier(model, float(accuracy))


class _EpochLine(keras.callbacks.Callback):
    """One progress line per epoch: the classifier takes about a minute on full MNIST."""

    def __init__(self, epochs: int, started: float):
        super().__init__()
        self.epochs, self.started = epochs, started

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        accuracy = (logs or {}).get("accuracy", float("nan"))
        print(
            f"classifier: epoch {epoch + 1}/{self.epochs}  train accuracy {accuracy:.4f}  "
            f"{time.monotonic() - self.started:.0f}s",
            flush=True,
        )


def _accuracy_is_enforced(manifest: dict) -> bool:
    """The 99% floor holds for full ten-class MNIST; tiny test sets only record their accuracy."""
    train_split = manifest["splits"]["train"]
    return len(manifest["digits"]) == schema.NUM_CLASSES and train_split["num_examples"] >= 50_000


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_or_train(root: str, data_dir: str, manifest: dict) -> Classifier:
    """The cached classifier for this data set, training and caching it the first time.

    A cached model is loaded only if its bytes match the sha256 its info file recorded: a Keras
    file is code as much as data, and the cache may live in a shared place.
    """
    if root == DEFAULT_CACHE:  # under the shared temp dir: its parent must be ours too
        storage.private_dir(os.path.dirname(root))
    if not storage.is_gcs(root):
        storage.private_dir(root)
    directory = cache_dir(root, manifest)
    info_path = storage.join(directory, INFO_FILE)
    if storage.exists(info_path):
        try:
            info = json.loads(storage.read_text(info_path))
            expected, accuracy = str(info["model_sha256"]), float(info["test_accuracy"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise ClassifierError(
                f"{info_path}: unreadable classifier cache entry ({type(e).__name__}); "
                f"delete {directory} to retrain"
            ) from e
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, MODEL_FILE)
            storage.download_file(storage.join(directory, MODEL_FILE), local)
            if _sha256(local) != expected:
                raise ClassifierError(
                    f"{storage.join(directory, MODEL_FILE)}: does not match the sha256 recorded "
                    f"in {INFO_FILE}; not loading it (delete {directory} to retrain)"
                )
            model = keras.saving.load_model(local)
        return Classifier(model, accuracy)
    classifier = train(data_dir, manifest)
    if _accuracy_is_enforced(manifest) and classifier.test_accuracy < MIN_ACCURACY:
        raise ClassifierError(
            f"evaluation classifier reached {classifier.test_accuracy:.4f} test accuracy, "
            f"below {MIN_ACCURACY}; its features would not be trustworthy"
        )
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, MODEL_FILE)
        classifier.model.save(local)
        model_sha256 = _sha256(local)
        storage.put_file(local, storage.join(directory, MODEL_FILE))
    info = {
        "test_accuracy": classifier.test_accuracy,
        "data_fingerprint": manifest["fingerprint"],
        "model_sha256": model_sha256,
    }
    storage.write_text(info_path, json.dumps(info, indent=2) + "\n")  # written last: the commit
    return classifier
