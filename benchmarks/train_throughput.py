"""Training throughput: the project's DCGAN step vs the TensorFlow DCGAN tutorial's, same batch.

    python -m benchmarks.train_throughput [--batch_size=256] [--steps=60] [--repeats=3]

Alternates runs of the tutorial's loop (``benchmarks/tutorial.py``) and the project's trainer
step (``--architecture=dcgan``, fp32 and bf16) in one process, several repeats, and reports
median images/s and the ratio. It also measures this machine's matmul peak (fp32, and bf16
where the CPU has it), counts the model's FLOPs per training image analytically, and prints the
achieved fraction of peak (MFU) for the precision each variant computes in.

FLOPs per training image (both steps have the same structure: one G forward, D on real and on
fake, two tapes): 3·G + 7·D, where G and D are one forward pass of each network (2 FLOPs per
MAC of every Dense/Conv layer): G forward + backward (3), D forward on real and fake (2), D
backward for its weights and inputs on both (4), and the generator tape's own pass back through
D to the fake images (1).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from benchmarks import common as bench


def layer_macs(layer, input_shape: tuple) -> int:
    """Multiply-accumulates of one Dense / Conv2D / Conv2DTranspose layer per image."""
    from keras import layers

    inner = getattr(layer, "layer", layer)  # SpectralNormalization wraps a layer
    output_shape = inner.compute_output_shape((1, *input_shape))[1:]
    if isinstance(inner, layers.Dense):
        return int(np.prod(input_shape[:-1])) * input_shape[-1] * inner.units
    if isinstance(inner, layers.Conv2DTranspose):
        kh, kw = inner.kernel_size
        return input_shape[0] * input_shape[1] * input_shape[2] * inner.filters * kh * kw
    if isinstance(inner, layers.Conv2D):
        kh, kw = inner.kernel_size
        return output_shape[0] * output_shape[1] * inner.filters * input_shape[2] * kh * kw
    return 0


def forward_flops(model) -> int:
    total = 0
    for layer in model.layers:
        try:
            shape = tuple(layer.input.shape[1:]) if not isinstance(layer.input, list) else None
        except (AttributeError, ValueError):
            shape = None
        if shape and None not in shape:
            total += 2 * layer_macs(layer, shape)
    return total


def train_flops_per_image(generator, discriminator) -> int:
    return 3 * forward_flops(generator) + 7 * forward_flops(discriminator)


def matmul_peak(dtype: str, n: int = 4096, repeats: int = 5) -> float:
    """Best GFLOP/s of an n×n matmul in ``dtype`` (TF, all cores)."""
    import tensorflow as tf

    a = tf.random.normal([n, n], dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(tf.transpose(a), dtype)
    matmul = tf.function(lambda x, y: tf.matmul(x, y))
    matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def cpu_has_bf16() -> bool:
    from trainer import config, strategy

    return config.auto_mixed_precision("cpu", strategy.cpu_flags()) == "bf16"


class TutorialRunner:
    name = "tutorial (fp32)"
    precision = "fp32"

    def __init__(self, images: np.ndarray, batch_size: int):
        import keras

        from benchmarks.tutorial import Tutorial

        keras.mixed_precision.set_global_policy("float32")
        self.tutorial = Tutorial(images, batch_size)
        self.batch_size = batch_size
        self.batches = self.tutorial.batches()
        self.flops = train_flops_per_image(self.tutorial.generator, self.tutorial.discriminator)

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.tutorial.train_step(next(self.batches))
        self.tutorial.generator.trainable_variables[0].numpy()  # wait for the last step


class ProjectRunner:
    def __init__(
        self,
        data_dir: str,
        batch_size: int,
        mixed_precision: str,
        steps_per_call: int,
        xla: bool = False,
    ):
        import keras
        import tensorflow as tf

        from trainer import data
        from trainer.config import MIXED_PRECISION_POLICIES, TrainConfig
        from trainer.gan import Gan

        self.precision = {"none": "fp32", "bf16": "bf16"}[mixed_precision]
        self.name = f"project dcgan ({self.precision}{', xla' if xla else ''})"
        keras.mixed_precision.set_global_policy(MIXED_PRECISION_POLICIES[mixed_precision])
        config = TrainConfig(
            data_dir=data_dir,
            job_dir="unused",
            architecture="dcgan",
            batch_size=batch_size,
            latent_dim=100,
            mixed_precision=mixed_precision,
            strategy="default",
            xla=xla,
        )
        strategy = tf.distribute.get_strategy()
        manifest = data.read_manifest(data_dir)
        self.gan = Gan(config, data.data_spec(manifest), strategy)
        dataset = strategy.distribute_datasets_from_function(
            data.make_dataset_fn(data_dir, manifest, batch_size, 1, 0, start_step=0)
        )
        self.iterator = iter(dataset)
        self.train = self.gan.make_train_function()
        self.steps_per_call = steps_per_call
        self.batch_size = batch_size
        self.flops = train_flops_per_image(self.gan.generator, self.gan.discriminator)
        keras.mixed_precision.set_global_policy("float32")

    def run(self, steps: int) -> None:
        import tensorflow as tf

        done = 0
        while done < steps:
            n = min(self.steps_per_call, steps - done)
            metrics, _ = self.train(self.iterator, tf.constant(n, tf.int64))
            done += n
        float(metrics["d_loss"])  # wait for the last call


def ensure_data_dir(data_dir: str | None) -> str:
    if data_dir and os.path.exists(os.path.join(data_dir, "manifest.json")):
        return data_dir
    import subprocess
    import sys
    import tempfile

    out = data_dir or os.path.join(tempfile.gettempdir(), "gan-bench-data")
    subprocess.run(
        [sys.executable, "-m", "preprocessing.run", f"--output_dir={out}"],
        check=True,
        cwd=bench.REPO_ROOT,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=60, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps_per_call", type=int, default=10)
    parser.add_argument("--xla", action="store_true", help="also time the XLA-compiled step")
    parser.add_argument(
        "--data_dir", default=os.path.join(bench.REPO_ROOT, "runs", "quickstart", "data")
    )
    parser.add_argument("--json", default=os.path.join(bench.RESULTS_DIR, "train_throughput.json"))
    args = parser.parse_args()

    from preprocessing import sources

    data_dir = ensure_data_dir(args.data_dir)
    files = sources.resolve_idx_dir(bench.BUNDLED_MNIST)
    images, _, _ = sources.load_split(files["train"].images_path, files["train"].labels_path)

    peaks = {"fp32": matmul_peak("float32")}
    if cpu_has_bf16():
        peaks["bf16"] = matmul_peak("bfloat16")
    runners = [TutorialRunner(images, args.batch_size)]
    precisions = ["none", "bf16"] if "bf16" in peaks else ["none"]
    runners += [
        ProjectRunner(data_dir, args.batch_size, mp, args.steps_per_call) for mp in precisions
    ]
    if args.xla:
        runners += [
            ProjectRunner(data_dir, args.batch_size, mp, args.steps_per_call, xla=True)
            for mp in precisions
        ]
    for runner in runners:
        runner.run(args.warmup)  # trace and warm up
    times: dict[str, list[float]] = {r.name: [] for r in runners}
    for _ in range(args.repeats):
        for runner in runners:  # alternate, so drift hits every variant alike
            start = time.perf_counter()
            runner.run(args.steps)
            times[runner.name].append(args.steps * args.batch_size / (time.perf_counter() - start))
    baseline = statistics.median(times[runners[0].name])
    rows = []
    for runner in runners:
        rate = statistics.median(times[runner.name])
        achieved = rate * runner.flops / 1e9
        rows.append(
            {
                "variant": runner.name,
                "images_per_s": rate,
                "runs_images_per_s": times[runner.name],
                "vs_tutorial": rate / baseline,
                "mflop_per_image": runner.flops / 1e6,
                "gflop_per_s": achieved,
                "peak_gflop_per_s": peaks[runner.precision],
                "mfu": achieved / peaks[runner.precision],
            }
        )
    bench.print_table(
        rows,
        ["variant", "images_per_s", "vs_tutorial", "mflop_per_image", "gflop_per_s", "mfu"],
    )
    print("matmul peak GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()))
    bench.write_json(
        args.json,
        {
            "benchmark": "train_throughput",
            "batch_size": args.batch_size,
            "steps": args.steps,
            "repeats": args.repeats,
            "matmul_peak_gflop_per_s": peaks,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
