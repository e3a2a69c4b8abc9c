"""The Beam transforms: IDX shards → normalized tf.Examples in TFRecord files + manifest.

One element is one output shard (thousands of images), never a single row, so per-element
overhead is paid per shard and the heavy work (normalize, serialize, compress) runs in parallel
across workers. Workers read the IDX files themselves (shard specs are tiny), so the pipeline
graph carries no data and runs the same on Dataflow as on the DirectRunner. A shard's content is
a fixed, ordered slice of the source: re-running or retrying a bundle rewrites identical bytes.
"""

import dataclasses
import datetime
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence

import apache_beam as beam
import numpy as np

from common import schema, storage
from preprocessing import sources


@dataclasses.dataclass(frozen=True)
class ShardSpec:
    """Source examples ``[start, stop)`` of one split, written as shard ``index`` of ``count``."""

    files: sources.SplitFiles
    index: int
    count: int
    start: int
    stop: int

    def file_name(self, compression: str) -> str:
        suffix = schema.COMPRESSION_SUFFIX[compression]
        return f"{self.files.split}-{self.index:05d}-of-{self.count:05d}{suffix}"


@dataclasses.dataclass(frozen=True)
class ShardStats:
    """What one written shard contributes to its split's manifest entry."""

    file_name: str
    class_counts: np.ndarray
    pixel_count: int
    pixel_sum: int
    pixel_sq_sum: int


def shard_specs(files: sources.SplitFiles, num_examples: int, num_shards: int) -> list[ShardSpec]:
    bounds = np.linspace(0, num_examples, num_shards + 1).astype(int)
    return [
        ShardSpec(files, i, num_shards, int(bounds[i]), int(bounds[i + 1]))
        for i in range(num_shards)
    ]


def write_shard(
    spec: ShardSpec, output_dir: str, digits: Sequence[int], compression: str
) -> Iterator[tuple[str, ShardStats]]:
    """Read, filter, normalize and serialize one shard; publish the file atomically."""
    import tensorflow as tf

    pixels, labels, _ = sources.load_split(spec.files.images_path, spec.files.labels_path)
    pixels, labels = pixels[spec.start : spec.stop], labels[spec.start : spec.stop]
    keep = np.isin(labels, digits)
    pixels, labels = pixels[keep], labels[keep].astype(np.int64)
    name = spec.file_name(compression)
    options = tf.io.TFRecordOptions(compression_type="GZIP" if compression == "gzip" else "")
    fd, local = tempfile.mkstemp(prefix=f"{name}.")
    os.close(fd)
    try:
        with tf.io.TFRecordWriter(local, options) as writer:
            for image, label in zip(schema.normalize(pixels), labels, strict=True):
                writer.write(schema.encode_example(image, label))
        storage.put_file(local, storage.join(output_dir, name))
    finally:
        if os.path.exists(local):  # put_file consumes it on success; a failure must not leak it
            os.unlink(local)
    wide = pixels.astype(np.int64)
    yield (
        spec.files.split,
        ShardStats(
            name,
            np.bincount(labels, minlength=schema.NUM_CLASSES),
            wide.size,
            int(wide.sum()),
            int((wide * wide).sum()),
        ),
    )


class SplitStatsFn(beam.CombineFn):
    """Exact per-split statistics: files, class counts, pixel sum and sum of squares.

    Sums run over the integer pixels, so merging in any order gives the same bits.
    """

    def create_accumulator(self) -> tuple[list[str], np.ndarray, int, int, int]:
        return [], np.zeros(schema.NUM_CLASSES, np.int64), 0, 0, 0

    def add_input(self, acc, shard: ShardStats):
        files, counts, n, s, sq = acc
        return (
            [*files, shard.file_name],
            counts + shard.class_counts,
            n + shard.pixel_count,
            s + shard.pixel_sum,
            sq + shard.pixel_sq_sum,
        )

    def merge_accumulators(self, accumulators: Iterable):
        files, counts, n, s, sq = self.create_accumulator()
        for f, c, n2, s2, sq2 in accumulators:
            files, counts, n, s, sq = files + f, counts + c, n + n2, s + s2, sq + sq2
        return files, counts, n, s, sq

    def extract_output(self, acc) -> dict:
        files, counts, n, s, sq = acc
        mean = s / max(n, 1)
        var = max(sq / max(n, 1) - mean * mean, 0.0)
        # Reported in the stored value space: x / 127.5 - 1.
        return {
            "files": sorted(files),
            "num_examples": int(counts.sum()),
            "class_counts": [int(c) for c in counts],
            "pixel_mean": mean / 127.5 - 1.0,
            "pixel_std": var**0.5 / 127.5,
        }


def write_manifest(_: None, output_dir: str, header: dict, splits: dict) -> str:
    """Write ``manifest.json`` last, once every shard of every split is published."""
    manifest = {
        **header,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "splits": dict(sorted(splits.items())),
    }
    path = storage.join(output_dir, schema.MANIFEST_NAME)
    schema.validate_manifest(manifest, path)
    storage.write_text(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def planned_files(
    files: dict[str, sources.SplitFiles], counts: dict[str, int], num_shards: int, compression: str
) -> list[str]:
    """The names of every shard the job will write (a pure function of its inputs)."""
    return sorted(
        spec.file_name(compression)
        for split, split_files in files.items()
        for spec in shard_specs(split_files, counts[split], num_shards)
    )


def build(
    pipeline: beam.Pipeline,
    files: dict[str, sources.SplitFiles],
    counts: dict[str, int],
    output_dir: str,
    header: dict,
    digits: Sequence[int],
    num_shards: int,
    compression: str,
) -> None:
    """Add the whole job to ``pipeline``: write every shard, combine stats, then the manifest."""
    specs = [
        spec
        for split, split_files in files.items()
        for spec in shard_specs(split_files, counts[split], num_shards)
    ]
    split_stats = (
        pipeline
        | "ShardSpecs" >> beam.Create(specs)
        | "Spread" >> beam.Reshuffle()
        | "WriteShards"
        >> beam.FlatMap(write_shard, output_dir, digits=list(digits), compression=compression)
        | "SplitStats" >> beam.CombinePerKey(SplitStatsFn())
    )
    _ = (
        pipeline
        | "ManifestStart" >> beam.Create([None])
        | "WriteManifest"
        >> beam.Map(write_manifest, output_dir, header, beam.pvalue.AsDict(split_stats))
    )
