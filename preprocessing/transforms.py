"""The Beam transforms: IDX chunks → normalized tf.Examples in sharded TFRecords + manifest.

Elements are chunks of thousands of images (numpy arrays), never single rows, so per-element
overhead is paid per chunk. Workers read the IDX files themselves (chunk specs are tiny), so the
pipeline graph carries no data and runs the same on Dataflow as on the DirectRunner.
"""

import dataclasses
import datetime
import json
from collections.abc import Iterable, Iterator, Sequence

import apache_beam as beam
import numpy as np

from common import schema, storage
from preprocessing import sources


@dataclasses.dataclass(frozen=True)
class ChunkSpec:
    """Images ``[start, stop)`` of one split's IDX files."""

    files: sources.SplitFiles
    start: int
    stop: int


@dataclasses.dataclass
class Batch:
    """A chunk of one split after filtering: uint8 pixels [n, 784] and int64 labels [n]."""

    pixels: np.ndarray
    labels: np.ndarray


def chunk_specs(files: sources.SplitFiles, num_examples: int, chunk_size: int) -> list[ChunkSpec]:
    return [
        ChunkSpec(files, start, min(start + chunk_size, num_examples))
        for start in range(0, num_examples, chunk_size)
    ]


def read_chunk(spec: ChunkSpec, digits: Sequence[int]) -> Iterator[Batch]:
    pixels, labels, _ = sources.load_split(spec.files.images_path, spec.files.labels_path)
    pixels, labels = pixels[spec.start : spec.stop], labels[spec.start : spec.stop]
    keep = np.isin(labels, digits)
    if keep.any():
        yield Batch(pixels[keep], labels[keep].astype(np.int64))


def encode_batch(batch: Batch) -> Iterator[bytes]:
    images = schema.normalize(batch.pixels)
    for image, label in zip(images, batch.labels, strict=True):
        yield schema.encode_example(image, label)


class SplitStatsFn(beam.CombineFn):
    """Exact per-split statistics: example count, class counts, pixel sum and sum of squares.

    Sums run over the integer pixels, so merging in any order gives the same bits.
    """

    def create_accumulator(self) -> tuple[np.ndarray, int, int, int]:
        return np.zeros(schema.NUM_CLASSES, np.int64), 0, 0, 0

    def add_input(self, acc, batch: Batch):
        class_counts, pixel_count, pixel_sum, pixel_sq_sum = acc
        pixels = batch.pixels.astype(np.int64)
        return (
            class_counts + np.bincount(batch.labels, minlength=schema.NUM_CLASSES),
            pixel_count + pixels.size,
            pixel_sum + int(pixels.sum()),
            pixel_sq_sum + int((pixels * pixels).sum()),
        )

    def merge_accumulators(self, accumulators: Iterable):
        class_counts, pixel_count, pixel_sum, pixel_sq_sum = self.create_accumulator()
        for counts, n, s, sq in accumulators:
            class_counts = class_counts + counts
            pixel_count, pixel_sum, pixel_sq_sum = pixel_count + n, pixel_sum + s, pixel_sq_sum + sq
        return class_counts, pixel_count, pixel_sum, pixel_sq_sum

    def extract_output(self, acc) -> dict:
        class_counts, pixel_count, pixel_sum, pixel_sq_sum = acc
        mean = pixel_sum / max(pixel_count, 1)
        var = max(pixel_sq_sum / max(pixel_count, 1) - mean * mean, 0.0)
        # Reported in the stored value space: x / 127.5 - 1.
        return {
            "num_examples": int(class_counts.sum()),
            "class_counts": [int(c) for c in class_counts],
            "pixel_mean": mean / 127.5 - 1.0,
            "pixel_std": var**0.5 / 127.5,
        }


def write_manifest(
    _: None, output_dir: str, header: dict, split_names: Sequence[str], **side: object
) -> str:
    """Write ``manifest.json`` last, once every shard of every split is final.

    Stale shards of an earlier, never-committed run with another shard count are removed first,
    so the directory holds exactly what the manifest lists.
    """
    splits = {}
    for split in split_names:
        files = sorted(str(f).rsplit("/", 1)[-1] for f in side[f"{split}_files"])
        for stale in storage.list_files(output_dir):
            name = stale.rsplit("/", 1)[-1]
            if name.startswith(f"{split}-") and name not in files:
                storage.delete(stale)
        splits[split] = {**side[f"{split}_stats"], "files": files}
    manifest = {
        **header,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "splits": splits,
    }
    schema.validate_manifest(manifest, storage.join(output_dir, schema.MANIFEST_NAME))
    path = storage.join(output_dir, schema.MANIFEST_NAME)
    storage.write_text(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def build(
    pipeline: beam.Pipeline,
    files: dict[str, sources.SplitFiles],
    counts: dict[str, int],
    output_dir: str,
    header: dict,
    digits: Sequence[int],
    num_shards: int,
    compression: str,
    chunk_size: int,
) -> None:
    """Add the whole job to ``pipeline``: per split read → encode → write, stats, then manifest."""
    from apache_beam.io.filesystem import CompressionTypes

    compression_type = (
        CompressionTypes.GZIP if compression == "gzip" else CompressionTypes.UNCOMPRESSED
    )
    side = {}
    for split, split_files in files.items():
        batches = (
            pipeline
            | f"{split}/Chunks" >> beam.Create(chunk_specs(split_files, counts[split], chunk_size))
            | f"{split}/Spread" >> beam.Reshuffle()
            | f"{split}/Read" >> beam.FlatMap(read_chunk, digits=list(digits))
        )
        written = (
            batches
            | f"{split}/Encode" >> beam.FlatMap(encode_batch)
            | f"{split}/Write"
            >> beam.io.WriteToTFRecord(
                storage.join(output_dir, split),
                file_name_suffix=schema.COMPRESSION_SUFFIX[compression],
                num_shards=num_shards,
                compression_type=compression_type,
            )
        )
        stats = batches | f"{split}/Stats" >> beam.CombineGlobally(SplitStatsFn())
        side[f"{split}_files"] = beam.pvalue.AsList(written)
        side[f"{split}_stats"] = beam.pvalue.AsSingleton(stats)
    _ = (
        pipeline
        | "Manifest/Start" >> beam.Create([None])
        | "Manifest/Write" >> beam.Map(write_manifest, output_dir, header, list(files), **side)
    )
