"""The record format every stage shares (common/schema.py): TensorFlow's bytes, built without it."""

from __future__ import annotations

import numpy as np
import pytest

from common import schema


@pytest.mark.parametrize(
    "shape, label",
    [((28, 28, 1), 7), ((8, 8, 3), 0), ((4, 4, 1), 300), ((2, 2, 1), 2**40), ((1, 1, 1), -1)],
)
def test_a_record_is_the_bytes_tf_train_example_serializes(shape, label):
    import tensorflow as tf

    image = np.random.default_rng(abs(label)).uniform(-1, 1, shape).astype(np.float32)
    feature = {
        schema.IMAGE_KEY: tf.train.Feature(float_list=tf.train.FloatList(value=image.ravel())),
        schema.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    }
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    encoded = schema.encode_example(image, label)
    assert encoded == example.SerializeToString(deterministic=True)
    spec = {
        schema.IMAGE_KEY: tf.io.FixedLenFeature([image.size], tf.float32),
        schema.LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
    }
    parsed = tf.io.parse_single_example(encoded, spec)
    assert np.array_equal(parsed[schema.IMAGE_KEY].numpy().reshape(shape), image)
    assert int(parsed[schema.LABEL_KEY]) == label


def test_a_record_serializes_to_the_same_bytes_in_every_process():
    """tf.train.Example's feature map is serialized in key order: without it the order follows
    a per-process seed, and a shard rewritten by another process differs in bytes."""
    import subprocess
    import sys

    from tests import helpers

    code = (
        "import numpy as np\n"
        "from common import schema\n"
        "print(schema.encode_example(np.linspace(-1, 1, 784, dtype=np.float32), 7).hex())\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=helpers.REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[-1]
        for _ in range(5)
    }
    assert len(outputs) == 1
    record = bytes.fromhex(outputs.pop())
    assert record.index(b"image") < record.index(b"label")


def test_denormalize_rounds_clips_and_shows_non_finite_values_as_black():
    images = np.array([-1.0, 0.0, 1.0, 1.5, -2.0, np.nan, np.inf, -np.inf], dtype=np.float32)
    assert schema.denormalize(images).tolist() == [0, 128, 255, 255, 0, 0, 255, 0]


def _record(**preprocess) -> dict:
    header = {
        "schema_version": schema.SCHEMA_VERSION,
        "name": "dots",
        "image_shape": [4, 4, 3],
        "value_range": list(schema.VALUE_RANGE),
        "normalization": "x / 127.5 - 1",
        "features": {},
        "compression": "gzip",
        "class_names": ["a", "b"],
        "kept_classes": [1],
        "stacked_mnist": False,
        "preprocess": preprocess,
        "source_sha256": {},
    }
    split = {
        "files": ["train-0.gz", "train-1.gz"],
        "file_examples": {"train-0.gz": 2, "train-1.gz": 1},
        "num_examples": 3,
        "class_counts": [0, 3],
    }
    return {**header, "fingerprint": schema.fingerprint(header), "splits": {"train": split}}


def test_a_manifest_is_read_once_into_typed_fields():
    record = _record(subset_of="f" * 64)
    manifest = schema.Manifest.from_record(record, "m.json")
    assert manifest.spec == schema.DataSpec("dots", 4, 4, 3, ("a", "b"), (1,))
    assert manifest.fingerprint == record["fingerprint"] and manifest.compression == "gzip"
    assert manifest.subset_of == "f" * 64
    assert manifest.splits["train"] == schema.Split(
        ("train-0.gz", "train-1.gz"), {"train-0.gz": 2, "train-1.gz": 1}, 3, (0, 3)
    )
    assert manifest.examples("train") == 3 and manifest.examples("test") == 0
    assert manifest.listed_files == {"train-0.gz", "train-1.gz"}
    assert manifest.record is record  # what an export copies whole
    assert schema.Manifest.from_record(_record(), "m.json").subset_of == ""


def test_a_manifest_with_a_bad_field_is_named_in_one_error():
    record = _record()
    record["preprocess"] = "resized"
    record["fingerprint"] = schema.fingerprint(record)
    with pytest.raises(schema.ManifestError, match=r"m\.json: preprocess is not an object"):
        schema.Manifest.from_record(record, "m.json")
