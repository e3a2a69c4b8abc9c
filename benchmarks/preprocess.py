"""Preprocessing speed: the Beam job on the DirectRunner vs a plain Python loop, same records.

    python -m benchmarks.preprocess [--repeats=2] [--json=benchmarks/results/preprocess.json]

Times the full bundled MNIST (70,000 images) through the DirectRunner in-process and in
``multi_processing`` mode, and a single-process loop that writes the same records, alternating
the variants in one run. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks import common as bench


def plain_loop(source_dir: str, output_dir: str) -> None:
    """What a user would write without Beam: read, normalize, serialize, one file per split."""
    import tensorflow as tf

    from common import schema
    from preprocessing import sources

    files, _, _ = sources.validate_idx_dir(source_dir)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    for split, split_files in files.items():
        pixels, labels, _ = sources.load_split(split_files.images_path, split_files.labels_path)
        path = os.path.join(output_dir, f"{split}-00000-of-00001.tfrecord.gz")
        with tf.io.TFRecordWriter(path, options) as writer:
            for image, label in zip(schema.normalize(pixels), labels, strict=True):
                writer.write(schema.encode_example(image, label))


def beam_job(source_dir: str, output_dir: str, mode: str) -> None:
    cmd = [
        sys.executable,
        "-m",
        "preprocessing.run",
        f"--source={source_dir}",
        f"--output_dir={output_dir}",
        f"--direct_running_mode={mode}",
    ]
    if mode == "multi_processing":
        cmd.append(f"--direct_num_workers={os.cpu_count()}")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run(cmd, check=True, capture_output=True, env=env)


def plain_loop_process(source_dir: str, output_dir: str) -> None:
    """The loop in a fresh process too, so both sides pay the same interpreter and import costs."""
    code = "from benchmarks.preprocess import plain_loop\n"
    code += f"plain_loop({source_dir!r}, {output_dir!r})"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--source", default=bench.BUNDLED_MNIST)
    parser.add_argument("--json", default=os.path.join(bench.RESULTS_DIR, "preprocess.json"))
    args = parser.parse_args()

    variants = {
        "plain python loop": plain_loop_process,
        "beam direct (in_memory)": lambda s, o: beam_job(s, o, "in_memory"),
        "beam direct (multi_processing)": lambda s, o: beam_job(s, o, "multi_processing"),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, fn in variants.items():
            out = tempfile.mkdtemp(prefix="bench-preprocess-")
            start = time.perf_counter()
            fn(args.source, out)
            times[name].append(time.perf_counter() - start)
            shutil.rmtree(out)
    baseline = statistics.median(times["plain python loop"])
    rows = [
        {
            "variant": name,
            "median_s": statistics.median(t),
            "runs_s": t,
            "images_per_s": 70000 / statistics.median(t),
            "vs_plain_loop": statistics.median(t) / baseline,
        }
        for name, t in times.items()
    ]
    bench.print_table(rows, ["variant", "median_s", "images_per_s", "vs_plain_loop"])
    bench.write_json(args.json, {"benchmark": "preprocess", "images": 70000, "rows": rows})
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
