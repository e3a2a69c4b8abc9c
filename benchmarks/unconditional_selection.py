"""How the unconditional default was picked: candidate configurations, same wall-clock budget.

    python -m benchmarks.unconditional_selection [--minutes=5 | --kimg=N] [--only=NAME ...]

Each candidate is the pipeline preset with ``--noconditional`` and its own flags (loss, gradient
penalties, learning rates, widths, batch, EMA, self-conditioning clusters), trained for
``--minutes`` on the full MNIST one after the other, then exported and scored against the
real-data floor. The budget is wall time,
not images: a penalty's double backprop costs steps, and that cost is part of its score.
``--kimg`` trains every candidate on the same number of images instead (quality per image,
independent of the machine and of whatever else runs on it; the table's img/s column then tells
the cost). Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile

from benchmarks import common as bench
from benchmarks.time_to_quality import KEYS, on_images, run_project
from benchmarks.train_throughput import ensure_data_dir
from trainer import presets, settings

TUTORIAL_OBJECTIVE = {f.name: f.default for f in dataclasses.fields(settings.TrainConfig)}

# The pipeline preset's networks with the objective it had before this selection: the DCGAN
# tutorial's (TrainConfig's defaults for every field the zero-centred objective sets, and the
# dcgan architecture's own dropout), so every candidate below is measured from the same start.
BASE = {
    "preset": "pipeline",
    "conditional": "false",
    **presets.WIDTH_32,  # the pipeline preset's width then, G and D alike
    **{name: TUTORIAL_OBJECTIVE[name] for name in presets.ZERO_CENTRED_GAN},
    "d_dropout": 0.3,
}
ZERO_CENTRED = {"loss": "relativistic", "d_dropout": "0"}  # R3GAN: RpGAN + R1 + R2, no tricks
LAZY_R1_R2 = {"r1_gamma": 1.0, "r2_gamma": 1.0, "penalty_every": 4}
FAST_ADAM = {"g_learning_rate": 5e-4, "d_learning_rate": 5e-4, "beta1": 0.0, "beta2": 0.99}
# Twice the updates per image; on 2 CPU cores at almost the same images/s (243 vs 251 kimg).
# Measured with the EMA then counted in steps: 0.999 a step, a half-life of 22.2 kimg at batch 32.
BATCH_32 = {**ZERO_CENTRED, **LAZY_R1_R2, **FAST_ADAM, "batch_size": 32, "ema_kimg": 22.2}
CANDIDATES: dict[str, dict[str, object]] = {
    "non-saturating, dropout 0.3 (before)": {},
    "non-saturating + R1 0.1, dropout 0.3": {"r1_gamma": 0.1},
    "RpGAN + R1/R2 0.1": {**ZERO_CENTRED, "r1_gamma": 0.1, "r2_gamma": 0.1},
    "RpGAN + R1/R2 1.0": {**ZERO_CENTRED, "r1_gamma": 1.0, "r2_gamma": 1.0},
    "RpGAN + R1/R2 0.1, lazy ×4": {
        **ZERO_CENTRED,
        "r1_gamma": 0.1,
        "r2_gamma": 0.1,
        "penalty_every": 4,
    },
    "RpGAN + R1/R2 0.1, Adam(5e-4, 0, 0.99)": {
        **ZERO_CENTRED,
        "r1_gamma": 0.1,
        "r2_gamma": 0.1,
        **FAST_ADAM,
    },
    "RpGAN + R1/R2 1.0, lazy ×4, Adam(5e-4, 0, 0.99)": {**ZERO_CENTRED, **LAZY_R1_R2, **FAST_ADAM},
    "RpGAN + R1/R2 5.0, lazy ×4, Adam(5e-4, 0, 0.99)": {
        **ZERO_CENTRED,
        **LAZY_R1_R2,
        **FAST_ADAM,
        "r1_gamma": 5.0,
        "r2_gamma": 5.0,
    },
    "RpGAN + R1/R2 1.0, lazy ×4, Adam(1e-3, 0, 0.99)": {
        **ZERO_CENTRED,
        **LAZY_R1_R2,
        **FAST_ADAM,
        "g_learning_rate": 1e-3,
        "d_learning_rate": 1e-3,
    },
    "RpGAN + R1/R2 1.0, lazy ×4, Adam(5e-4, 0, 0.99), batch 32": BATCH_32,
    # The width-32 dcgan D: ~3 M multiply-adds an image, its G ~21 M; at width 64 D is ~10 M.
    "RpGAN + R1/R2 1.0, lazy ×4, Adam(5e-4, 0, 0.99), batch 32, D width 64": {
        **BATCH_32,
        "d_width": 64,
    },
    "RpGAN + R1/R2 1.0, lazy ×4, Adam(5e-4, 0, 0.99), batch 32, D width 128": {
        **BATCH_32,
        "d_width": 128,
    },
    # The EMA's half-life in images: ramped up at 0.077 × the images seen to 100 kimg, not
    # capped at 22 kimg (at 1,200 kimg: 92 kimg).
    "RpGAN + R1/R2 1.0, lazy ×4, Adam(5e-4, 0, 0.99), batch 32, EMA ≤ 100 kimg": {
        **BATCH_32,
        "ema_kimg": 100.0,
    },
    # StyleGAN2's R1 interval: the double backprop on one step in 16 instead of 4, at 16× γ.
    "RpGAN + R1/R2 1.0, lazy ×16, Adam(5e-4, 0, 0.99), batch 32": {
        **BATCH_32,
        "penalty_every": 16,
    },
    # Self-conditioning (Liu et al. 2020): G and D conditioned on k-means clusters of the images.
    **{
        f"RpGAN + R1/R2 1.0, lazy ×16, Adam(5e-4, 0, 0.99), batch 32, {k} clusters": {
            **BATCH_32,
            "penalty_every": 16,
            "ema_kimg": 100.0,
            "clusters": k,
        }
        for k in (10, 20, 50, 100, 200)
    },
    # Against the digit imbalance: D sees how varied a group of 4 samples is (StyleGAN).
    "RpGAN + R1/R2 1.0, lazy ×4, Adam(5e-4, 0, 0.99), batch 32, minibatch std 4": {
        **BATCH_32,
        "minibatch_std": 4,
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument(
        "--kimg", type=float, default=0.0, help="Train each candidate on this many thousand images."
    )
    parser.add_argument(
        "--only", action="append", default=[], help="A candidate; repeat for more (default: all)."
    )
    parser.add_argument(
        "--data_dir", default=os.path.join(bench.REPO_ROOT, "runs", "quickstart", "data")
    )
    parser.add_argument(
        "--classifier_dir", default="", help="The evaluation cache (default: the stages' own)."
    )
    parser.add_argument(
        "--json", default=os.path.join(bench.RESULTS_DIR, "unconditional_selection.json")
    )
    args = parser.parse_args()
    names = args.only or list(CANDIDATES)
    unknown = sorted(set(names) - set(CANDIDATES))
    if unknown:
        parser.error(f"unknown candidates {unknown}; choose from {list(CANDIDATES)}")
    if args.kimg < 0 or args.minutes <= 0:
        parser.error("--minutes must be positive and --kimg not negative")
    budget = {"kimg": args.kimg} if args.kimg else {"minutes": args.minutes}
    data_dir = ensure_data_dir(args.data_dir)
    results = bench.previous_results(args.json, budget)
    for name in names:
        with tempfile.TemporaryDirectory(prefix="bench-select-") as workdir:
            flags = {**BASE, **CANDIDATES[name]}
            minutes = args.minutes
            if args.kimg:
                flags, minutes = on_images(flags, args.kimg), 0
            result = run_project(data_dir, minutes, args.classifier_dir, workdir, flags)
        results[name] = result
        print(f"{name}: {result['images'] / 1000:.0f} kimg, {result['model']}", flush=True)
        # After every candidate: an hour of measurements survives a later failure.
        bench.write_json(
            args.json,
            {"benchmark": "unconditional_selection", **budget, "results": results},
        )
    bench.print_runs(results, "candidate", KEYS)


if __name__ == "__main__":
    main()
