"""Where MNIST comes from: a directory (local or gs://) of IDX files, or tensorflow-datasets.

Both sources end as the same thing, a directory of the four standard IDX files, so one Beam
pipeline serves both. The tfds source asks tensorflow-datasets for MNIST (download and prepare,
online) and writes its arrays as IDX files into a staging directory.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
import socket
import urllib.parse

import numpy as np

from common import schema, storage
from common.cli import UserError
from preprocessing import idx

STANDARD_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CHECKSUMS_NAME = "SHA256SUMS"
TFDS_SOURCE = "tfds"
TFDS_PROBE_TIMEOUT_S = 10.0


class SourceError(UserError, ValueError):
    """The source data is missing or invalid; the message names the file and the problem."""


@dataclasses.dataclass(frozen=True)
class SplitFiles:
    """The IDX image and label files of one split."""

    split: str
    images_path: str
    labels_path: str


def _find(source_dir: str, name: str, present: set[str]) -> str:
    for candidate in (name, name + ".gz"):
        path = storage.join(source_dir, candidate)
        if path in present:
            return path
    raise SourceError(f"{storage.join(source_dir, name)}[.gz]: file not found")


def resolve_idx_dir(source_dir: str) -> dict[str, SplitFiles]:
    """Locate the four standard IDX files (raw or .gz) in ``source_dir``."""
    present = set(storage.list_files(source_dir))
    if not present:
        raise SourceError(f"{source_dir}: no such directory, or it holds no files")
    return {
        split: SplitFiles(
            split, _find(source_dir, images, present), _find(source_dir, labels, present)
        )
        for split, (images, labels) in STANDARD_FILES.items()
    }


def read_expected_checksums(source_dir: str) -> dict[str, str]:
    """The ``SHA256SUMS`` shipped beside the files, if any: uncompressed name → sha256."""
    path = storage.join(source_dir, CHECKSUMS_NAME)
    if not storage.exists(path):
        return {}
    expected = {}
    for number, line in enumerate(storage.read_text(path).splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 2 or not re.fullmatch(r"[0-9a-fA-F]{64}", fields[0]):
            raise SourceError(
                f"{path}:{number}: expected 'SHA256  FILE' (sha256sum's format), got {line[:80]!r}"
            )
        expected[fields[1].lstrip("*")] = fields[0].lower()
    return expected


def _base_name(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return name[:-3] if name.endswith(".gz") else name


@functools.lru_cache(maxsize=4)
def load_split(images_path: str, labels_path: str) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Read and validate one split: images uint8[n, 784], labels uint8[n], and their sha256.

    Cached per process: the Beam workers that read chunks of a split parse its files once.
    """
    images, images_bytes = idx.read(images_path, idx.IMAGES_MAGIC)
    labels, labels_bytes = idx.read(labels_path, idx.LABELS_MAGIC)
    if images.shape[1:] != (schema.IMAGE_HEIGHT, schema.IMAGE_WIDTH):
        raise SourceError(
            f"{images_path}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28"
        )
    if len(images) != len(labels):
        raise SourceError(
            f"{images_path}: {len(images)} images but {labels_path} has {len(labels)} labels"
        )
    if len(labels) and labels.max() >= schema.NUM_CLASSES:
        bad = int(np.argmax(labels >= schema.NUM_CLASSES))
        raise SourceError(f"{labels_path}: label {labels[bad]} at index {bad} is outside 0-9")
    checksums = {
        _base_name(images_path): hashlib.sha256(images_bytes).hexdigest(),
        _base_name(labels_path): hashlib.sha256(labels_bytes).hexdigest(),
    }
    return images.reshape(len(images), schema.IMAGE_SIZE), labels, checksums


def validate_idx_dir(
    source_dir: str,
) -> tuple[dict[str, SplitFiles], dict[str, int], dict[str, str]]:
    """Validate every file of an IDX directory before any output is written.

    Returns the split files, each split's example count, and the sha256 of every file's
    uncompressed bytes, checked against a ``SHA256SUMS`` beside them when there is one.
    """
    files = resolve_idx_dir(source_dir)
    expected = read_expected_checksums(source_dir)
    counts, checksums = {}, {}
    for split, split_files in files.items():
        images, _, sums = load_split(split_files.images_path, split_files.labels_path)
        counts[split] = len(images)
        checksums.update(sums)
    for name, digest in checksums.items():
        if name in expected and expected[name] != digest:
            raise SourceError(
                f"{storage.join(source_dir, name)}: sha256 {digest[:12]}… does not match "
                f"{CHECKSUMS_NAME} ({expected[name][:12]}…): the file is corrupt"
            )
    return files, counts, checksums


def _probe_download_host(url: str) -> None:
    """Fail fast offline instead of letting a download hang on retries."""
    host = urllib.parse.urlparse(url).hostname or ""
    try:
        socket.create_connection((host, 443), timeout=TFDS_PROBE_TIMEOUT_S).close()
    except OSError as e:
        raise SourceError(
            f"tfds: cannot reach {host} to download MNIST ({e}); run online, pass "
            "--tfds_data_dir holding a prepared copy, or use --source=DIR with the IDX files"
        ) from e


def stage_tfds(staging_dir: str, tfds_data_dir: str | None) -> str:
    """Materialize MNIST through tensorflow-datasets as IDX files in ``staging_dir``."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.image_classification import mnist as tfds_mnist

    builder = tfds.builder("mnist", data_dir=tfds_data_dir)
    if not builder.is_prepared():
        _probe_download_host(tfds_mnist._MNIST_URL)
        try:
            builder.download_and_prepare()
        except Exception as e:
            raise SourceError(f"tfds: preparing mnist failed: {type(e).__name__}: {e}") from e
    for split, (images_name, labels_name) in STANDARD_FILES.items():
        data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
        storage.write_bytes(
            storage.join(staging_dir, images_name), idx.encode(data["image"][..., 0])
        )
        storage.write_bytes(storage.join(staging_dir, labels_name), idx.encode(data["label"]))
    return staging_dir
