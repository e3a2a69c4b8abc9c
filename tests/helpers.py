"""Small real data and subprocess helpers shared by the tests."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import numpy as np

from common import layout, schema
from preprocessing import idx, sources

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED_MNIST = os.path.join(REPO_ROOT, "data", "mnist")
# The manifest fingerprint of the bundled MNIST as preprocessing makes it by default: the shipped
# classifiers are keyed by it (data/classifiers/6430b9f6bebd1f54).
BUNDLED_MNIST_FINGERPRINT = "6430b9f6bebd1f543bf3914f9c2b1e752da60fc0fc51055a9036a696c2c0d6a4"


def write_idx_dir(
    directory: str, pixels: dict[str, np.ndarray], labels: dict[str, np.ndarray], gz: bool = True
) -> str:
    """Write split arrays as the four standard IDX files."""
    os.makedirs(directory, exist_ok=True)
    for split, (images_name, labels_name) in sources.STANDARD_FILES.items():
        for name, array in ((images_name, pixels[split]), (labels_name, labels[split])):
            data = idx.encode(array)
            path = os.path.join(directory, name + (".gz" if gz else ""))
            with open(path, "wb") as f:
                f.write(gzip.compress(data) if gz else data)
    return directory


def tiny_mnist(directory: str, n_train: int = 300, n_test: int = 100, gz: bool = True) -> str:
    """The first images of the real bundled MNIST, as a small IDX directory."""
    pixels, labels = {}, {}
    for split, n in (("train", n_train), ("test", n_test)):
        images_name, labels_name = sources.STANDARD_FILES[split]
        all_pixels, all_labels, _ = sources.load_split(
            os.path.join(BUNDLED_MNIST, images_name + ".gz"),
            os.path.join(BUNDLED_MNIST, labels_name + ".gz"),
        )
        pixels[split] = all_pixels[:n].reshape(n, 28, 28)
        labels[split] = all_labels[:n]
    return write_idx_dir(directory, pixels, labels, gz=gz)


def run_module(module: str, *args: str, env: dict | None = None, timeout: int = 600):
    """Run ``python -m module args`` from the repo root; return the CompletedProcess."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The last non-empty stderr line, where the CLIs put their one-line error."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def assert_one_line_error(proc: subprocess.CompletedProcess, prog: str, *fragments: str) -> str:
    """Exit 2 (common/cli.py), no traceback, exactly one error line, last, holding ``fragments``."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith(f"{prog}: error: ")]
    assert len(errors) == 1 and errors[0] == error_line(proc), proc.stderr[-3000:]
    assert all(fragment in errors[0] for fragment in fragments), errors[0]
    return errors[0]


def read_manifest(data_dir: str) -> dict:
    with open(os.path.join(data_dir, layout.MANIFEST)) as f:
        return json.load(f)


def mnist_manifest(fingerprint: str, subset_of: str = "") -> schema.Manifest:
    """A manifest of 28×28 digits with no data beside it: enough to find a shipped classifier."""
    spec = schema.DataSpec("mnist", 28, 28, 1, tuple(map(str, range(10))), tuple(range(10)))
    return schema.Manifest(spec, fingerprint, "gzip", {}, subset_of)


def read_records(data_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """All (image, label) records of a split, via the manifest's file list."""
    import tensorflow as tf

    manifest = read_manifest(data_dir)
    files = [os.path.join(data_dir, f) for f in manifest["splits"][split]["files"]]
    compression = "GZIP" if manifest["compression"] == "gzip" else ""
    images, labels = [], []
    for raw in tf.data.TFRecordDataset(files, compression_type=compression):
        example = tf.io.parse_single_example(
            raw, schema.feature_spec(schema.DataSpec.from_manifest(manifest))
        )
        images.append(example["image"].numpy())
        labels.append(int(example["label"]))
    return np.array(images, np.float32), np.array(labels, np.int64)


def sorted_records(images: np.ndarray, labels: np.ndarray) -> list[tuple[int, bytes]]:
    """Records as an order-free multiset (shards do not keep source order)."""
    return sorted(
        (int(lbl), img.astype(np.float32).tobytes())
        for img, lbl in zip(images, labels, strict=True)
    )


def snapshot(directory: str) -> dict[str, bytes]:
    """Every file's bytes below ``directory``, keyed by relative path."""
    result = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                result[os.path.relpath(path, directory)] = f.read()
    return result


def tree_state(directory: str) -> dict[str, tuple[int, int]]:
    """Every file below ``directory``: (size, mtime_ns), to show that nothing was written."""
    state = {}
    for root, _, files in os.walk(directory):
        for name in files:
            stat = os.stat(os.path.join(root, name))
            state[os.path.relpath(os.path.join(root, name), directory)] = (
                stat.st_size,
                stat.st_mtime_ns,
            )
    return state


def lease_holder_pid(directory: str) -> int | None:
    """The pid a directory's lease file names (common/lease.py), if any."""
    from common import lease

    try:
        with open(os.path.join(directory, lease.NAME)) as f:
            return json.loads(f.read() or "null")["pid"]
    except (OSError, TypeError, KeyError, ValueError):
        return None
