"""Where the project's train step spends its time: TensorFlow profiler, by op kind.

    python -m benchmarks.profile_step [--config=pipeline] [--variant="pipeline batch_size=64"]
    python -m benchmarks.profile_step --config=dcgan [--precision=bf16] [--batch_size=256]
    python -m benchmarks.profile_step --ops=40   # also the 40 costliest ops by scoped name

Traces ``--steps`` steps of a step ``train_throughput`` times (the pipeline default, as
``pipeline.run`` trains it; or the tutorial's networks at ``--batch_size``) with ``tf.profiler``
and sums the kernel time of every op on TensorFlow's compute threads
per step, grouped by kind (convolutions by network and pass, dropout, batch norm, activations,
the rest). Kernel time is summed over threads: the executor runs independent ops side by side
on the cores, so the column adds up to about cores × step time. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import tempfile
import time

from benchmarks import common as bench
from benchmarks.train_throughput import ProjectRunner, ensure_data_dir, preset_config

# (kind, test on "op type", test on the op's scoped name); the first match wins.
KINDS = (
    ("convolution", lambda op, name: "Conv2D" in op),
    ("dense (matmul)", lambda op, name: "MatMul" in op),
    ("dropout", lambda op, name: "dropout" in name),
    ("batch norm", lambda op, name: "batch_normalization" in name),
    ("activations", lambda op, name: "LeakyRelu" in op or "Tanh" in op),
    ("optimizer + EMA", lambda op, name: "adam" in name.lower() or "Assign" in op),
)


def kind_of(op: str, name: str) -> str:
    for kind, matches in KINDS:
        if matches(op, name):
            return kind
    return "other"


def network_of(name: str) -> str:
    network = "G" if "generator" in name else "D" if "discriminator" in name else ""
    return f"{network} {'backward' if 'gradient_tape' in name else 'forward'}" if network else ""


def kernel_times(logdir: str, steps: int) -> tuple[collections.Counter, collections.Counter]:
    """ms per step of each (kind, network pass), and of each op by its scoped name, from the
    trace's compute-thread events."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    totals: collections.Counter = collections.Counter()
    ops: collections.Counter = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name or "::" in name:  # executor bookkeeping, not a kernel
                    continue
                scoped, op = name.rsplit(":", 1)
                kind = kind_of(op, scoped)
                where = network_of(scoped) if kind == "convolution" else ""
                ms = event.duration_ps / 1e9 / steps
                totals[(kind, where)] += ms
                ops[name] += ms
    return totals, ops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--config",
        choices=("dcgan", "pipeline"),
        default="pipeline",
        help="pipeline: the pipeline preset's step (its batch and precision); dcgan: the "
        "tutorial's shape at --batch_size and --precision",
    )
    parser.add_argument(
        "--variant",
        default="pipeline",
        help="with --config=pipeline: a preset and the trainer flags it adds, as in "
        "train_throughput: 'pipeline batch_size=64'",
    )
    parser.add_argument("--precision", choices=("none", "bf16"), default="bf16")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument(
        "--data_dir", default=os.path.join(bench.REPO_ROOT, "runs", "quickstart", "data")
    )
    parser.add_argument(
        "--ops", type=int, default=0, help="also list the N ops with the most kernel time"
    )
    parser.add_argument("--json", default=os.path.join(bench.RESULTS_DIR, "profile_step.json"))
    args = parser.parse_args()

    import tensorflow as tf

    data_dir = ensure_data_dir(args.data_dir)
    if args.config == "pipeline":
        runner = ProjectRunner(args.variant, preset_config(data_dir, args.variant), 10)
    else:
        runner = ProjectRunner.dcgan(data_dir, args.batch_size, args.precision, 10)
    batch = runner.batch_size
    runner.run(20)  # trace and warm up
    start = time.perf_counter()
    runner.run(20)
    step_ms = (time.perf_counter() - start) / 20 * 1e3
    with tempfile.TemporaryDirectory(prefix="profile-step-") as logdir:
        tf.profiler.experimental.start(logdir)
        runner.run(args.steps)
        tf.profiler.experimental.stop()
        totals, ops = kernel_times(logdir, args.steps)
    kernel_ms = sum(totals.values())
    rows = [
        {
            "kind": kind,
            "pass": where,
            "kernel ms/step": round(ms, 1),
            "share": f"{100 * ms / kernel_ms:.0f}%",
        }
        for (kind, where), ms in totals.most_common()
        if ms >= 0.5
    ]
    print(
        f"{runner.name}, batch {batch}: {step_ms:.0f} ms/step "
        f"({batch / step_ms * 1e3:.0f} images/s); kernel time {kernel_ms:.0f} ms/step "
        f"summed over {os.cpu_count()} cores"
    )
    bench.print_table(rows, ["kind", "pass", "kernel ms/step", "share"])
    if args.ops:
        top = [
            {"op": name, "kernel ms/step": round(ms, 2)} for name, ms in ops.most_common(args.ops)
        ]
        bench.print_table(top, ["op", "kernel ms/step"])
    bench.write_json(
        args.json,
        {
            "benchmark": "profile_step",
            "variant": runner.name,
            "batch_size": batch,
            "step_ms": step_ms,
            "kernel_ms_per_step": kernel_ms,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
