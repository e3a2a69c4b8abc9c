"""Training input speed: streamed shards → batches, from local disk and from a bucket.

    python -m benchmarks.input_pipeline --data_dir=DIR [--batches=300] [--bucket]
        [--json=benchmarks/results/input_pipeline.json]

Reads DIR's training split through ``trainer.data.make_dataset_fn`` (the trainer's own input
function, batch 64) and prints images/s, seconds to the first batch (fresh and resumed in the
middle of an epoch: what a resume costs) and bytes per stored image. ``--bucket`` also copies DIR
into a GCS emulator bucket (``gcp-storage-emulator`` on 127.0.0.1) and reads it from there.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from benchmarks import common as bench

BATCH = 64


class _Context:
    """One input pipeline, one replica: what the default strategy gives the input function."""

    input_pipeline_id, num_input_pipelines, num_replicas_in_sync = 0, 1, 1

    @staticmethod
    def get_per_replica_batch_size(batch: int) -> int:
        return batch


def measure(data_dir: str, batches: int, start_step: int) -> dict:
    from trainer import data

    manifest = data.read_manifest(data_dir)
    began = time.perf_counter()
    dataset = data.make_dataset_fn(data_dir, manifest, BATCH, 1, 0, start_step)(_Context())
    iterator = iter(dataset)
    next(iterator)
    first = time.perf_counter() - began
    began = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    seconds = time.perf_counter() - began
    return {"first_batch_s": first, "images_per_s": batches * BATCH / seconds}


def bytes_per_image(data_dir: str) -> float:
    from trainer import data

    split = data.read_manifest(data_dir).splits["train"]
    size = sum(os.path.getsize(os.path.join(data_dir, name)) for name in split.files)
    return size / split.num_examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--bucket", action="store_true")
    parser.add_argument("--json", default=os.path.join(bench.RESULTS_DIR, "input_pipeline.json"))
    args = parser.parse_args()

    from trainer import data

    manifest = data.read_manifest(args.data_dir)
    epoch_steps = manifest.examples("train") // BATCH
    places = {"local disk": args.data_dir}
    emulator = None
    if args.bucket:
        from common import storage
        from tests.gcs import BUCKET as GCS_BUCKET
        from tests.gcs import GcsEmulator

        emulator = GcsEmulator(tempfile.mkdtemp(prefix="bench-gcs-")).start()
        os.environ.update(emulator.env())
        storage._client.cache_clear()
        emulator.create_bucket()
        places["emulator bucket"] = f"gs://{GCS_BUCKET}/data"
        storage.copy_tree(args.data_dir, places["emulator bucket"])
    rows = []
    try:
        for place, directory in places.items():
            for label, start in (("fresh", 0), ("resumed mid-epoch", epoch_steps * 3 // 2)):
                rows.append(
                    {"read from": place, "start": label, **measure(directory, args.batches, start)}
                )
    finally:
        if emulator is not None:
            emulator.stop()
    shape = "x".join(map(str, manifest.spec.shape))
    bench.print_table(rows, ["read from", "start", "images_per_s", "first_batch_s"])
    stored = bytes_per_image(args.data_dir)
    print(f"{shape}: {stored:,.0f} bytes per stored image ({manifest.compression})")
    bench.write_json(
        args.json,
        {
            "benchmark": "input_pipeline",
            "data": manifest.spec.name,
            "image_shape": list(manifest.spec.shape),
            "batch": BATCH,
            "bytes_per_image": stored,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
