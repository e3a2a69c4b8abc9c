"""The Beam transforms: source chunks → normalized tf.Examples in TFRecord files + manifest.

One element is one output shard (a chunk of input files or records), never a single image and
never the whole data set, so per-element overhead is paid per shard, the heavy work (decode,
resize, normalize, serialize, compress) runs in parallel across workers, and a worker holds one
image at a time. Workers read the source themselves (chunk specs are tiny), so the pipeline graph
carries no data and runs the same on Dataflow as on the DirectRunner. A shard's content is a
fixed, ordered slice of the source: re-running or retrying a bundle rewrites identical bytes.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence

import apache_beam as beam
import numpy as np

from common import layout, schema, storage, tfrecord
from preprocessing import images, sources

TARGET_SHARD_BYTES = 256 << 20  # uncompressed records per shard: Dataflow parallelism for big sets
BAD_IMAGES_LISTED = 100


@dataclasses.dataclass(frozen=True)
class Layout:
    """What every shard is written as: the data set's shape, classes kept, compression, and the
    background that image files' transparent pixels are composited over."""

    shape: tuple[int, int, int]
    resize: bool
    num_classes: int
    kept: tuple[int, ...]
    compression: str
    background: tuple[int, int, int] = images.WHITE  # under transparent pixels of image files

    @property
    def suffix(self) -> str:
        return schema.COMPRESSION_SUFFIX[self.compression]


@dataclasses.dataclass(frozen=True)
class ShardStats:
    """What one written shard contributes to its split's manifest entry."""

    file_name: str
    num_examples: int
    class_counts: np.ndarray
    pixel_count: int
    channel_sums: np.ndarray  # per channel, of the uint8 pixels: exact integers
    channel_sq_sums: np.ndarray
    content_sha256: str  # of the inputs read, in order
    bad: tuple[tuple[str, str], ...]  # (input, reason), the first few
    bad_count: int


def shards_for(num_examples: int, shape: Sequence[int], minimum: int) -> int:
    """At least ``minimum`` shards, more when a split's records exceed TARGET_SHARD_BYTES each."""
    record_bytes = 4 * int(np.prod(shape)) + 32
    return max(minimum, math.ceil(num_examples * record_bytes / TARGET_SHARD_BYTES))


def write_shard(
    chunk: sources.Chunk, source: sources.Source, output_dir: str, layout: Layout
) -> Iterator[tuple[str, ShardStats]]:
    """Read, fit, normalize and serialize one chunk; publish its shard file atomically."""
    name = chunk.file_name(layout.suffix)
    channels = layout.shape[2]
    counts = np.zeros(layout.num_classes, np.int64)
    sums, sq_sums = np.zeros(channels, np.int64), np.zeros(channels, np.int64)
    digest = hashlib.sha256()
    bad: list[tuple[str, str]] = []
    bad_count = written = 0
    keep = set(layout.kept)
    fd, local = tempfile.mkstemp(prefix=f"{name}.")
    os.close(fd)
    try:
        with tfrecord.writer(local, layout.compression) as write:
            for item, content, label in source.read(chunk):
                if layout.num_classes and label not in keep:
                    continue
                raw = content if isinstance(content, bytes) else content.tobytes()
                digest.update(hashlib.sha256(raw).digest())
                try:
                    pixels = (
                        images.decode(content, layout.background)
                        if isinstance(content, bytes)
                        else content
                    )
                    pixels = images.fit(pixels, layout.shape, layout.resize)
                except images.BadImage as e:
                    bad_count += 1
                    if len(bad) < BAD_IMAGES_LISTED:
                        bad.append((item, str(e)))
                    continue
                write(schema.encode_example(schema.normalize(pixels), label))
                wide = pixels.reshape(-1, channels).astype(np.int64)
                sums += wide.sum(axis=0)
                sq_sums += (wide * wide).sum(axis=0)
                if layout.num_classes:
                    counts[label] += 1
                written += 1
        storage.put_file(local, storage.join(output_dir, name))
    finally:
        if os.path.exists(local):  # put_file consumes it on success; a failure must not leak it
            os.unlink(local)
    pixel_count = written * layout.shape[0] * layout.shape[1]
    yield (
        chunk.split,
        ShardStats(
            name,
            written,
            counts,
            pixel_count,
            sums,
            sq_sums,
            digest.hexdigest(),
            tuple(bad),
            bad_count,
        ),
    )


class SplitStatsFn(beam.CombineFn):
    """Exact per-split statistics: files, counts, per-channel pixel sums, bad images.

    Sums run over the integer pixels, so merging in any order gives the same bits.
    """

    def create_accumulator(self) -> list[ShardStats]:
        return []

    def add_input(self, acc: list[ShardStats], shard: ShardStats) -> list[ShardStats]:
        return [*acc, shard]

    def merge_accumulators(self, accumulators: Iterable[list[ShardStats]]) -> list[ShardStats]:
        return [shard for acc in accumulators for shard in acc]

    def extract_output(self, acc: list[ShardStats]) -> dict:
        shards = sorted(acc, key=lambda s: s.file_name)
        n = max(sum(s.pixel_count for s in shards), 1)
        sums = sum((s.channel_sums for s in shards), np.zeros_like(shards[0].channel_sums))
        sq_sums = sum((s.channel_sq_sums for s in shards), np.zeros_like(shards[0].channel_sums))
        mean = sums / n
        std = np.sqrt(np.maximum(sq_sums / n - mean * mean, 0.0))
        counts = sum((s.class_counts for s in shards), np.zeros_like(shards[0].class_counts))
        content = hashlib.sha256("".join(s.content_sha256 for s in shards).encode())
        return {
            "files": [s.file_name for s in shards],
            "file_examples": {s.file_name: s.num_examples for s in shards},
            "num_examples": sum(s.num_examples for s in shards),
            "class_counts": [int(c) for c in counts],
            # Reported in the stored value space: x / 127.5 - 1.
            "pixel_mean": [float(m / 127.5 - 1.0) for m in mean],
            "pixel_std": [float(s / 127.5) for s in std],
            "source_content_sha256": content.hexdigest(),
            "bad_images": {
                "count": sum(s.bad_count for s in shards),
                "listed": [list(b) for s in shards for b in s.bad][:BAD_IMAGES_LISTED],
            },
        }


BAD_IMAGES_REPORT = "bad-images.json"  # written instead of the manifest: too many bad images


def write_manifest(
    _: None, output_dir: str, header: dict, splits: dict, max_bad_images: int
) -> str:
    """Write ``manifest.json`` last, once every shard of every split is published.

    With more than ``max_bad_images`` bad inputs the data set is not committed: the job writes
    BAD_IMAGES_REPORT instead, which the launcher reads back (from Dataflow too) and reports.
    """
    bad = sum(split["bad_images"]["count"] for split in splits.values())
    if bad > max_bad_images:
        report = {name: split["bad_images"] for name, split in sorted(splits.items())}
        path = storage.join(output_dir, BAD_IMAGES_REPORT)
        storage.write_text(path, json.dumps(report, indent=2) + "\n")
        return path
    manifest = {
        **header,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "splits": dict(sorted(splits.items())),
    }
    path = layout.DataDir(output_dir).manifest
    schema.validate_manifest(manifest, path)
    storage.write_text(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def build(
    pipeline: beam.Pipeline,
    source: sources.Source,
    chunks: list[sources.Chunk],
    output_dir: str,
    header: dict,
    layout: Layout,
    max_bad_images: int,
) -> None:
    """Add the whole job to ``pipeline``: write every shard, combine stats, then the manifest."""
    split_stats = (
        pipeline
        | "Chunks" >> beam.Create(chunks)
        | "Spread" >> beam.Reshuffle()
        | "WriteShards" >> beam.FlatMap(write_shard, source, output_dir, layout)
        | "SplitStats" >> beam.CombinePerKey(SplitStatsFn())
    )
    _ = (
        pipeline
        | "ManifestStart" >> beam.Create([None])
        | "WriteManifest"
        >> beam.Map(
            write_manifest,
            output_dir,
            header,
            beam.pvalue.AsDict(split_stats),
            max_bad_images,
        )
    )
