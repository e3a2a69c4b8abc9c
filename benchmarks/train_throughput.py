"""Training throughput: the project's steps vs the TensorFlow DCGAN tutorial's, same batch.

    python -m benchmarks.train_throughput [--batch_size=256] [--steps=60] [--repeats=3]
                                          [--baseline=COMMIT] [--variant="PRESET FLAGS"] [--xla]

Alternates runs of the tutorial's loop (``benchmarks/tutorial.py``, fp32 and with Keras'
one-line ``mixed_bfloat16`` policy: the strongest cheap peer), the project's trainer step on the
tutorial's shape (``--architecture=dcgan``, width 64, fp32 and bf16), and the pipeline's default
configuration as ``pipeline.run`` trains it (``--preset=pipeline``: class-conditional, G at width
16 and D at 32, batch 64, EMA, ``auto`` precision; in a child process), several repeats, and
reports median images/s and the ratios. ``--variant="PRESET FLAG=VALUE ..."`` (repeatable)
adds a preset with trainer flags, e.g. ``"unconditional penalty_every=16"``.
``--baseline=COMMIT`` (repeatable) adds the pipeline default's step as that commit's trainer
runs it (a git worktree, another child), alternated in the same rounds: a speed-up measured in
one run, on one machine state. bf16 variants run where the CPU has bf16. It also measures this
machine's matmul peak (fp32, and bf16 where the CPU has it), counts the model's FLOPs per
training image analytically, and prints the achieved fraction of peak (MFU) for the precision
each variant computes in.

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
    def __init__(self, images: np.ndarray, batch_size: int, precision: str = "fp32"):
        import keras

        from benchmarks.tutorial import Tutorial

        # What any user can do: Keras' one-line policy around the unchanged tutorial.
        policy = {"fp32": "float32", "bf16": "mixed_bfloat16"}[precision]
        self.name = f"tutorial ({policy})"
        self.precision = precision
        keras.mixed_precision.set_global_policy(policy)
        self.tutorial = Tutorial(images, batch_size)
        keras.mixed_precision.set_global_policy("float32")
        self.batch_size = batch_size
        self.batches = self.tutorial.batches()
        self.flops = train_flops_per_image(self.tutorial.generator, self.tutorial.discriminator)

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.tutorial.train_step(next(self.batches))
        self.tutorial.generator.trainable_variables[0].numpy()  # wait for the last step


PRECISION_NAMES = {"none": "fp32", "bf16": "bf16"}  # --mixed_precision → the peak it runs at


def preset_config(data_dir: str, variant: str = "pipeline"):
    """A preset as ``pipeline.run`` trains it here (``auto`` precision resolved), with the
    trainer flags a ``variant`` adds to it: ``"unconditional penalty_every=16"``."""
    import dataclasses

    from trainer import config as config_lib
    from trainer import strategy as strategy_lib

    preset, *flags = variant.split()
    # The trainer's own reading of --name=value lines types the added flags.
    lines = [f"--data_dir={data_dir}", "--job_dir=unused", *(f"--{flag}" for flag in flags)]
    typed = config_lib.from_flags_text("\n".join(lines), f"variant {variant!r}")
    given = {flag.split("=", 1)[0] for flag in flags}
    defaults = {f.name: f.default for f in dataclasses.fields(config_lib.TrainConfig)}
    values = {**defaults, "data_dir": data_dir, "job_dir": "unused", "preset": preset}
    values.update({name: getattr(typed, name) for name in given}, strategy="default")
    config = config_lib.resolve(values, given={"strategy", *given})
    precision = config_lib.auto_mixed_precision("cpu", strategy_lib.cpu_flags())
    return dataclasses.replace(config, mixed_precision=precision)


class ProjectRunner:
    """The project's train step (``Gan.make_train_function``) on the trainer's own input."""

    def __init__(self, name: str, config, steps_per_call: int):
        import keras
        import tensorflow as tf

        from trainer import data
        from trainer.config import MIXED_PRECISION_POLICIES
        from trainer.gan import Gan

        self.precision = PRECISION_NAMES[config.mixed_precision]
        self.name = name
        keras.mixed_precision.set_global_policy(MIXED_PRECISION_POLICIES[config.mixed_precision])
        strategy = tf.distribute.get_strategy()
        manifest = data.read_manifest(config.data_dir)
        self.gan = Gan(config, manifest.spec, strategy)
        dataset = strategy.distribute_datasets_from_function(
            data.make_dataset_fn(config.data_dir, manifest, config.batch_size, 1, 0, start_step=0)
        )
        self.iterator = iter(dataset)
        self.train = self.gan.make_train_function()
        self.steps_per_call = steps_per_call
        self.batch_size = config.batch_size
        self.flops = train_flops_per_image(self.gan.generator, self.gan.discriminator)
        keras.mixed_precision.set_global_policy("float32")

    @classmethod
    def dcgan(
        cls,
        data_dir: str,
        batch_size: int,
        mixed_precision: str,
        steps_per_call: int,
        xla: bool = False,
    ) -> ProjectRunner:
        """The tutorial's networks and shape (width 64, unconditional, no EMA change)."""
        from trainer.config import TrainConfig

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
        precision = PRECISION_NAMES[mixed_precision]
        return cls(f"project dcgan ({precision}{', xla' if xla else ''})", config, steps_per_call)

    def run(self, steps: int) -> None:
        import tensorflow as tf

        done = 0
        while done < steps:
            n = min(self.steps_per_call, steps - done)
            metrics, _ = self.train(self.iterator, tf.constant(n, tf.int64))
            done += n
        float(metrics["d_loss"])  # wait for the last call


class ChildRunner:
    """The pipeline default's step in its own process, optionally from another commit's trainer.

    The child imports ``trainer`` from ``source`` (a git worktree of the baseline commit, with its
    ``benchmarks/`` removed so this file's harness is used) and answers ``run N`` lines on stdin
    with ``done``: the parent times the round trip, as it times the in-process runners.
    """

    def __init__(self, name: str, data_dir: str, steps_per_call: int, source: str = ""):
        import subprocess
        import sys

        path = os.pathsep.join(p for p in (source, bench.REPO_ROOT) if p)
        self.name = name
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.train_throughput",
                f"--child={data_dir}",
                f"--steps_per_call={steps_per_call}",
            ],
            cwd=source or bench.REPO_ROOT,
            env={**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "3"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        header = self._read().split()
        self.precision, self.batch_size, self.flops = header[0], int(header[1]), int(header[2])

    def _read(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name}: the child process exited")
        return line

    def run(self, steps: int) -> None:
        self.proc.stdin.write(f"run {steps}\n")
        self.proc.stdin.flush()
        self._read()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def serve_child(data_dir: str, steps_per_call: int) -> None:
    """The child's side of ``ChildRunner``: header line, then ``done`` per ``run N``."""
    import sys

    runner = ProjectRunner("child", preset_config(data_dir), steps_per_call)
    print(runner.precision, runner.batch_size, runner.flops, flush=True)
    for line in sys.stdin:
        runner.run(int(line.split()[1]))
        print("done", flush=True)


def baseline_worktree(commit: str, where: str) -> str:
    """A checkout of ``commit`` whose trainer the baseline child imports."""
    import shutil
    import subprocess

    subprocess.run(
        ["git", "worktree", "add", "--detach", "-f", where, commit],
        cwd=bench.REPO_ROOT,
        check=True,
        capture_output=True,
    )
    shutil.rmtree(os.path.join(where, "benchmarks"))
    return where


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
    parser.add_argument("--steps", type=int, default=60, help="timed steps per run (batch 256)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps_per_call", type=int, default=10)
    parser.add_argument("--xla", action="store_true", help="also time the XLA-compiled step")
    parser.add_argument(
        "--baseline",
        action="append",
        default=[],
        help="A commit: also time the pipeline default's step as that commit's trainer runs it "
        "(repeatable: several commits in the same rounds).",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help='A preset and trainer flags to time too, e.g. "unconditional penalty_every=16" '
        "(repeatable; in this process, alternated with the rest).",
    )
    parser.add_argument(
        "--data_dir", default=os.path.join(bench.REPO_ROOT, "runs", "quickstart", "data")
    )
    parser.add_argument("--json", default=os.path.join(bench.RESULTS_DIR, "train_throughput.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        serve_child(args.child, args.steps_per_call)
        return
    from common.cli import UserError

    for variant in args.variant:  # before minutes of set-up, not after
        try:
            preset_config(args.data_dir, variant)
        except (UserError, ValueError) as e:
            parser.error(f"--variant={variant!r}: {e}")

    import tempfile

    from preprocessing import sources

    data_dir = ensure_data_dir(args.data_dir)
    files = sources.resolve_idx_dir(bench.BUNDLED_MNIST)
    images, _, _ = sources.load_split(files["train"].images_path, files["train"].labels_path)

    peaks = {"fp32": matmul_peak("float32")}
    if cpu_has_bf16():
        peaks["bf16"] = matmul_peak("bfloat16")
    precisions = {name: flag for flag, name in PRECISION_NAMES.items()}
    runners: list = [TutorialRunner(images, args.batch_size, p) for p in peaks]
    runners += [
        ProjectRunner.dcgan(data_dir, args.batch_size, precisions[p], args.steps_per_call)
        for p in peaks
    ]
    runners += [
        ProjectRunner(variant, preset_config(data_dir, variant), args.steps_per_call)
        for variant in args.variant
    ]
    if args.xla:
        runners += [
            ProjectRunner.dcgan(data_dir, args.batch_size, precisions[p], args.steps_per_call, True)
            for p in peaks
        ]
    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as scratch:
        default = ChildRunner("pipeline default", data_dir, args.steps_per_call)
        children = [default]
        for commit in args.baseline:
            source = baseline_worktree(commit, os.path.join(scratch, commit))
            children.append(
                ChildRunner(f"pipeline default @ {commit}", data_dir, args.steps_per_call, source)
            )
        try:
            rows = measure([*runners, *children], args, peaks)
        finally:
            for child in children:
                child.close()
            if args.baseline:
                import subprocess

                subprocess.run(["git", "worktree", "prune"], cwd=bench.REPO_ROOT, check=False)
    columns = ["variant", "batch", "images_per_s", "mflop_per_image", "gflop_per_s", "mfu"]
    bench.print_table(rows, columns)
    by_name = {row["variant"]: row["images_per_s"] for row in rows}
    for precision, policy in (("fp32", "float32"), ("bf16", "mixed_bfloat16")):
        if precision in peaks:
            ratio = by_name[f"project dcgan ({precision})"] / by_name[f"tutorial ({policy})"]
            print(f"project / tutorial at batch {args.batch_size}, {precision}: {ratio:.2f}×")
    for commit in args.baseline:
        ratio = by_name["pipeline default"] / by_name[f"pipeline default @ {commit}"]
        print(f"pipeline default step: {ratio:.2f}× commit {commit}")
    print("matmul peak GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()))
    bench.write_json(
        args.json,
        {
            "benchmark": "train_throughput",
            "batch_size": args.batch_size,
            "steps": args.steps,
            "repeats": args.repeats,
            "baselines": args.baseline,
            "variants": args.variant,
            "matmul_peak_gflop_per_s": peaks,
            "rows": rows,
        },
    )


def measure(runners: list, args: argparse.Namespace, peaks: dict[str, float]) -> list[dict]:
    """Median images/s of each runner over ``repeats`` alternating rounds, with FLOPs and MFU."""
    # The same images per timed run for every variant: batch-64 steps run 4× as many.
    steps = {r.name: max(1, args.steps * args.batch_size // r.batch_size) for r in runners}
    for runner in runners:
        runner.run(args.warmup)  # trace and warm up
    times: dict[str, list[float]] = {r.name: [] for r in runners}
    for _ in range(args.repeats):
        for runner in runners:  # alternate, so drift hits every variant alike
            start = time.perf_counter()
            runner.run(steps[runner.name])
            elapsed = time.perf_counter() - start
            times[runner.name].append(steps[runner.name] * runner.batch_size / elapsed)
    return [speed_row(runner, times[runner.name], peaks) for runner in runners]


def speed_row(runner, runs: list[float], peaks: dict[str, float]) -> dict:
    """A runner's median images/s over ``runs``, its FLOPs and MFU against its precision's peak."""
    rate = statistics.median(runs)
    achieved = rate * runner.flops / 1e9
    return {
        "variant": runner.name,
        "batch": runner.batch_size,
        "images_per_s": rate,
        "runs_images_per_s": runs,
        "mflop_per_image": runner.flops / 1e6,
        "gflop_per_s": achieved,
        "peak_gflop_per_s": peaks[runner.precision],
        "mfu": achieved / peaks[runner.precision],
    }


if __name__ == "__main__":
    main()
