"""The contract between preprocessing and training: the Example schema and the data manifest.

Both sides import this module, so the record layout lives in exactly one place.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import numpy as np

from common.cli import UserError

SCHEMA_VERSION = 1
IMAGE_HEIGHT = IMAGE_WIDTH = 28
IMAGE_SIZE = IMAGE_HEIGHT * IMAGE_WIDTH
IMAGE_SHAPE = (IMAGE_HEIGHT, IMAGE_WIDTH, 1)
NUM_CLASSES = 10
VALUE_RANGE = (-1.0, 1.0)
MANIFEST_NAME = "manifest.json"
IMAGE_KEY = "image"
LABEL_KEY = "label"
COMPRESSION_SUFFIX = {"gzip": ".tfrecord.gz", "none": ".tfrecord"}


class ManifestError(UserError, ValueError):
    """A manifest is missing, malformed or does not describe the data next to it."""


# What defines a data set: the manifest's fingerprint is the sha256 of exactly these fields.
FINGERPRINTED = (
    "schema_version",
    "image_shape",
    "value_range",
    "normalization",
    "features",
    "compression",
    "num_shards",
    "digits",
    "source_sha256",
)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def listed_files(manifest: dict) -> set[str]:
    """Every shard file name a manifest lists, over all splits."""
    return {f for split in manifest.get("splits", {}).values() for f in split.get("files", [])}


def fingerprint(header: dict) -> str:
    fields = {key: header[key] for key in FINGERPRINTED}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def normalize(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels → float32 in [-1, 1], the value every record stores: ``x / 127.5 - 1``."""
    return pixels.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def denormalize(images: np.ndarray) -> np.ndarray:
    """[-1, 1] floats → uint8 pixels (rounded, clipped), for viewing."""
    return np.clip(np.rint((np.asarray(images) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def encode_example(image: np.ndarray, label: int) -> bytes:
    """One serialized ``tf.train.Example{image: float[784], label: int64}``."""
    import tensorflow as tf

    feature = {
        IMAGE_KEY: tf.train.Feature(float_list=tf.train.FloatList(value=image.tolist())),
        LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
    }
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    # Map entries in key order: otherwise their order follows a per-process hash seed, and the
    # same shard written by two processes differs in bytes (found by a shard rewritten on repair).
    return example.SerializeToString(deterministic=True)


def feature_spec() -> dict:
    import tensorflow as tf

    return {
        IMAGE_KEY: tf.io.FixedLenFeature([IMAGE_SIZE], tf.float32),
        LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
    }


def validate_manifest(manifest: Any, where: str) -> dict:
    """Check a parsed manifest against this schema; return it or raise ManifestError."""
    if not isinstance(manifest, dict):
        raise ManifestError(f"{where}: manifest is not a JSON object")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ManifestError(
            f"{where}: schema_version {version!r}, this code reads version {SCHEMA_VERSION}"
        )
    if list(manifest.get("image_shape", [])) != list(IMAGE_SHAPE):
        raise ManifestError(
            f"{where}: image_shape {manifest.get('image_shape')!r}, expected {list(IMAGE_SHAPE)}"
        )
    missing = [key for key in (*FINGERPRINTED, "fingerprint", "splits") if key not in manifest]
    if missing:
        raise ManifestError(f"{where}: lacks {', '.join(missing)}; not a manifest of this schema")
    if manifest["compression"] not in COMPRESSION_SUFFIX:
        raise ManifestError(f"{where}: unknown compression {manifest['compression']!r}")
    digits = manifest["digits"]
    if (
        not isinstance(digits, list)
        or not digits
        or any(not isinstance(d, int) or not 0 <= d < NUM_CLASSES for d in digits)
    ):
        raise ManifestError(f"{where}: digits {digits!r} is not a list of classes 0-9")
    recorded = manifest["fingerprint"]
    if not isinstance(recorded, str) or not _HEX64.match(recorded):
        raise ManifestError(f"{where}: fingerprint {str(recorded)[:80]!r} is not a sha256")
    if fingerprint(manifest) != recorded:
        raise ManifestError(
            f"{where}: fingerprint does not match the manifest's content (edited by hand, or "
            "corrupt); re-run preprocessing"
        )
    splits = manifest.get("splits")
    if not isinstance(splits, dict) or not splits:
        raise ManifestError(f"{where}: no splits")
    for name, split in splits.items():
        counts = split.get("class_counts")
        if not isinstance(counts, list) or len(counts) != NUM_CLASSES:
            raise ManifestError(f"{where}: split {name!r} class_counts is not a list of 10")
        if sum(counts) != split.get("num_examples"):
            raise ManifestError(
                f"{where}: split {name!r} num_examples {split.get('num_examples')} "
                f"!= sum(class_counts) {sum(counts)}"
            )
        if not split.get("files"):
            raise ManifestError(f"{where}: split {name!r} lists no files")
        for file_name in split["files"]:
            if not isinstance(file_name, str) or not _PLAIN_NAME.match(file_name):
                raise ManifestError(
                    f"{where}: split {name!r} lists {str(file_name)[:80]!r}, not a plain file "
                    "name in the data directory"
                )
    return manifest


def parse_manifest(text: str, where: str) -> dict:
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as e:
        raise ManifestError(f"{where}: not valid JSON ({e})") from e
    return validate_manifest(manifest, where)
