"""The contract between preprocessing and training: the Example schema, the manifest, DataSpec.

Both sides import this module, so the record layout lives in exactly one place, and the data's
shape and classes travel in the manifest (read into a ``DataSpec``), never in constants.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from common.cli import UserError

SCHEMA_VERSION = 2
VALUE_RANGE = (-1.0, 1.0)
IMAGE_KEY = "image"
LABEL_KEY = "label"
COMPRESSION_SUFFIX = {"gzip": ".tfrecord.gz", "none": ".tfrecord"}
MAX_CLASSES = 100_000


class ManifestError(UserError, ValueError):
    """A manifest is missing, malformed or does not describe the data next to it."""


# What defines a data set: the manifest's fingerprint is the sha256 of exactly these fields.
FINGERPRINTED = (
    "schema_version",
    "name",
    "image_shape",
    "value_range",
    "normalization",
    "features",
    "compression",
    "class_names",
    "kept_classes",
    "stacked_mnist",
    "preprocess",
    "source_sha256",
)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """What every stage after preprocessing needs to know of the data: read from the manifest.

    Labels are ``0 .. num_classes - 1``, indexing ``class_names``; an unlabelled data set has no
    class names and stores label 0. ``kept`` are the classes the data set holds (a subset when
    preprocessing kept only some, e.g. one digit).
    """

    name: str
    height: int
    width: int
    channels: int
    class_names: tuple[str, ...] = ()
    kept: tuple[int, ...] = ()
    stacked_mnist: bool = False  # three MNIST digits as colour channels: 1,000 modes

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    @property
    def image_size(self) -> int:
        return self.height * self.width * self.channels

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def labelled(self) -> bool:
        return bool(self.class_names)

    def describe(self) -> str:
        """``mnist (28×28×1, 10 classes)``: for model cards, galleries and progress lines."""
        classes = f"{self.num_classes} classes" if self.labelled else "unlabelled"
        if self.labelled and len(self.kept) < self.num_classes:
            classes += f", kept {', '.join(self.class_names[k] for k in self.kept)}"
        return f"{self.name} ({self.height}×{self.width}×{self.channels}, {classes})"

    @classmethod
    def from_manifest(cls, manifest: dict) -> DataSpec:
        height, width, channels = manifest["image_shape"]
        return cls(
            name=manifest["name"],
            height=height,
            width=width,
            channels=channels,
            class_names=tuple(manifest["class_names"]),
            kept=tuple(manifest["kept_classes"]),
            stacked_mnist=bool(manifest["stacked_mnist"]),
        )


@dataclasses.dataclass(frozen=True)
class Split:
    """One split's shards: their names in order and the examples each holds."""

    files: tuple[str, ...]
    file_examples: Mapping[str, int]
    num_examples: int
    class_counts: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A data directory's manifest, checked once (``parse``) into what the later stages read.

    ``record`` is the JSON as preprocessing wrote it: an export copies it whole.
    """

    spec: DataSpec
    fingerprint: str
    compression: str
    splits: Mapping[str, Split]
    # The fingerprint of the full data set this one takes its first training examples from
    # (preprocessing's --train_examples): it is scored in that data set's feature space.
    subset_of: str = ""
    record: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str, where: str) -> Manifest:
        """A manifest file's text, checked against this schema; ``ManifestError`` names what
        is wrong and ``where``."""
        return cls.from_record(parse_manifest(text, where), where)

    @classmethod
    def from_record(cls, record: dict, where: str) -> Manifest:
        validate_manifest(record, where)
        splits = {
            name: Split(
                files=tuple(split["files"]),
                file_examples=dict(split["file_examples"]),
                num_examples=int(split["num_examples"]),
                class_counts=tuple(split["class_counts"]),
            )
            for name, split in record["splits"].items()
        }
        return cls(
            spec=DataSpec.from_manifest(record),
            fingerprint=record["fingerprint"],
            compression=record["compression"],
            splits=splits,
            subset_of=str(record["preprocess"].get("subset_of", "")),
            record=record,
        )

    @property
    def listed_files(self) -> set[str]:
        """Every shard file name, over all splits."""
        return {name for split in self.splits.values() for name in split.files}

    def examples(self, split: str) -> int:
        """The examples in ``split``; 0 when the data set has no such split."""
        return self.splits[split].num_examples if split in self.splits else 0


def listed_files(manifest: dict) -> set[str]:
    """Every shard file name a manifest lists, over all splits."""
    return {f for split in manifest.get("splits", {}).values() for f in split.get("files", [])}


def fingerprint(header: dict) -> str:
    fields = {key: header[key] for key in FINGERPRINTED}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def normalize(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels → float32 in [-1, 1], the value every record stores: ``x / 127.5 - 1``."""
    return pixels.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def denormalize(images: np.ndarray) -> np.ndarray:
    """[-1, 1] floats → uint8 pixels (rounded, clipped), for viewing. Non-finite values (a
    diverged generator's) show as black, not as whatever bytes a NaN casts to."""
    finite = np.nan_to_num(np.asarray(images, dtype=np.float32), nan=-1.0, posinf=1.0, neginf=-1.0)
    return np.clip(np.rint((finite + 1.0) * 127.5), 0, 255).astype(np.uint8)


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # a negative int64 is its two's complement, as protobuf writes it
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _header(number: int, length: int) -> bytes:
    """A length-delimited protobuf field's tag and length, the bytes before its payload."""
    return _varint(number << 3 | 2) + _varint(length)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field: tag, length, bytes."""
    return _header(number, len(payload)) + payload


def _map_entry(key: str, feature: bytes) -> bytes:
    # Features.feature (1) map entry: key (1), value (2).
    return _field(1, _field(1, key.encode()) + _field(2, feature))


@functools.lru_cache(maxsize=16)
def _image_entry_prefix(pixel_bytes: int) -> bytes:
    """The image's map entry up to its pixels: every tag and length in it depends on the
    image's size only (Feature.float_list (2) → its packed ``value`` (1))."""
    entry = _map_entry(IMAGE_KEY, _field(2, _field(1, bytes(pixel_bytes))))
    return entry[: len(entry) - pixel_bytes]


@functools.lru_cache(maxsize=4096)
def _label_entry(label: int) -> bytes:
    # Feature.int64_list (3) → its packed ``value`` (1).
    return _map_entry(LABEL_KEY, _field(3, _field(1, _varint(label))))


def encode_example(image: np.ndarray, label: int) -> bytes:
    """One serialized ``tf.train.Example{image: float[H·W·C] row-major, label: int64}``.

    Written in protobuf's wire format directly: the bytes ``tf.train.Example``'s deterministic
    serialization gives (tested) — building the message converted every pixel to a Python
    float, 40 µs of an MNIST image — and from parts that depend only on the image's size and
    the label, cached, so a record is a few concatenations.
    """
    pixels = np.asarray(image, "<f4").tobytes()
    # Map entries in key order ("image" < "label"), as deterministic serialization writes them:
    # otherwise a shard rewritten by another process could differ in bytes (found by a shard
    # rewritten on repair).
    image_prefix, label_entry = _image_entry_prefix(len(pixels)), _label_entry(int(label))
    length = len(image_prefix) + len(pixels) + len(label_entry)
    # Example.features (1) → Features.feature (1): the map entries.
    return b"".join((_header(1, length), image_prefix, pixels, label_entry))


def feature_spec(spec: DataSpec) -> dict:
    import tensorflow as tf

    return {
        IMAGE_KEY: tf.io.FixedLenFeature([spec.image_size], tf.float32),
        LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
    }


def _positive_ints(value: Any, length: int) -> bool:
    return (
        isinstance(value, list)
        and len(value) == length
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    )


def validate_manifest(manifest: Any, where: str) -> dict:
    """Check a parsed manifest against this schema; return it or raise ManifestError."""
    if not isinstance(manifest, dict):
        raise ManifestError(f"{where}: manifest is not a JSON object")
    version = manifest.get("schema_version")
    if version == 1:
        raise ManifestError(
            f"{where}: schema_version 1 (28×28 MNIST only); this code reads version "
            f"{SCHEMA_VERSION}: run preprocessing.run again with --source={manifest.get('source')} "
            "and a new --output_dir to re-make it"
        )
    if version != SCHEMA_VERSION:
        raise ManifestError(
            f"{where}: schema_version {version!r}, this code reads version {SCHEMA_VERSION}"
        )
    missing = [key for key in (*FINGERPRINTED, "fingerprint", "splits") if key not in manifest]
    if missing:
        raise ManifestError(f"{where}: lacks {', '.join(missing)}; not a manifest of this schema")
    if not _positive_ints(manifest["image_shape"], 3) or manifest["image_shape"][2] not in (1, 3):
        raise ManifestError(
            f"{where}: image_shape {manifest['image_shape']!r} is not [height, width, 1 or 3]"
        )
    if not isinstance(manifest["preprocess"], dict):
        raise ManifestError(f"{where}: preprocess is not an object")
    if manifest["compression"] not in COMPRESSION_SUFFIX:
        raise ManifestError(f"{where}: unknown compression {manifest['compression']!r}")
    names, kept = manifest["class_names"], manifest["kept_classes"]
    if (
        not isinstance(names, list)
        or len(names) > MAX_CLASSES
        or any(not isinstance(n, str) or not n for n in names)
    ):
        raise ManifestError(f"{where}: class_names is not a list of names")
    if not isinstance(kept, list) or any(
        not isinstance(k, int) or not 0 <= k < len(names) for k in kept
    ):
        raise ManifestError(
            f"{where}: kept_classes {str(kept)[:80]} are not classes of class_names"
        )
    if names and not kept:
        raise ManifestError(f"{where}: a labelled data set keeps no class")
    recorded = manifest["fingerprint"]
    if not isinstance(recorded, str) or not _HEX64.match(recorded):
        raise ManifestError(f"{where}: fingerprint {str(recorded)[:80]!r} is not a sha256")
    if fingerprint(manifest) != recorded:
        raise ManifestError(
            f"{where}: fingerprint does not match the manifest's content (edited by hand, or "
            "corrupt); re-run preprocessing"
        )
    splits = manifest.get("splits")
    if not isinstance(splits, dict) or not splits:
        raise ManifestError(f"{where}: no splits")
    for name, split in splits.items():
        _validate_split(split, f"{where}: split {name!r}", len(names))
    return manifest


def _validate_split(split: Any, where: str, num_classes: int) -> None:
    if not isinstance(split, dict):
        raise ManifestError(f"{where} is not an object")
    for file_name in split.get("files") or []:
        if not isinstance(file_name, str) or not _PLAIN_NAME.match(file_name):
            raise ManifestError(
                f"{where}: lists {str(file_name)[:80]!r}, not a plain file name in the data "
                "directory"
            )
    counts = split.get("class_counts")
    if not isinstance(counts, list) or len(counts) != num_classes:
        raise ManifestError(f"{where}: class_counts is not a list of {num_classes}")
    file_examples = split.get("file_examples")
    if not isinstance(file_examples, dict) or sorted(file_examples) != sorted(
        split.get("files") or []
    ):
        raise ManifestError(f"{where}: file_examples does not list exactly its files")
    total = sum(file_examples.values())
    if total != split.get("num_examples") or (counts and sum(counts) != total):
        raise ManifestError(
            f"{where}: num_examples {split.get('num_examples')} does not match its files' "
            f"{total} examples and class counts"
        )
    if not split.get("files"):
        raise ManifestError(f"{where}: lists no files")


def parse_manifest(text: str, where: str) -> dict:
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as e:
        raise ManifestError(f"{where}: not valid JSON ({e})") from e
    return validate_manifest(manifest, where)
