"""Where the main command's time goes: ``python -m pipeline.run``, as ``make run`` runs it.

    python -m benchmarks.main_command [--variant="NAME: TRAINER FLAGS"]... [--seeds=0,1,2]

Each run gets a fresh output directory and the variant's flags with ``--seed``; variants and seeds
alternate, so a slow patch of the host falls on all of them. The preprocess and export columns
are their stages' wall times. The train stage is split with the trainer's closing line and
its ``metrics.jsonl``: **steps** (the train steps at the run's steady rate), **trace** (what the
first logged interval took beyond that rate: tracing and the input pipeline's start),
**maintenance** (samples, evaluations, checkpoints), and **start** (the rest: the process, its
imports, reading the data, building the model, the evaluator's floor). FD and its real-data
floor come from the export's ``metrics.json``. The host's fp32 matmul peak is measured first, in
its own process. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks import common as bench
from common import layout

STAGES = ("preprocess", "train", "export")
SPLIT = ("preprocess", "start", "trace", "steps", "maintenance", "export")
DEFAULT_VARIANT = "make run: "  # pipeline.run's own defaults


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``"NAME: --flag=value ..."`` → the name and the trainer flags."""
    name, _, flags = text.partition(":")
    return name.strip(), shlex.split(flags)


def run_pipeline(output_dir: str, args: list[str]) -> tuple[dict[str, float], str]:
    """Run the main command; each stage's wall time (from when the command announces it to the
    next announcement) and its whole output."""
    marks: list[tuple[str, float]] = []
    lines: list[str] = []
    start = time.monotonic()
    with subprocess.Popen(
        [sys.executable, "-m", "pipeline.run", f"--output_dir={output_dir}", *args],
        cwd=bench.REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        for line in proc.stdout:
            lines.append(line)
            for stage in STAGES:
                if line.startswith(f"pipeline: {stage}: "):
                    marks.append((stage, time.monotonic()))
    output = "".join(lines)
    if proc.returncode != 0:
        raise SystemExit(f"pipeline.run failed (exit {proc.returncode}):\n{output[-3000:]}")
    end = time.monotonic()
    times = [t for _, t in marks] + [end]
    seconds = {stage: times[i + 1] - times[i] for i, (stage, _) in enumerate(marks)}
    seconds["total"] = end - start
    return seconds, output


TRAINER_TIMES = re.compile(r"trainer: stopped at .* after ([\d.]+)s in train steps and ([\d.]+)s")


def train_split(job_dir: str, train_wall: float, output: str) -> dict[str, float]:
    """The train stage's wall time as start, trace, steps and maintenance (see the module doc),
    from the trainer's closing line and its ``metrics.jsonl``."""
    steps_seconds, maintenance = (float(x) for x in TRAINER_TIMES.search(output).groups())
    with open(layout.JobDir(job_dir).metrics_log) as f:
        intervals = [r for r in map(json.loads, f) if "train_s" in r]
    steady = statistics.median(r["sec_per_kimg"] for r in intervals[1:] or intervals)
    trace = max(intervals[0]["train_s"] - steady * intervals[0]["kimg"], 0.0)
    return {
        "start": train_wall - steps_seconds - maintenance,
        "trace": trace,
        "steps": steps_seconds - trace,
        "maintenance": maintenance,
        "kimg": intervals[-1]["kimg"],
    }


def measure(args: list[str], seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="main-command-") as output_dir:
        seconds, output = run_pipeline(output_dir, [*args, f"--seed={seed}"])
        dirs = layout.RunDir(output_dir)
        split = train_split(dirs.job.path, seconds["train"], output)
        with open(dirs.export.metrics) as f:
            metrics = json.load(f)
    return {
        "seed": seed,
        "wall_s": seconds["total"],
        "preprocess": seconds["preprocess"],
        **split,
        "export": seconds["export"],
        "fd": metrics["model"]["frechet_distance"],
        "fd_floor": metrics["real_floor"]["frechet_distance"],
    }


def fp32_peak() -> float:
    code = "from benchmarks.train_throughput import matmul_peak; print(matmul_peak('float32'))"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=bench.REPO_ROOT, capture_output=True, text=True
    )
    return float(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", action="append", default=[], help="NAME: trainer flags")
    parser.add_argument("--seeds", default="0", help="comma-separated")
    parser.add_argument(
        "--out", default=os.path.join(bench.RESULTS_DIR, "main_command.json"), help="JSON path"
    )
    args = parser.parse_args()
    variants = dict(parse_variant(v) for v in args.variant or [DEFAULT_VARIANT])
    seeds = [int(s) for s in args.seeds.split(",")]
    peak = fp32_peak()
    print(f"host fp32 matmul peak: {peak:.0f} GFLOP/s", flush=True)
    runs: list[dict] = []
    for seed in seeds:
        for name, flags in variants.items():
            run = {"variant": name, "flags": flags, **measure(flags, seed)}
            runs.append(run)
            print(json.dumps(run), flush=True)
            bench.write_json(args.out, {"fp32_peak_gflops": peak, "runs": runs})
    bench.print_table(runs, ["variant", "seed", "wall_s", *SPLIT, "kimg", "fd", "fd_floor"])
    for name in variants:
        fds = [r["fd"] for r in runs if r["variant"] == name]
        walls = [r["wall_s"] for r in runs if r["variant"] == name]
        print(f"{name}: mean FD {statistics.mean(fds):.3f}, wall {statistics.mean(walls):.0f}s")


if __name__ == "__main__":
    main()
