"""Training input: manifest, TFRecords, and a step-indexed, exactly resumable tf.data pipeline.

Each worker reads its share of the shard files (``files[i::n]``) once, validates them, and keeps
them in memory (MNIST is 188 MB as float32). The order of examples is a pure function of
``(seed, epoch)``: every epoch is a stateless permutation, so the pipeline for a run resumed at
step k is built directly at step k (no iterator state in checkpoints, no replay of k batches)
and yields exactly the batches an uninterrupted run would have.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile

import numpy as np
import tensorflow as tf

from common import schema, storage
from common.cli import UserError

PARSE_BATCH = 4096


class DataError(UserError, ValueError):
    """The data directory does not hold what its manifest says; names the file."""


@dataclasses.dataclass(frozen=True)
class SplitData:
    images: np.ndarray  # float32 [N, 28, 28, 1] in [-1, 1]
    labels: np.ndarray  # int32 [N]


def read_manifest(data_dir: str) -> dict:
    path = storage.join(data_dir, schema.MANIFEST_NAME)
    try:
        text = storage.read_text(path)
    except FileNotFoundError as e:
        raise DataError(
            f"{path}: not found; run preprocessing first (no manifest, no complete data set)"
        ) from e
    try:
        manifest = schema.parse_manifest(text, path)
    except schema.ManifestError as e:
        raise DataError(str(e)) from e
    present = {name.rsplit("/", 1)[-1] for name in storage.list_files(data_dir)}
    listed = sorted(schema.listed_files(manifest))
    missing = [name for name in listed if name not in present]
    if missing:
        raise DataError(
            f"{storage.join(data_dir, missing[0])}: listed in the manifest but missing"
            f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}; re-run preprocessing"
        )
    return manifest


def _local_copy(path: str, scratch: str) -> str:
    """tf.data reads local files; objects in a bucket are fetched through the storage module."""
    if not storage.is_gcs(path):
        return path
    local = os.path.join(scratch, path.rsplit("/", 1)[-1])
    if not os.path.exists(local):
        storage.download_file(path, local)
    return local


def _read_file(path: str, local: str, compression: str) -> tuple[np.ndarray, np.ndarray]:
    dataset = (
        tf.data.TFRecordDataset(local, compression_type="GZIP" if compression == "gzip" else "")
        .batch(PARSE_BATCH)
        .map(lambda records: tf.io.parse_example(records, schema.feature_spec()))
    )
    images, labels = [], []
    try:
        for batch in dataset:
            images.append(batch[schema.IMAGE_KEY].numpy())
            labels.append(batch[schema.LABEL_KEY].numpy())
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
        reason = e.message.strip().splitlines()[0]
        raise DataError(f"{path}: record {sum(map(len, labels))} does not parse ({reason})") from e
    if not images:
        return np.zeros((0, schema.IMAGE_SIZE), np.float32), np.zeros((0,), np.int64)
    return np.concatenate(images), np.concatenate(labels)


def load_split(
    data_dir: str, manifest: dict, split: str, shard_index: int = 0, num_shards: int = 1
) -> SplitData:
    """Read this worker's files of ``split`` into memory and check them against the manifest."""
    entry = manifest["splits"].get(split)
    if entry is None:
        raise DataError(f"{storage.join(data_dir, schema.MANIFEST_NAME)}: no {split!r} split")
    files = entry["files"][shard_index::num_shards]
    if not files:
        raise DataError(
            f"{data_dir}: split {split!r} has {len(entry['files'])} files, too few for "
            f"{num_shards} input pipelines; preprocess with more --num_shards"
        )
    images, labels = [], []
    with tempfile.TemporaryDirectory(prefix="gan-data-") as scratch:
        for name in files:
            path = storage.join(data_dir, name)
            if not storage.exists(path):
                raise DataError(f"{path}: listed in the manifest but missing")
            file_images, file_labels = _read_file(
                path, _local_copy(path, scratch), manifest["compression"]
            )
            if len(file_images) and (file_images.min() < -1.0 or file_images.max() > 1.0):
                raise DataError(f"{path}: pixel values outside [-1, 1]; not this schema's data")
            if len(file_labels) and not np.isin(file_labels, manifest["digits"]).all():
                raise DataError(
                    f"{path}: labels outside the manifest's digits {manifest['digits']}"
                )
            images.append(file_images)
            labels.append(file_labels)
    images_array, labels_array = np.concatenate(images), np.concatenate(labels)
    if num_shards == 1:
        counts = np.bincount(labels_array, minlength=schema.NUM_CLASSES).tolist()
        if counts != entry["class_counts"]:
            raise DataError(
                f"{data_dir}: the {split!r} files hold {len(labels_array)} examples with class "
                f"counts {counts}, the manifest says {entry['num_examples']} with "
                f"{entry['class_counts']}"
            )
    return SplitData(images_array.reshape((-1, *schema.IMAGE_SHAPE)), labels_array.astype(np.int32))


def index_dataset(num_examples: int, seed: int, start: int) -> tf.data.Dataset:
    """Example indices in training order from position ``start`` on, forever.

    Epoch e is ``stateless_shuffle(range(N), seed=(seed, e))``: a pure function of its inputs.
    """
    start_epoch, offset = divmod(start, num_examples)

    def epoch_order(epoch: tf.Tensor) -> tf.Tensor:
        seed_pair = tf.stack([tf.constant(seed, tf.int64), epoch])
        return tf.random.experimental.stateless_shuffle(
            tf.range(num_examples, dtype=tf.int64), seed=seed_pair
        )

    return tf.data.Dataset.range(start_epoch, 2**62).map(epoch_order).unbatch().skip(offset)


def make_dataset_fn(
    data_dir: str,
    manifest: dict,
    global_batch_size: int,
    batches_per_step: int,
    seed: int,
    start_step: int,
):
    """A ``distribute_datasets_from_function`` input fn: per-replica batches from ``start_step``.

    Each element holds ``batches_per_step`` consecutive per-replica batches (one per
    discriminator step), stacked along the batch axis.
    """

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        data = load_split(
            data_dir, manifest, "train", context.input_pipeline_id, context.num_input_pipelines
        )
        per_replica = context.get_per_replica_batch_size(global_batch_size)
        replicas_here = context.num_replicas_in_sync // context.num_input_pipelines
        element = per_replica * batches_per_step
        consumed = start_step * element * replicas_here
        images = tf.constant(data.images)
        labels = tf.constant(data.labels)
        dataset = (
            index_dataset(len(data.labels), seed, consumed)
            .batch(element, drop_remainder=True)
            .map(lambda idx: (tf.gather(images, idx), tf.gather(labels, idx)))
            .prefetch(tf.data.AUTOTUNE)
        )
        options = tf.data.Options()
        options.deterministic = True
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.OFF  # sharded by file above
        )
        return dataset.with_options(options)

    return dataset_fn
