"""What the evaluator computes once per feature space and data set, kept beside the classifier.

Two kinds of file, each named by the sha256 of its key (the classifier's file, the data's
fingerprint, what was computed and from how many images):

| directory | file | what |
| --- | --- | --- |
| ``floors/`` | ``floor-<key>.json`` | the real-data floor: real images scored as samples |
| ``embeddings/`` | ``embedding-<key>.npz`` | real images' features and class probabilities |

They live in the classifier's own directory; for the classifier the project ships, whose
directory is the project's source, new files go to the same-named directory under the cache
root instead (read from both). Every file records its key and is used only when that key
matches in full; a damaged one is recomputed and replaced. This module owns those names.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import zipfile
from typing import ClassVar

import numpy as np

from common import storage
from trainer import classifier as classifier_lib

FLOORS_DIR = "floors"
EMBEDDINGS_DIR = "embeddings"
# Bumped when a metric's definition changes: every cached and shipped floor is stale then.
FLOOR_VERSION = 1
# Bumped when what an embedding holds changes (the feature layer, the images' preprocessing).
EMBEDDING_VERSION = 1


@dataclasses.dataclass(frozen=True)
class FloorKey:
    """What a real-data floor depends on: the feature space, the data, how many samples are
    scored, how many training images the subset is drawn from and how many are held for the
    memorization check, and the seed that draws the subset."""

    DIRECTORY: ClassVar[str] = FLOORS_DIR
    NAME: ClassVar[str] = "floor-{}.json"

    classifier_sha256: str
    data_fingerprint: str
    num_samples: int
    train_images: int
    held_images: int
    seed: int = 0
    version: int = FLOOR_VERSION


@dataclasses.dataclass(frozen=True)
class EmbeddingKey:
    """What the embedding of a split's first ``count`` images depends on."""

    DIRECTORY: ClassVar[str] = EMBEDDINGS_DIR
    NAME: ClassVar[str] = "embedding-{}.npz"

    classifier_sha256: str
    data_fingerprint: str
    split: str
    count: int
    version: int = EMBEDDING_VERSION


def file_name(key: FloorKey | EmbeddingKey) -> str:
    text = json.dumps(dataclasses.asdict(key), sort_keys=True)
    return key.NAME.format(hashlib.sha256(text.encode()).hexdigest()[:16])


def _home(classifier: classifier_lib.Classifier, root: str) -> str:
    """Where new files of this classifier go: its own directory, or for the shipped one the
    same-named directory in the cache under ``root``."""
    if storage.is_gcs(classifier.directory):
        return classifier.directory
    bundled = os.path.abspath(classifier_lib.BUNDLED)
    if os.path.commonpath([os.path.abspath(classifier.directory), bundled]) == bundled:
        return storage.join(root, os.path.basename(classifier.directory.rstrip("/")))
    return classifier.directory


def _existing(
    classifier: classifier_lib.Classifier, root: str, key: FloorKey | EmbeddingKey
) -> list[str]:
    """The paths a file for ``key`` may be at, that exist, the classifier's directory first."""
    if classifier.directory is None:  # not one of ours (Keras' Inception): nothing is cached
        return []
    homes = dict.fromkeys((classifier.directory, _home(classifier, root)))
    paths = [storage.join(home, key.DIRECTORY, file_name(key)) for home in homes]
    return [path for path in paths if storage.exists(path)]


def _path_for_new(
    classifier: classifier_lib.Classifier, root: str, key: FloorKey | EmbeddingKey
) -> str | None:
    if classifier.directory is None:
        return None
    home = _home(classifier, root)
    if home != classifier.directory:
        classifier_lib.private_root(root)
    return storage.join(home, key.DIRECTORY, file_name(key))


def load_floor(
    classifier: classifier_lib.Classifier, root: str, key: FloorKey
) -> dict[str, float] | None:
    """The floor cached for exactly ``key``, if there is one."""
    for path in _existing(classifier, root, key):
        try:
            record = json.loads(storage.read_text(path))
        except json.JSONDecodeError:
            continue
        if record.get("key") == dataclasses.asdict(key):
            return {name: float(value) for name, value in record["floor"].items()}
    return None


def save_floor(
    classifier: classifier_lib.Classifier, root: str, key: FloorKey, floor: dict[str, float]
) -> str | None:
    """Cache ``floor`` for ``key``; its path (None for a classifier that caches nothing)."""
    path = _path_for_new(classifier, root, key)
    if path is not None:
        record = {"key": dataclasses.asdict(key), "floor": floor}
        storage.write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path


def load_embedding(
    classifier: classifier_lib.Classifier, root: str, key: EmbeddingKey
) -> tuple[np.ndarray, np.ndarray] | None:
    """The features and class probabilities cached for exactly ``key``, as
    ``Classifier.features_and_probs`` returns them, if there are."""
    for path in _existing(classifier, root, key):
        try:
            with np.load(io.BytesIO(storage.read_bytes(path)), allow_pickle=False) as record:
                recorded = json.loads(str(record["key"]))
                features, probs = record["features"], record["probs"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
            continue
        if recorded == dataclasses.asdict(key) and len(features) == len(probs) == key.count:
            # Stored as the float32 the classifier computed: widening again is exact.
            return features.astype(np.float64), probs.astype(np.float64)
    return None


def save_embedding(
    classifier: classifier_lib.Classifier,
    root: str,
    key: EmbeddingKey,
    features: np.ndarray,
    probs: np.ndarray,
) -> str | None:
    """Cache an embedding for ``key``; its path (None for a classifier that caches nothing)."""
    path = _path_for_new(classifier, root, key)
    if path is not None:
        buffer = io.BytesIO()
        np.savez(
            buffer,
            key=np.array(json.dumps(dataclasses.asdict(key), sort_keys=True)),
            features=features.astype(np.float32),
            probs=probs.astype(np.float32),
        )
        storage.write_bytes(path, buffer.getvalue())
    return path
