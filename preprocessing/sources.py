"""Where images come from: IDX files, tensorflow-datasets, image folders, Stacked MNIST.

Every source answers the same three questions, so one Beam pipeline serves them all:
``plan()`` (name, native shape, classes, checksums, examples per split: cheap, before anything
is written), ``chunks()`` (small picklable descriptions of one output shard's inputs) and
``read(chunk)`` (the chunk's images one at a time, on a worker, in bounded memory). A chunk is a
fixed, ordered slice of the source: re-running or retrying it rewrites identical bytes.

    data/mnist, gs://B/fashion      a directory of the four standard IDX files (any image size)
    tfds:NAME[/CONFIG][:VERSION]    any tfds data set with an ``image`` feature
    gs://B/faces, ~/photos          a folder of PNG/JPEG images; sub-folders name the classes
    --stacked_mnist over IDX        three random digits as the colour channels (1,000 modes)
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import hashlib
import re
from collections.abc import Iterator

import numpy as np

from common import network, storage
from common.cli import UserError
from preprocessing import idx, images

STANDARD_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SPLITS = ("train", "test")
CHECKSUMS_NAME = "SHA256SUMS"
TFDS_PREFIX = "tfds:"
TFDS_PROBE_HOST = "storage.googleapis.com"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
STACKED_SEED = 0

Pixels = np.ndarray  # uint8 [H, W, C]


class SourceError(UserError, ValueError):
    """The source data is missing or invalid; the message names the file and the problem."""


@dataclasses.dataclass(frozen=True)
class Chunk:
    """The inputs of output shard ``index`` of ``count`` of one split (source-specific items)."""

    split: str
    index: int
    count: int
    items: tuple

    def file_name(self, suffix: str) -> str:
        return f"{self.split}-{self.index:05d}-of-{self.count:05d}{suffix}"


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a source is, learnt before anything is written."""

    name: str
    native_shape: tuple[int, int, int]  # of its (first) image
    class_names: tuple[str, ...]
    checksums: dict[str, str]
    counts: dict[str, int]  # examples per split
    details: dict = dataclasses.field(default_factory=dict)  # recorded in the fingerprint
    image_files: bool = False  # encoded files (PNG, JPEG, …) whose transparency is composited


def split_evenly(items: int | tuple, num_shards: int) -> list[tuple]:
    """``num_shards`` contiguous runs of ``items`` (a count → (start, stop) pairs)."""
    n = items if isinstance(items, int) else len(items)
    bounds = np.linspace(0, n, num_shards + 1).astype(int)
    if isinstance(items, int):
        return [(int(bounds[i]), int(bounds[i + 1])) for i in range(num_shards)]
    return [items[bounds[i] : bounds[i + 1]] for i in range(num_shards)]


class Source(abc.ABC):
    """One kind of input. Instances are pickled to the workers: keep them small."""

    def __init__(self, location: str):
        self.location = location

    @abc.abstractmethod
    def plan(self) -> Plan: ...

    @abc.abstractmethod
    def split_items(self, split: str) -> int | tuple:
        """A split's inputs in order: their count, or a tuple of source-specific items."""

    def chunk_items(self, split: str, num_shards: int) -> list[tuple]:
        return split_evenly(self.split_items(split), num_shards)

    @abc.abstractmethod
    def read(self, chunk: Chunk) -> Iterator[tuple[str, Pixels | bytes, int]]:
        """(item name, pixels or encoded image bytes, label) of each input of ``chunk``."""

    def chunks(self, split: str, num_shards: int) -> list[Chunk]:
        items = self.chunk_items(split, num_shards)
        return [Chunk(split, i, len(items), part) for i, part in enumerate(items)]

    def local_paths(self) -> list[str]:
        """Locations the output must not overlap."""
        return [self.location]


# --- IDX directories ------------------------------------------------------------------------------


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
    """Read and validate one split: images uint8[n, H, W], labels uint8[n], and their sha256.

    Cached per process: the Beam workers that read chunks of a split parse its files once.
    """
    images, images_bytes = idx.read(images_path, idx.IMAGES_MAGIC)
    labels, labels_bytes = idx.read(labels_path, idx.LABELS_MAGIC)
    if images.ndim != 3 or labels.ndim != 1:
        raise SourceError(f"{images_path}: IDX images must be [n, height, width], labels [n]")
    if len(images) != len(labels):
        raise SourceError(
            f"{images_path}: {len(images)} images but {labels_path} has {len(labels)} labels"
        )
    checksums = {
        _base_name(images_path): hashlib.sha256(images_bytes).hexdigest(),
        _base_name(labels_path): hashlib.sha256(labels_bytes).hexdigest(),
    }
    return images, labels, checksums


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


def _dir_name(location: str) -> str:
    return location.rstrip("/").rsplit("/", 1)[-1] or location


class IdxSource(Source):
    """The four standard IDX files (MNIST, Fashion-MNIST, KMNIST, …), raw or .gz, any size."""

    def __init__(self, location: str):
        super().__init__(location)
        self.files = resolve_idx_dir(location)

    def plan(self) -> Plan:
        files, counts, checksums = validate_idx_dir(self.location)
        train = load_split(files["train"].images_path, files["train"].labels_path)
        test = load_split(files["test"].images_path, files["test"].labels_path)
        if train[0].shape[1:] != test[0].shape[1:]:
            raise SourceError(
                f"{files['test'].images_path}: images are {'x'.join(map(str, test[0].shape[1:]))}"
                f", the training images {'x'.join(map(str, train[0].shape[1:]))}"
            )
        num_classes = int(max(train[1].max(initial=0), test[1].max(initial=0))) + 1
        return Plan(
            _dir_name(self.location),
            (*train[0].shape[1:], 1),
            tuple(str(c) for c in range(num_classes)),
            checksums,
            counts,
        )

    def split_arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        pixels, labels, _ = load_split(self.files[split].images_path, self.files[split].labels_path)
        return pixels, labels

    def split_items(self, split: str) -> int:
        return len(self.split_arrays(split)[1])

    def read(self, chunk: Chunk) -> Iterator[tuple[str, Pixels, int]]:
        pixels, labels = self.split_arrays(chunk.split)
        start, stop = chunk.items
        for i in range(start, stop):
            yield f"{chunk.split}[{i}]", pixels[i][:, :, None], int(labels[i])


class StackedMnistSource(IdxSource):
    """Stacked MNIST (Metz et al. 2017; VEEGAN, PacGAN): three digits as R, G, B; 1,000 modes.

    Stack ``i`` of a split takes three source images drawn with a fixed seed; its label is the
    mode ``100·d_R + 10·d_G + d_B``, so evaluation can read every channel's digit back.
    """

    def __init__(self, location: str, num_train: int):
        super().__init__(location)
        self.sizes = {"train": num_train, "test": max(1, num_train // 10)}

    def plan(self) -> Plan:
        base = super().plan()
        if base.native_shape != (28, 28, 1) or len(base.class_names) != 10:
            raise SourceError(
                f"{self.location}: --stacked_mnist needs 28x28 images of ten digits, found "
                f"{base.native_shape[0]}x{base.native_shape[1]}, {len(base.class_names)} classes"
            )
        return Plan(
            f"stacked_{base.name}",
            (28, 28, 3),
            tuple(f"{m:03d}" for m in range(1000)),
            base.checksums,
            dict(self.sizes),
            {"stacked_mnist": {"stacks": self.sizes, "seed": STACKED_SEED}},
        )

    @functools.cache  # noqa: B019 - one small table per split and process
    def stacks(self, split: str) -> np.ndarray:
        """[n, 3] source indices of each stack's R, G and B digit."""
        source_count = len(super().split_arrays(split)[1])
        rng = np.random.default_rng([STACKED_SEED, SPLITS.index(split)])
        return rng.integers(0, source_count, size=(self.sizes[split], 3))

    def split_items(self, split: str) -> int:
        return self.sizes[split]

    def read(self, chunk: Chunk) -> Iterator[tuple[str, Pixels, int]]:
        pixels, labels = super().split_arrays(chunk.split)
        stacks = self.stacks(chunk.split)
        start, stop = chunk.items
        for i in range(start, stop):
            picked = stacks[i]
            digits = labels[picked].astype(int)
            yield (
                f"{chunk.split}[{i}]",
                np.stack([pixels[j] for j in picked], axis=-1),
                int(digits[0] * 100 + digits[1] * 10 + digits[2]),
            )


# --- image folders --------------------------------------------------------------------------------


def _test_share(rel: str) -> int:
    """0-99 from the file's path: the split is stable when files are added or removed."""
    return int.from_bytes(hashlib.sha256(rel.encode()).digest()[:4], "big") % 100


class FolderSource(Source):
    """PNG/JPEG/… files below a folder. Sub-folders name the classes; a flat folder is unlabelled.

    There is no split on disk: a file is a test image when a hash of its path falls under
    ``test_percent`` (at least one test image).
    """

    def __init__(self, location: str, test_percent: int):
        super().__init__(location)
        self.test_percent = test_percent
        sizes = storage.list_tree_sizes(location)
        self.sizes = {
            rel: size for rel, size in sizes.items() if rel.lower().endswith(IMAGE_SUFFIXES)
        }
        if not self.sizes:
            raise SourceError(
                f"{location}: no such directory, or it holds no image files "
                f"({', '.join(IMAGE_SUFFIXES)}) and no IDX files"
            )
        nested = [rel for rel in self.sizes if "/" in rel]
        flat = [rel for rel in self.sizes if "/" not in rel]
        if nested and flat:
            raise SourceError(
                f"{storage.join(location, flat[0])}: images both at the top and in sub-folders "
                f"({nested[0]}); put every image in a class folder, or none"
            )
        self.class_names = tuple(sorted({rel.split("/", 1)[0] for rel in nested}))
        self.splits = self._split(sorted(self.sizes))

    def _split(self, rels: list[str]) -> dict[str, tuple]:
        index = {name: i for i, name in enumerate(self.class_names)}
        labelled = [(rel, index[rel.split("/", 1)[0]] if "/" in rel else 0) for rel in rels]
        test = [item for item in labelled if _test_share(item[0]) < self.test_percent]
        if not test:
            test = [min(labelled, key=lambda item: _test_share(item[0]))]
        held_out = set(test)
        train = [item for item in labelled if item not in held_out]
        if not train:
            raise SourceError(f"{self.location}: too few images for a train and a test split")
        return {"train": tuple(train), "test": tuple(test)}

    def plan(self) -> Plan:
        first = sorted(self.sizes)[0]
        try:
            native = images.decode(storage.read_bytes(storage.join(self.location, first))).shape
        except images.BadImage as e:
            raise SourceError(f"{storage.join(self.location, first)}: {e}") from e
        listing = "".join(f"{rel}\t{size}\n" for rel, size in sorted(self.sizes.items()))
        return Plan(
            _dir_name(self.location),
            tuple(native),
            self.class_names,
            {"listing (path, size)": hashlib.sha256(listing.encode()).hexdigest()},
            {split: len(items) for split, items in self.splits.items()},
            {"test_percent": self.test_percent},
            image_files=True,
        )

    def split_items(self, split: str) -> tuple:
        return self.splits[split]

    def read(self, chunk: Chunk) -> Iterator[tuple[str, bytes, int]]:
        for rel, label in chunk.items:
            yield rel, storage.read_bytes(storage.join(self.location, rel)), label


# --- tensorflow-datasets --------------------------------------------------------------------------


def _probe_download_host(name: str) -> None:
    """Fail fast offline instead of letting a download hang on retries."""
    reason = network.unreachable(TFDS_PROBE_HOST)
    if reason:
        raise SourceError(
            f"tfds: {name} is not prepared and {TFDS_PROBE_HOST} is unreachable ({reason}); run "
            "online, pass --tfds_data_dir holding a prepared copy, or use --source=DIR"
        )


class TfdsSource(Source):
    """Any tfds data set with an ``image`` feature (and a ``label`` one when it has classes)."""

    def __init__(self, location: str, data_dir: str | None):
        super().__init__(location)
        self.spec = location[len(TFDS_PREFIX) :] if location.startswith(TFDS_PREFIX) else "mnist"
        self.data_dir = data_dir
        if not re.fullmatch(r"[a-z0-9_]+(/[A-Za-z0-9_.-]+)?(:[0-9.*]+)?", self.spec):
            raise SourceError(f"--source={location}: expected tfds:NAME[/CONFIG][:VERSION]")

    def builder(self):
        import tensorflow_datasets as tfds

        try:
            return tfds.builder(self.spec, data_dir=self.data_dir)
        except Exception as e:  # tfds raises its own DatasetNotFoundError and friends
            raise SourceError(f"tfds: {self.spec}: {type(e).__name__}: {str(e)[:160]}") from e

    def _split_names(self, builder) -> dict[str, str]:
        known = set(builder.info.splits.keys())
        if not known:  # an unprepared builder's info (and tfds's mock data) names no splits
            return {"train": "train", "test": "test"}
        test = next((name for name in ("test", "validation") if name in known), None)
        if "train" not in known or test is None:
            raise SourceError(f"tfds: {self.spec} has splits {sorted(known)}: no train and test")
        return {"train": "train", "test": test}

    def plan(self) -> Plan:
        builder = self.builder()
        if not builder.is_prepared():
            _probe_download_host(self.spec)
            try:
                builder.download_and_prepare()
            except Exception as e:
                raise SourceError(
                    f"tfds: preparing {self.spec} failed: {type(e).__name__}: {e}"
                ) from e
        features = builder.info.features
        if "image" not in features:
            raise SourceError(f"tfds: {self.spec} has no 'image' feature ({sorted(features)})")
        label = features["label"] if "label" in features else None  # noqa: SIM401 (no .get)
        class_names = tuple(getattr(label, "names", None) or ())
        counts = {
            ours: self._count(builder, theirs)
            for ours, theirs in self._split_names(builder).items()
        }
        first = next(self._examples(builder, "train", 0, 1))
        return Plan(
            builder.info.name,
            tuple(first[1].shape),
            class_names,
            {"tfds": f"{builder.info.full_name}"},
            counts,
        )

    def _count(self, builder, split: str) -> int:
        info = builder.info.splits.get(split) if builder.info.splits else None
        if info is not None:
            return int(info.num_examples)
        return int(sum(1 for _ in builder.as_dataset(split=split, shuffle_files=False)))

    def _examples(self, builder, split: str, start: int, stop: int):
        import tensorflow_datasets as tfds

        theirs = self._split_names(builder)[split]
        if builder.info.splits:
            dataset = builder.as_dataset(split=f"{theirs}[{start}:{stop}]", shuffle_files=False)
        else:
            dataset = (
                builder.as_dataset(split=theirs, shuffle_files=False).skip(start).take(stop - start)
            )
        for i, example in enumerate(tfds.as_numpy(dataset), start):
            label = int(example["label"]) if "label" in example else 0
            yield f"{theirs}[{i}]", np.asarray(example["image"], np.uint8), label

    def split_items(self, split: str) -> int:
        return self._count(self.builder(), self._split_names(self.builder())[split])

    def read(self, chunk: Chunk) -> Iterator[tuple[str, Pixels, int]]:
        yield from self._examples(self.builder(), chunk.split, *chunk.items)

    def local_paths(self) -> list[str]:
        return [self.data_dir] if self.data_dir else []


class FirstExamples(Source):
    """The first ``count`` training examples of another source, in its order (IDX and tfds: file
    order; folders: sorted paths), and its whole test split: a limited-data copy of a data set
    that is scored like the full one."""

    def __init__(self, inner: Source, count: int):
        super().__init__(inner.location)
        self.inner, self.count = inner, count

    def plan(self) -> Plan:
        return self.limited(self.inner.plan())

    def limited(self, full: Plan) -> Plan:
        """``full``, the inner source's plan, cut to the first training examples: a plan made
        once (a folder's listing, the files' checksums) is not made again."""
        if self.count > full.counts["train"]:
            raise SourceError(
                f"--train_examples={self.count}: {self.location} has "
                f"{full.counts['train']} training examples"
            )
        return dataclasses.replace(
            full,
            counts={**full.counts, "train": self.count},
            details={**full.details, "train_examples": self.count},
        )

    def split_items(self, split: str) -> int | tuple:
        items = self.inner.split_items(split)
        if split != "train":
            return items
        return min(items, self.count) if isinstance(items, int) else items[: self.count]

    def read(self, chunk: Chunk) -> Iterator[tuple[str, Pixels | bytes, int]]:
        return self.inner.read(chunk)

    def local_paths(self) -> list[str]:
        return self.inner.local_paths()


def resolve(
    location: str,
    stacked_mnist: bool,
    stacked_examples: int,
    test_percent: int,
    tfds_data_dir: str | None,
) -> Source:
    """The source a ``--source`` value names: tfds, a directory of IDX files, or a folder."""
    if location == "tfds" or location.startswith(TFDS_PREFIX):
        source: Source = TfdsSource(location, tfds_data_dir)
    else:
        storage.check_bucket(location)
        present = {p.rsplit("/", 1)[-1] for p in storage.list_files(location)}
        is_idx = any(
            name in present or name + ".gz" in present
            for names in STANDARD_FILES.values()
            for name in names
        )
        if stacked_mnist:
            if not is_idx:
                raise SourceError(
                    f"{location}: --stacked_mnist needs a directory of MNIST IDX files"
                )
            return StackedMnistSource(location, stacked_examples)
        source = IdxSource(location) if is_idx else FolderSource(location, test_percent)
    if stacked_mnist:
        raise SourceError(f"--source={location}: --stacked_mnist needs a directory of IDX files")
    return source
