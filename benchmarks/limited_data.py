"""Limited data: augmentation and architectures on a user's folder of real images.

    python -m benchmarks.limited_data [--data=twemoji|mnist-1000] [--minutes=20 | --kimg=N]
        [--only=NAME ...] [--seed=N]

``--data=twemoji``: the 3,786 Twemoji PNGs of ``emoji-datasource-twitter@16.0.0`` as a labelled
folder (``benchmarks/twemoji.py``; fetched once into the cache), preprocessed with the defaults
(alpha over white). ``--data=mnist-1000``: the first 1,000 training digits of the bundled MNIST
(``--train_examples=1000``), scored in full MNIST's feature space. Each variant is
``--preset=pipeline`` with its own flags, trained for ``--minutes`` (or ``--kimg``) one after the
other, exported and scored by the export's evaluator:
FD and KID in the data set's own feature space beside the real-data floor, precision / recall,
and the memorization share. Sample grids stay in ``--keep`` when given. Prints a table, writes
JSON after every variant (earlier variants of the same budget are kept).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from benchmarks import common as bench
from benchmarks import twemoji
from benchmarks.time_to_quality import on_images, run_project
from benchmarks.train_throughput import matmul_peak
from common import bundled
from trainer import presets

BUNDLED_MNIST = bundled.path("mnist")

KEYS = ("frechet_distance", "kernel_distance", "precision", "recall", "memorization_share")

# The pipeline preset as these variants were measured: G and D at width 32 (before its narrow G).
AT_WIDTH_32: dict[str, object] = {"preset": presets.PIPELINE, **presets.WIDTH_32}
# Three times the updates per image, at the unconditional recipe's batch and rate.
ADA_BATCH_32: dict[str, object] = {
    **AT_WIDTH_32,
    "augment": "ada",
    "batch_size": 32,
    "g_learning_rate": 5e-4,
    "d_learning_rate": 5e-4,
}

VARIANTS: dict[str, dict[str, object]] = {
    # The recipe --preset=auto picks for a small folder (ADA's geometric half), and the same
    # with the whole ADA pipeline and with none.
    "limited": {"preset": presets.LIMITED},
    "limited, whole ADA": {"preset": presets.LIMITED, "augment": "ada"},
    "limited, no augmentation": {"preset": presets.LIMITED, "augment": "none"},
    "pipeline preset (before)": AT_WIDTH_32,
    "diffaugment": {**AT_WIDTH_32, "augment": "diffaugment"},
    "ada": {**AT_WIDTH_32, "augment": "ada"},
    "ada + mirror": {**AT_WIDTH_32, "augment": "ada", "mirror": "true"},
    "ada batch 32": ADA_BATCH_32,
    # The same with the pipeline preset's narrow G (width 16, D at 32): about 0.6× the FLOPs.
    "ada batch 32, G 16": {**ADA_BATCH_32, "model_width": 16, "d_width": 32},
    # Wider G and D: 2.2×, 3.9× and 15× the FLOPs an image, which a bf16 host runs at a higher
    # MFU.
    "ada batch 32, width 48": {**ADA_BATCH_32, "model_width": 48},
    "ada batch 32, width 64": {**ADA_BATCH_32, "model_width": 64},
    "ada batch 32, width 128": {**ADA_BATCH_32, "model_width": 128},
    # The labels set aside for k-means clusters of the pixels (self-conditioning).
    "ada batch 32, 100 clusters, no labels": {
        **ADA_BATCH_32,
        "conditional": "false",
        "clusters": 100,
    },
    # The resnet at half the width: about the dcgan's FLOPs an image at 64×64 (0.32 vs 0.22 G).
    "resnet ada": {**AT_WIDTH_32, "architecture": "resnet", "model_width": 16, "augment": "ada"},
    # R3GAN's FFHQ-64 rates at their start: Adam(2e-4, β2 0.9), R1 and R2 at γ 2.
    "resnet ada, R3GAN rates": {
        **ADA_BATCH_32,
        "architecture": "resnet",
        "model_width": 16,
        "g_learning_rate": 2e-4,
        "d_learning_rate": 2e-4,
        "beta2": 0.9,
        "r1_gamma": 2.0,
        "r2_gamma": 2.0,
    },
    "resnet diffaugment": {
        **AT_WIDTH_32,
        "architecture": "resnet",
        "model_width": 16,
        "augment": "diffaugment",
    },
}


def preprocessed(cache: str, name: str, source: str, *flags: str) -> str:
    """``source`` preprocessed with ``flags`` into the cache once; its data directory."""
    data_dir = os.path.join(cache, f"{name}-data")
    if not os.path.exists(os.path.join(data_dir, "manifest.json")):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "preprocessing.run",
                f"--source={source}",
                f"--output_dir={data_dir}",
                *flags,
            ],
            check=True,
            cwd=bench.REPO_ROOT,
        )
    return data_dir


def ensure_twemoji(cache: str) -> str:
    """The Twemoji folder (fetched once), preprocessed with the defaults (alpha over white)."""
    folder = os.path.join(cache, "twemoji-folder")
    if not os.path.exists(folder):
        twemoji.lay_out(twemoji.fetch(cache), folder)
    return preprocessed(cache, "twemoji", folder)


def ensure_mnist_1000(cache: str) -> str:
    """The first 1,000 training digits of the bundled MNIST and its whole test split: scored
    by the bundled MNIST classifier (the manifest names full MNIST as ``subset_of``)."""
    return preprocessed(cache, "mnist-1000", BUNDLED_MNIST, "--train_examples=1000")


DATA = {"twemoji": ensure_twemoji, "mnist-1000": ensure_mnist_1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=sorted(DATA), default="twemoji")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--kimg", type=float, default=0.0)
    parser.add_argument("--only", action="append", default=[], help="A variant; repeatable.")
    parser.add_argument("--seed", type=int, default=0, help="The trainer's --seed; 0: its own.")
    parser.add_argument("--cache", default=twemoji.DEFAULT_CACHE)
    parser.add_argument("--keep", default="", help="Copy each variant's job and export here.")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    names = args.only or list(VARIANTS)
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    budget = {"kimg": args.kimg} if args.kimg else {"minutes": args.minutes}
    path = args.json or os.path.join(bench.RESULTS_DIR, f"limited_data_{args.data}.json")
    data_dir = DATA[args.data](args.cache)
    classifier_dir = os.path.join(args.cache, f"{args.data}-classifier")
    results = bench.previous_results(path, {**budget, "data": args.data})
    peak = matmul_peak("float32")
    print(f"host matmul peak {peak:.0f} GFLOP/s fp32", flush=True)
    for name in names:
        with tempfile.TemporaryDirectory(prefix="bench-limited-") as workdir:
            flags, minutes = dict(VARIANTS[name]), args.minutes
            if args.seed:
                flags["seed"] = args.seed
            if args.kimg:
                flags, minutes = on_images(flags, args.kimg), 0
            result = run_project(
                data_dir, minutes, classifier_dir, workdir, flags, eval_samples=10_000
            )
            if args.keep:
                kept = os.path.join(args.keep, name.replace(" ", "_"))
                shutil.rmtree(kept, ignore_errors=True)
                shutil.copytree(workdir, kept)
        key = f"{name} (seed {args.seed})" if args.seed else name
        results[key] = {**result, "flags": flags, "peak_gflops_fp32": peak}
        print(f"{name}: {result['images'] / 1000:.0f} kimg, {result['model']}", flush=True)
        bench.write_json(
            path, {"benchmark": "limited_data", "data": args.data, **budget, "results": results}
        )
    bench.print_runs(results, "variant", KEYS)


if __name__ == "__main__":
    main()
