"""Training input: manifest, streamed TFRecords, and a step-indexed, exactly resumable pipeline.

Shards are read as streams, never gathered into memory: each worker reads its share of the
files (``files[i::n]``); epoch ``e`` visits them in ``stateless_shuffle(files, (seed, e))``
order, interleaved, and shuffled in blocks bounded in bytes
(``SHUFFLE_BYTES``: a whole epoch of MNIST, about 5,000 64×64 RGB images), each block of that
many records permuted by ``stateless_shuffle`` seeded by ``(seed, epoch, block)``. The stream is a
pure function of ``(seed, epoch)``, so the pipeline of a run resumed at step k is the epoch's
stream with the examples already consumed skipped (raw records, before parsing): it yields
exactly the batches an uninterrupted run would have, with no iterator state in checkpoints.

Shards in a bucket are copied to a local window of at most ``WINDOW_FILES`` files per worker;
each shard's record count is checked against the manifest before the pipeline starts (one read
of the worker's shards per process: seconds for MNIST).
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import re
import shutil
import tempfile
import threading
from typing import ClassVar

import numpy as np
import tensorflow as tf

from common import layout, schema, storage
from common.cli import UserError

SHUFFLE_BYTES = 256 << 20
CYCLE_LENGTH = 4  # shards read at once (interleaved)

# tf.data functions traced as written: autograph's conversion of each costs tens of ms in every
# process that reads the data, and none of them branches on a tensor.
plain = tf.autograph.experimental.do_not_convert


def _count_batch(count: tf.Tensor, batch: tf.Tensor) -> tf.Tensor:
    return count + tf.size(batch, out_type=tf.int64)


COUNT_BATCH = 4096  # records per step when a shard's records are counted
WINDOW_FILES = 2 * CYCLE_LENGTH + 2  # local copies of bucket shards kept per process
PARSE_BATCH = 1024
TF_FUNCTION_NODE = re.compile(r"\{\{function_node [^}]*\}\}\s*")
INPUT_ERROR = "input data: "  # marks our errors raised inside tf.data, to re-raise as DataError


def pipeline_options() -> tf.data.Options:
    """Options of every input pipeline here: deterministic order, no autotuning thread.

    tf.data's autotuning runs in a thread that sleeps between rounds, the sleep doubling up to
    60 s; in TensorFlow 2.21 deleting an iterator inside the trainer often (4 runs in 10) waited
    that sleep out (a native backtrace showed the iterator's destructor joining the thread, asleep
    in ``Model::OptimizeLoop``), so the trainer sat silent for up to a minute after its last step.
    Without the thread, ``AUTOTUNE`` parallelism is one call per core (at most 16) and prefetch
    buffers still size themselves.
    """
    options = tf.data.Options()
    options.deterministic = True
    options.autotune.enabled = False
    return options


class DataError(UserError, ValueError):
    """The data directory does not hold what its manifest says; names the file."""


@dataclasses.dataclass(frozen=True)
class SplitData:
    images: np.ndarray  # float32 [N, H, W, C] in [-1, 1]
    labels: np.ndarray  # int32 [N]


def read_manifest(data_dir: str) -> schema.Manifest:
    path = layout.DataDir(data_dir).manifest
    try:
        text = storage.read_text(path)
    except FileNotFoundError as e:
        raise DataError(
            f"{path}: not found; run preprocessing first (no manifest, no complete data set)"
        ) from e
    try:
        manifest = schema.Manifest.parse(text, path)
    except schema.ManifestError as e:
        raise DataError(str(e)) from e
    present = {name.rsplit("/", 1)[-1] for name in storage.list_files(data_dir)}
    listed = sorted(manifest.listed_files)
    missing = [name for name in listed if name not in present]
    if missing:
        raise DataError(
            f"{storage.join(data_dir, missing[0])}: listed in the manifest but missing"
            f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}; re-run preprocessing"
        )
    return manifest


def _compression(manifest: schema.Manifest) -> str:
    return "GZIP" if manifest.compression == "gzip" else ""


class ShardFiles:
    """Local paths of a data directory's shards: bucket objects copied into a bounded window.

    Every shard is checked once per process (record count against the manifest, records
    readable), so a truncated or replaced file is named instead of training on garbage: the
    training input and the evaluation's images share the checks of a file not changed since.
    """

    # (local path, size, modification time) of the files this process has checked.
    _checked: ClassVar[set[tuple[str, int, int]]] = set()

    def __init__(self, data_dir: str, manifest: schema.Manifest):
        self.data_dir = data_dir
        self.compression = _compression(manifest)
        self.expected = {
            name: count
            for split in manifest.splits.values()
            for name, count in split.file_examples.items()
        }
        self.window: list[str] = []
        self.lock = threading.Lock()
        self.scratch = ""

    def local(self, name: str) -> str:
        path = storage.join(self.data_dir, name)
        with self.lock:
            local = path
            if storage.is_gcs(path):
                if not self.scratch:
                    self.scratch = tempfile.mkdtemp(prefix="gan-input-")
                    atexit.register(shutil.rmtree, self.scratch, ignore_errors=True)
                local = os.path.join(self.scratch, name)
                if local not in self.window:
                    storage.download_file(path, local)
                    self.window.append(local)
                # Readers hold open descriptors: unlinking an older copy never cuts a reader.
                while len(self.window) > WINDOW_FILES:
                    os.unlink(self.window.pop(0))
            identity = _identity(local)
            if identity is None or identity not in ShardFiles._checked:
                self._check(name, path, local)
                ShardFiles._checked.add(_identity(local))
        return local

    def _check(self, name: str, path: str, local: str) -> None:
        records = self.records(local).with_options(pipeline_options())
        try:
            # Counted in batches: a reduce step per record took 3.5× as long (0.4 s an MNIST
            # shard, in every process that reads the data).
            count = int(records.batch(COUNT_BATCH).reduce(np.int64(0), plain(_count_batch)))
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
            # Without TF's internal op path ("{{function_node …}}"): the reader's own words.
            first = TF_FUNCTION_NODE.sub("", e.message.strip().splitlines()[0])
            reason = first.split(" [Op:")[0].strip()[-160:]
            raise DataError(f"{path}: a record does not parse ({reason})") from e
        if count != self.expected[name]:
            raise DataError(
                f"{path}: holds {count} records, the manifest says {self.expected[name]}; "
                "re-run preprocessing"
            )

    def check_all(self, names: list[str]) -> None:
        """Check every shard before the pipeline starts: an error inside tf.data's threads
        cannot end the process cleanly."""
        for name in names:
            self.local(name)

    def records(self, path: str | tf.Tensor) -> tf.data.Dataset:
        """One shard's serialized records (a tf.data function too: traced as written)."""
        return tf.data.TFRecordDataset(path, compression_type=self.compression)

    def paths(self, names: tf.data.Dataset) -> tf.data.Dataset:
        """Shard names → paths tf.data can open (bucket shards fetched into the window)."""
        if not storage.is_gcs(self.data_dir):
            prefix = self.data_dir.rstrip("/") + "/"
            return names.map(plain(lambda name: prefix + name))
        return names.map(plain(lambda name: tf.py_function(self.local_tensor, [name], tf.string)))

    def local_tensor(self, name: tf.Tensor) -> tf.Tensor:
        """``local`` inside tf.data; our errors carry INPUT_ERROR through TensorFlow's."""
        try:
            return tf.constant(self.local(name.numpy().decode()))
        except UserError as e:
            raise ValueError(INPUT_ERROR + str(e)) from e


def _identity(local: str) -> tuple[str, int, int] | None:
    try:
        stat = os.stat(local)
    except OSError:  # gone: the check names it
        return None
    return os.path.abspath(local), stat.st_size, stat.st_mtime_ns


def input_error(error: tf.errors.OpError) -> DataError | None:
    """The DataError a tf.data failure carries, if it is one of ours."""
    message = error.message or ""
    if INPUT_ERROR not in message:
        return None
    return DataError(message.split(INPUT_ERROR, 1)[1].strip().splitlines()[0])


def shuffle_buffer(spec: schema.DataSpec, epoch_size: int) -> int:
    return max(1, min(epoch_size, SHUFFLE_BYTES // (4 * spec.image_size + 32)))


def record_stream(
    shards: ShardFiles, files: list[str], epoch_size: int, buffer: int, seed: int, start: int
) -> tf.data.Dataset:
    """Serialized records in training order from position ``start`` on, forever."""
    start_epoch, offset = divmod(start, epoch_size)
    names = tf.constant(files)

    @plain
    def epoch_records(epoch: tf.Tensor) -> tf.data.Dataset:
        seed_pair = tf.stack([tf.constant(seed, tf.int64), epoch])
        order = tf.random.experimental.stateless_shuffle(
            tf.range(len(files), dtype=tf.int64), seed=seed_pair
        )
        paths = shards.paths(tf.data.Dataset.from_tensor_slices(tf.gather(names, order)))
        records = paths.interleave(
            plain(shards.records),
            cycle_length=min(CYCLE_LENGTH, len(files)),
        )
        # Stateless block shuffle (the shuffle op's seeds do not take tensors once a global seed
        # is set): a block holds ``buffer`` records, a whole epoch for MNIST.
        block_seed = tf.constant(seed, tf.int64) + epoch * 2**32

        @plain
        def permute(block: tf.Tensor, records_in_block: tf.Tensor) -> tf.Tensor:
            order = tf.random.experimental.stateless_shuffle(
                tf.range(tf.size(records_in_block, out_type=tf.int64)),
                seed=tf.stack([block_seed, block]),
            )
            return tf.gather(records_in_block, order)

        return records.batch(buffer).enumerate().map(permute).unbatch()

    return tf.data.Dataset.range(start_epoch, 2**62).flat_map(epoch_records).skip(offset)


def parser(spec: schema.DataSpec):
    """Batched records → (images float32 [B, H, W, C], labels int32 [B])."""
    features = schema.feature_spec(spec)

    @plain
    def parse(records: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        parsed = tf.io.parse_example(records, features)
        images = tf.reshape(parsed[schema.IMAGE_KEY], [-1, *spec.shape])
        return images, tf.cast(parsed[schema.LABEL_KEY], tf.int32)

    return parse


def _split_files(
    data_dir: str, manifest: schema.Manifest, split: str, shard_index: int = 0, num_shards: int = 1
) -> tuple[list[str], int]:
    entry = manifest.splits.get(split)
    if entry is None:
        raise DataError(f"{layout.DataDir(data_dir).manifest}: no {split!r} split")
    files = list(entry.files[shard_index::num_shards])
    if not files:
        raise DataError(
            f"{data_dir}: split {split!r} has {len(entry.files)} files, too few for "
            f"{num_shards} input pipelines; preprocess with more --num_shards"
        )
    return files, sum(entry.file_examples[name] for name in files)


def _first_files(
    manifest: schema.Manifest, split: str, files: list[str], limit: int
) -> tuple[list[str], int]:
    """The first of ``files`` that hold at least ``limit`` examples, and how many they hold."""
    counts = manifest.splits[split].file_examples
    taken, size = [], 0
    for name in files:
        if size >= limit:
            break
        taken.append(name)
        size += counts[name]
    return taken, size


def make_dataset_fn(
    data_dir: str,
    manifest: schema.Manifest,
    global_batch_size: int,
    batches_per_step: int,
    seed: int,
    start_step: int,
):
    """A ``distribute_datasets_from_function`` input fn: per-replica batches from ``start_step``.

    Each element holds ``batches_per_step`` consecutive per-replica batches (one per
    discriminator step), stacked along the batch axis.
    """
    spec = manifest.spec

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        files, epoch_size = _split_files(
            data_dir, manifest, "train", context.input_pipeline_id, context.num_input_pipelines
        )
        per_replica = context.get_per_replica_batch_size(global_batch_size)
        replicas_here = context.num_replicas_in_sync // context.num_input_pipelines
        element = per_replica * batches_per_step
        consumed = start_step * element * replicas_here
        shards = ShardFiles(data_dir, manifest)
        shards.check_all(files)
        dataset = (
            record_stream(
                shards,
                files,
                epoch_size,
                shuffle_buffer(spec, epoch_size),
                seed,
                consumed,
            )
            .batch(element, drop_remainder=True)
            .map(parser(spec), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE)
        )
        options = pipeline_options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.OFF  # sharded by file above
        )
        return dataset.with_options(options)

    return dataset_fn


def split_dataset(
    data_dir: str,
    manifest: schema.Manifest,
    split: str,
    batch: int,
    seed: int | None = None,
    limit: int | None = None,
) -> tf.data.Dataset:
    """One pass over ``split`` in batches: shuffled by ``seed`` (training), else in file order
    (only the files that hold the first ``limit`` examples, when given)."""
    spec = manifest.spec
    files, size = _split_files(data_dir, manifest, split)
    if seed is None and limit is not None:
        files, size = _first_files(manifest, split, files, limit)
    shards = ShardFiles(data_dir, manifest)
    shards.check_all(files)
    if seed is None:
        records = shards.paths(tf.data.Dataset.from_tensor_slices(files)).flat_map(
            plain(shards.records)
        )
    else:
        records = record_stream(shards, files, size, shuffle_buffer(spec, size), seed, 0).take(size)
    batches = records.batch(batch).map(parser(spec))
    # Known length: Keras then neither guesses it nor warns that the input ran out.
    batches = batches.apply(tf.data.experimental.assert_cardinality(-(-size // batch)))
    return batches.prefetch(tf.data.AUTOTUNE).with_options(pipeline_options())


def load_examples(
    data_dir: str,
    manifest: schema.Manifest,
    split: str,
    limit: int | None = None,
    seed: int | None = None,
) -> SplitData:
    """The first ``limit`` examples of ``split`` (all when None) in memory: in file order, or
    shuffled by ``seed`` (a random sample)."""
    images, labels = [], []
    taken = 0
    try:
        for batch_images, batch_labels in split_dataset(
            data_dir, manifest, split, PARSE_BATCH, seed, limit
        ):
            images.append(batch_images.numpy())
            labels.append(batch_labels.numpy())
            taken += len(labels[-1])
            if limit is not None and taken >= limit:
                break
    except tf.errors.OpError as e:
        raise input_error(e) or DataError(f"{data_dir}: {e.message.splitlines()[0]}") from e
    spec = manifest.spec
    if not images:
        return SplitData(np.zeros((0, *spec.shape), np.float32), np.zeros((0,), np.int32))
    return SplitData(np.concatenate(images)[:limit], np.concatenate(labels)[:limit])
