"""Serving speed of the exported SavedModel: images/s at batch 1 and batch 1,000.

    python -m benchmarks.export_throughput [--export_dir=runs/quickstart/export]

Loads ``EXPORT_DIR/generator`` with plain ``tf.saved_model.load`` (as a user would) and times
its ``serving_default`` signature. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from benchmarks import common as bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--export_dir", default=os.path.join(bench.REPO_ROOT, "runs", "quickstart", "export")
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="time per batch size")
    parser.add_argument("--json", default=os.path.join(bench.RESULTS_DIR, "export_throughput.json"))
    args = parser.parse_args()

    import tensorflow as tf

    serve = tf.saved_model.load(os.path.join(args.export_dir, "generator")).signatures[
        "serving_default"
    ]
    inputs = serve.structured_input_signature[1]
    latent_dim = inputs["z"].shape[1]
    rows = []
    for batch in (1, 1000):
        feed = {"z": tf.random.normal([batch, latent_dim])}
        if "label" in inputs:
            feed["label"] = tf.zeros([batch], tf.int32)
        serve(**feed)["images"].numpy()  # warm up
        rates, deadline = [], time.perf_counter() + args.seconds
        while time.perf_counter() < deadline or len(rates) < 3:
            start = time.perf_counter()
            serve(**feed)["images"].numpy()
            rates.append(batch / (time.perf_counter() - start))
        rows.append(
            {
                "batch": batch,
                "images_per_s": statistics.median(rates),
                "latency_ms": 1000 * batch / statistics.median(rates),
                "calls": len(rates),
            }
        )
    bench.print_table(rows, ["batch", "images_per_s", "latency_ms", "calls"])
    bench.write_json(
        args.json, {"benchmark": "export_throughput", "export_dir": args.export_dir, "rows": rows}
    )


if __name__ == "__main__":
    main()
