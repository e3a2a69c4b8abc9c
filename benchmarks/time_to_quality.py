"""Quality per CPU-minute: the pipeline's default training vs the DCGAN tutorial, same budget.

    python -m benchmarks.time_to_quality [--minutes=10]

Trains the pipeline's default configuration (``--preset=pipeline``, stopped by ``--max_minutes``)
and the tutorial (``benchmarks/tutorial.py``) for the same wall-clock budget on the full MNIST, one
after the other, then scores both with the project's evaluator on 10,000 samples each and prints
them beside the real-data floor. Writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from benchmarks import common as bench
from benchmarks.train_throughput import ensure_data_dir

KEYS = (
    "frechet_distance",
    "classifier_score",
    "min_class_share",
    "class_entropy",
    "precision",
    "recall",
)


def run_tutorial(data_dir: str, minutes: float, classifier_dir: str, out: str) -> None:
    """In a child process: train the tutorial for ``minutes``, evaluate, write JSON to ``out``."""
    from benchmarks.tutorial import NOISE_DIM, Tutorial
    from preprocessing import sources
    from trainer import data, evaluation

    files = sources.resolve_idx_dir(bench.BUNDLED_MNIST)
    images, _, _ = sources.load_split(files["train"].images_path, files["train"].labels_path)
    tutorial = Tutorial(images, batch_size=256)
    batches = tutorial.batches()
    start, steps = time.monotonic(), 0
    while time.monotonic() - start < minutes * 60:
        tutorial.train_step(next(batches))
        steps += 1
    elapsed = time.monotonic() - start
    manifest = data.read_manifest(data_dir)
    evaluator = evaluation.make_evaluator(data_dir, manifest, classifier_dir)
    metrics = evaluator.evaluate(tutorial.generate, NOISE_DIM, conditional=False)
    with open(out, "w") as f:
        json.dump({"steps": steps, "images": steps * 256, "seconds": elapsed, "model": metrics}, f)


def run_project(data_dir: str, minutes: float, classifier_dir: str, workdir: str) -> dict:
    from trainer import presets

    job, export = os.path.join(workdir, "job"), os.path.join(workdir, "export")
    args = {"preset": presets.PIPELINE, "train_steps": "100000000", "eval_every": "0"}
    start = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer.task",
            f"--data_dir={data_dir}",
            f"--job_dir={job}",
            f"--max_minutes={minutes}",
            *(f"--{k}={v}" for k, v in args.items()),
        ],
        check=True,
        cwd=bench.REPO_ROOT,
    )
    elapsed = time.monotonic() - start
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.export",
            f"--job_dir={job}",
            f"--export_dir={export}",
            f"--classifier_dir={classifier_dir}",
        ],
        check=True,
        cwd=bench.REPO_ROOT,
    )
    with open(os.path.join(export, "metrics.json")) as f:
        metrics = json.load(f)
    batch = int(args["batch_size"])
    return {
        "steps": metrics["step"],
        "images": metrics["step"] * batch,
        "seconds": elapsed,
        "model": metrics["model"],
        "real_floor": metrics["real_floor"],
        "config": args,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument(
        "--data_dir", default=os.path.join(bench.REPO_ROOT, "runs", "quickstart", "data")
    )
    parser.add_argument(
        "--classifier_dir",
        default=os.path.join(bench.REPO_ROOT, "runs", "quickstart", "classifier"),
    )
    parser.add_argument("--json", default=os.path.join(bench.RESULTS_DIR, "time_to_quality.json"))
    parser.add_argument("--tutorial_child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tutorial_child:
        run_tutorial(args.data_dir, args.minutes, args.classifier_dir, args.tutorial_child)
        return

    data_dir = ensure_data_dir(args.data_dir)
    with tempfile.TemporaryDirectory(prefix="bench-ttq-") as workdir:
        project = run_project(data_dir, args.minutes, args.classifier_dir, workdir)
        tutorial_out = os.path.join(workdir, "tutorial.json")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.time_to_quality",
                f"--minutes={args.minutes}",
                f"--data_dir={data_dir}",
                f"--classifier_dir={args.classifier_dir}",
                f"--tutorial_child={tutorial_out}",
            ],
            check=True,
            cwd=bench.REPO_ROOT,
        )
        with open(tutorial_out) as f:
            tutorial = json.load(f)
    floor = project["real_floor"]
    rows = [
        {"variant": name, "kimg": r["images"] / 1000, **{k: r["model"][k] for k in KEYS}}
        for name, r in (("project default", project), ("tutorial", tutorial))
    ]
    rows.append({"variant": "real data (floor)", "kimg": "", **{k: floor[k] for k in KEYS}})
    bench.print_table(rows, ["variant", "kimg", *KEYS])
    ratio = tutorial["model"]["frechet_distance"] / project["model"]["frechet_distance"]
    print(f"Fréchet distance: tutorial / project = {ratio:.1f}× (target ≥ 10×)")
    bench.write_json(
        args.json,
        {
            "benchmark": "time_to_quality",
            "minutes": args.minutes,
            "project": project,
            "tutorial": tutorial,
            "fd_ratio_tutorial_over_project": ratio,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
