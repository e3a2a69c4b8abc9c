"""Scoring speed of the evaluation classifier: images/s of features and class probabilities.

    python -m benchmarks.classifier_throughput [--images=20000] [--repeats=3]

Every evaluation runs the project's digit classifier over all its samples and the real ones
(Stacked MNIST: 26,000 samples × 3 channels). Times ``Classifier.features_and_probs`` at several
images per call against the way it ran before commit de67fdd (the Keras model called eagerly,
layer by layer, 1,000 images a call), on the same MNIST-shaped inputs, untrained weights (the
cost does not depend on them). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from benchmarks import common as bench


def images_per_s(score, images: np.ndarray, repeats: int) -> float:
    """The best of ``repeats`` passes over ``images`` after one warm-up call."""
    score(images[:1000])
    best = min(_seconds(score, images) for _ in range(repeats))
    return len(images) / best


def _seconds(score, images: np.ndarray) -> float:
    start = time.perf_counter()
    score(images)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--json", default=os.path.join(bench.RESULTS_DIR, "classifier_throughput.json")
    )
    args = parser.parse_args()
    if args.images < 1000 or args.repeats < 1:  # the baseline scores 1,000 a call
        parser.error("--images must be at least 1000 and --repeats at least 1")

    import keras

    from trainer import classifier

    model = classifier.build((28, 28, 1), 10)
    scorer = classifier.Classifier(model, test_accuracy=0.0)
    images = np.random.default_rng(0).uniform(-1, 1, (args.images, 28, 28, 1)).astype(np.float32)
    eager = classifier.feature_model(model)

    def eager_score(batch: np.ndarray) -> None:
        for start in range(0, len(batch), 1000):
            features, logits = eager(batch[start : start + 1000], training=False)
            np.asarray(features), np.asarray(keras.ops.softmax(logits))

    before = images_per_s(eager_score, images, args.repeats)
    rows = [{"variant": "eager, 1,000 a call (before)", "images_per_s": before}]
    for per_call in (1000, 500, 200, 100):
        rate = images_per_s(
            lambda batch, n=per_call: scorer.features_and_probs(batch, batch=n),
            images,
            args.repeats,
        )
        rows.append({"variant": f"tf.function, {per_call:,} a call", "images_per_s": rate})
    for row in rows:
        row["vs_before"] = row["images_per_s"] / before
    bench.print_table(rows, ["variant", "images_per_s", "vs_before"])
    bench.write_json(
        args.json,
        {"benchmark": "classifier_throughput", "images": args.images, "rows": rows},
    )


if __name__ == "__main__":
    main()
