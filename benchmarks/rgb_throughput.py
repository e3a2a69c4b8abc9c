"""Training throughput at 64×64×3: the project's steps vs the keras-io DCGAN for CelebA faces.

    python -m benchmarks.rgb_throughput [--seconds=30] [--rounds=3] [--variant="PRESET FLAGS"]

On the Twemoji folder (``benchmarks/limited_data.py`` makes it once), alternates the keras-io
example's ``fit`` of its own ``train_step`` (``benchmarks/keras_io_dcgan.py``, batch 32) with the
project's step as ``--preset=auto`` trains such a folder (``limited``: ADA) and without
augmentation (``pipeline``), in the same precision (bf16 where the CPU has it, both with Keras'
``mixed_bfloat16`` policy; else fp32), for ``--seconds`` each in several rounds, and reports
median images/s, FLOPs per training image and MFU against this machine's matmul peak (the
columns of ``benchmarks.train_throughput``). FLOPs per training image: the project's 3·G + 7·D (that
script's count; penalties and augmentation uncounted); keras-io's 4·G + 8·D, as its D step runs
G forward once more and its G step draws fresh z.
"""

from __future__ import annotations

import argparse
import os
import time

from benchmarks import common as bench
from benchmarks import twemoji
from benchmarks.limited_data import ensure_twemoji
from benchmarks.train_throughput import (
    PRECISION_NAMES,
    ProjectRunner,
    cpu_has_bf16,
    forward_flops,
    matmul_peak,
    preset_config,
    speed_row,
)


class KerasIoRunner:
    """The keras-io example's ``fit`` on in-memory images, ``steps`` batches a call."""

    def __init__(self, images, precision: str):
        import keras

        from benchmarks import keras_io_dcgan

        policy = {"fp32": "float32", "bf16": "mixed_bfloat16"}[precision]
        keras.mixed_precision.set_global_policy(policy)
        self.gan = keras_io_dcgan.make_gan(images.shape[1:])
        keras.mixed_precision.set_global_policy("float32")
        self.dataset = keras_io_dcgan.dataset(images)
        self.name = f"keras-io dcgan ({policy})"
        self.precision = precision
        self.batch_size = keras_io_dcgan.BATCH_SIZE
        self.chunk = 2  # steps a call: seconds each on a CPU
        self.flops = 4 * forward_flops(self.gan.generator) + 8 * forward_flops(
            self.gan.discriminator
        )

    def run(self, steps: int) -> None:
        self.gan.fit(self.dataset, epochs=1, steps_per_epoch=steps, verbose=0)


def rates(runners: list, rounds: int, seconds: float, peaks: dict[str, float]) -> list[dict]:
    """Median images/s of each runner over ``rounds`` alternating rounds of at least
    ``seconds`` each (a keras-io step takes seconds here, the project's a fraction of one), with
    FLOPs and MFU."""
    for runner in runners:
        runner.run(runner.chunk)  # trace and warm up
    runs: dict[str, list[float]] = {r.name: [] for r in runners}
    for _ in range(rounds):
        for runner in runners:
            images, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                runner.run(runner.chunk)
                images += runner.chunk * runner.batch_size
            runs[runner.name].append(images / (time.perf_counter() - start))
    return [speed_row(runner, runs[runner.name], peaks) for runner in runners]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps_per_call", type=int, default=10)
    parser.add_argument("--variant", action="append", default=[], help='e.g. "limited mirror"')
    parser.add_argument("--cache", default=twemoji.DEFAULT_CACHE)
    parser.add_argument("--json", default=os.path.join(bench.RESULTS_DIR, "rgb_throughput.json"))
    args = parser.parse_args()
    from trainer import data

    data_dir = ensure_twemoji(args.cache)
    images = data.load_examples(data_dir, data.read_manifest(data_dir), "train").images
    peaks = {"fp32": matmul_peak("float32")}
    if cpu_has_bf16():
        peaks["bf16"] = matmul_peak("bfloat16")
    precision = "bf16" if "bf16" in peaks else "fp32"
    runners: list = [KerasIoRunner(images, precision)]
    for variant in args.variant or ["limited", "pipeline"]:
        config = preset_config(data_dir, variant)
        assert PRECISION_NAMES[config.mixed_precision] == precision, "same precision as keras-io"
        runner = ProjectRunner(f"project {variant}", config, args.steps_per_call)
        runner.chunk = args.steps_per_call
        runners.append(runner)
    rows = rates(runners, args.rounds, args.seconds, peaks)
    bench.print_table(
        rows, ["variant", "batch", "images_per_s", "mflop_per_image", "gflop_per_s", "mfu"]
    )
    by_name = {row["variant"]: row for row in rows}
    peer = by_name[runners[0].name]
    for runner in runners[1:]:
        mine = by_name[runner.name]
        print(
            f"{runner.name} / keras-io: {mine['images_per_s'] / peer['images_per_s']:.2f}× "
            f"images/s, {mine['mfu'] / peer['mfu']:.2f}× MFU"
        )
    print("matmul peak GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()))
    bench.write_json(
        args.json,
        {
            "benchmark": "rgb_throughput",
            "data": "twemoji",
            "seconds": args.seconds,
            "rounds": args.rounds,
            "matmul_peak_gflop_per_s": peaks,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
