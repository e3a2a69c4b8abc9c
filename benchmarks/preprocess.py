"""Preprocessing speed: the Beam job on the DirectRunner vs a plain Python loop, same records.

    python -m benchmarks.preprocess [--repeats=2] [--json=benchmarks/results/preprocess.json]
    python -m benchmarks.preprocess --png_folder=20000 --json=benchmarks/results/preprocess_png.json

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

import numpy as np

from benchmarks import common as bench


def plain_loop(source_dir: str, output_dir: str, image_size: int = 0) -> None:
    """What a user would write without Beam: the same decode, fit, normalize and serialize, one
    file per split, one image at a time in one process."""
    import tensorflow as tf

    from common import schema
    from preprocessing import images, sources

    source = sources.resolve(source_dir, False, 0, 10, None)
    plan = source.plan()
    height, width, channels = plan.native_shape
    shape = (image_size or height, image_size or width, channels)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    for split in plan.counts:
        (chunk,) = source.chunks(split, 1)
        path = os.path.join(output_dir, f"{split}-00000-of-00001.tfrecord.gz")
        with tf.io.TFRecordWriter(path, options) as writer:
            for _, content, label in source.read(chunk):
                pixels = images.decode(content) if isinstance(content, bytes) else content
                pixels = images.fit(pixels, shape, resize=bool(image_size))
                writer.write(schema.encode_example(schema.normalize(pixels), label))


def make_png_folder(root: str, count: int, size: int = 64) -> str:
    """``count`` RGB PNGs of ``size``² (smooth colour fields plus noise: not trivially small)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    os.makedirs(root, exist_ok=True)
    for i in range(count):
        colour = rng.random(3, dtype=np.float32)
        field = ramp[:, None, None] * colour + ramp[None, :, None] * (1 - colour)
        pixels = np.clip(field * 200 + rng.normal(0, 12, (size, size, 3)), 0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(os.path.join(root, f"{i:06d}.png"))
    return root


def beam_job(source_dir: str, output_dir: str, mode: str, image_size: int = 0) -> None:
    cmd = [
        sys.executable,
        "-m",
        "preprocessing.run",
        f"--source={source_dir}",
        f"--output_dir={output_dir}",
        f"--direct_running_mode={mode}",
        f"--image_size={image_size}",
    ]
    if mode == "multi_processing":
        cmd.append(f"--direct_num_workers={os.cpu_count()}")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run(cmd, check=True, capture_output=True, env=env)


def plain_loop_process(source_dir: str, output_dir: str, image_size: int = 0) -> None:
    """The loop in a fresh process too, so both sides pay the same interpreter and import costs."""
    code = "from benchmarks.preprocess import plain_loop\n"
    code += f"plain_loop({source_dir!r}, {output_dir!r}, {image_size})"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--source", default=bench.BUNDLED_MNIST)
    parser.add_argument(
        "--png_folder",
        type=int,
        default=0,
        help="Instead of --source: make a folder of this many 64x64 RGB PNGs (20000 in the README)",
    )
    parser.add_argument("--json", default=os.path.join(bench.RESULTS_DIR, "preprocess.json"))
    args = parser.parse_args()

    scratch = tempfile.mkdtemp(prefix="bench-preprocess-source-")
    size = 0
    if args.png_folder:
        args.source = make_png_folder(os.path.join(scratch, "pngs"), args.png_folder)
        size = 64
    count = args.png_folder or 70000
    variants = {
        "plain python loop": lambda s, o: plain_loop_process(s, o, size),
        "beam direct (in_memory)": lambda s, o: beam_job(s, o, "in_memory", size),
        "beam direct (multi_processing)": lambda s, o: beam_job(s, o, "multi_processing", size),
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
            "images_per_s": count / statistics.median(t),
            "vs_plain_loop": statistics.median(t) / baseline,
        }
        for name, t in times.items()
    ]
    bench.print_table(rows, ["variant", "median_s", "images_per_s", "vs_plain_loop"])
    shutil.rmtree(scratch)
    source = f"{count} 64x64 RGB PNGs" if args.png_folder else args.source
    bench.write_json(
        args.json, {"benchmark": "preprocess", "source": source, "images": count, "rows": rows}
    )
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
