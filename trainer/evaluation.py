"""Sample-quality metrics, chosen by what the data set offers, in float64.

Labelled data sets are scored in the pipeline's own classifier's feature space:

- Fréchet distance between Gaussian fits of features (FID's formula, on the classifier's features).
- Kernel distance: the unbiased squared MMD with the cubic polynomial kernel (KID's formula,
  Bińkowski et al. 2018), averaged over subsets; unbiased at small sample counts, where the
  Fréchet distance is not, which is why limited-data work (the ADA paper) reports it.
- Classifier score: exp E_x KL(p(y|x) ‖ p(y)) (the Inception Score's formula).
- Class coverage: entropy of the predicted-class histogram (nats; log 10 is uniform) and the
  smallest class share.
- Precision and recall of k-NN manifolds (Kynkäänniemi et al. 2019, k=3).
- For conditional generators: the classifier's accuracy on the requested labels.
- Memorization share: of the samples, those nearer to their nearest training image than half
  that image's distance to its own nearest other training image (copies, or near-copies, of the
  training set; ``memorization_share``), once the training images are held
  (``hold_training_images``, the export's): a generator that returns training images reads 1,
  fresh test images read near 0 (the floor).

Unlabelled data sets get the sliced Wasserstein distance between Laplacian-pyramid patches of
generated and real images (Karras et al. 2018, "Progressive Growing of GANs", §5; no network).
Stacked MNIST adds the modes covered (of 1,000) and KL(p_gen ‖ uniform), each channel's digit
read by the digit classifier (the protocol of VEEGAN and PacGAN).

``Evaluator`` draws its latents from a fixed seed, so numbers are reproducible.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from scipy import linalg, ndimage

if TYPE_CHECKING:
    from common.schema import Manifest
    from trainer.classifier import Classifier

NUM_SAMPLES = 10_000
KNN_K = 3
SWD_PATCH = 7  # neighbourhood side, as Karras et al.
SWD_PATCHES_PER_IMAGE = 16  # they take 128 of 16,384 images; 16 of 10,000 bounds memory
SWD_REPEATS, SWD_DIRECTIONS = 4, 128
SWD_MIN_SIDE = 8  # the pyramid halves while the next level is at least this wide
STACKED_SAMPLES = 26_000  # Stacked MNIST's modes and KL: the VEEGAN / PacGAN protocol
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000  # as TF-GAN and StyleGAN2-ADA
LOWER, HIGHER = "lower", "higher"


@dataclasses.dataclass(frozen=True)
class Metric:
    """How a metric is shown and compared: the promotion gate, the benchmarks, the summaries."""

    label: str  # in summary lines
    fmt: str  # a format template: "{:.3f}"
    direction: str  # which way is better
    # Reported, not held to the gate's relative tolerance: an unbiased estimate near zero can
    # be negative, and "2% worse" of a value at the noise floor means nothing.
    gated: bool = True
    curve: str = ""  # the gallery's panel for its value during training; none when empty


# Every metric an evaluation may report, in the order summaries show them.
METRICS = {
    "frechet_distance": Metric("FD", "{:.3f}", LOWER, curve="Fréchet distance"),
    "kernel_distance": Metric("KID", "{:.4f}", LOWER, gated=False),
    "sliced_wasserstein": Metric("SWD", "{:.2f}", LOWER, curve="sliced Wasserstein ×10³"),
    "modes_covered": Metric("modes", "{:.0f}", HIGHER, curve="modes covered of 1,000"),
    "mode_kl": Metric("KL", "{:.3f}", LOWER),
    "classifier_score": Metric("score", "{:.2f}", HIGHER, curve="classifier score"),
    "min_class_share": Metric("min class", "{:.3f}", HIGHER),
    "precision": Metric("precision", "{:.3f}", HIGHER),
    "memorization_share": Metric("memorized", "{:.3f}", LOWER, gated=False),
    "recall": Metric("recall", "{:.3f}", HIGHER),
}
PRIMARY = ("frechet_distance", "sliced_wasserstein")  # the first one present decides
MEMORIZED_WITHIN = 0.5  # of the training image's distance to its nearest other training image


def summary(metrics: dict, floor: dict | None = None) -> str:
    """``FD 2.631 (real 0.912)  score 9.71 …``: the metrics a data set has, in one line."""
    parts = []
    for key, metric in METRICS.items():
        if key in metrics:
            real = f" (real {metric.fmt.format(floor[key])})" if floor and key in floor else ""
            parts.append(f"{metric.label} {metric.fmt.format(metrics[key])}{real}")
    return "  ".join(parts)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():
        # Singular products (fewer samples than feature dimensions) are expected and handled
        # here, as pytorch-fid does; scipy's warning about them is not the user's business.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(cov_a @ cov_b)
        if not np.isfinite(covmean).all():
            offset = np.eye(len(cov_a)) * 1e-6
            covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    covmean = covmean.real
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean))


def kernel_distance(
    a: np.ndarray,
    b: np.ndarray,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = 0,
) -> float:
    """Unbiased MMD² between feature sets with k(x, y) = (x·y / d + 1)³, the mean over
    ``subsets`` random subsets of ``subset_size`` of each (one, of everything, when the sets
    are no larger)."""
    # Kernel matrices in float32 (half the time of float64), their sums in float64: the
    # difference of sums is what carries the result.
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    m = min(len(a), len(b), subset_size)
    rng = np.random.default_rng(seed)
    whole = m == len(a) == len(b)

    def kernel_sum(p: np.ndarray, q: np.ndarray, off_diagonal: bool) -> float:
        k = p @ q.T
        k *= np.float32(1.0 / a.shape[1])
        k += np.float32(1.0)
        cube = k * k
        cube *= k  # in place: a power ufunc is several times slower
        diagonal = np.trace(cube, dtype=np.float64) if off_diagonal else 0.0
        return float(cube.sum(dtype=np.float64) - diagonal)

    estimates = []
    for _ in range(1 if whole else subsets):
        x = a if whole else a[rng.choice(len(a), m, replace=False)]
        y = b if whole else b[rng.choice(len(b), m, replace=False)]
        within = kernel_sum(x, x, True) + kernel_sum(y, y, True)
        estimates.append(within / (m * (m - 1)) - 2.0 * kernel_sum(x, y, False) / (m * m))
    return float(np.mean(estimates))


def classifier_score(probs: np.ndarray) -> float:
    marginal = probs.mean(axis=0, keepdims=True)
    kl = (probs * (np.log(probs + 1e-12) - np.log(marginal + 1e-12))).sum(axis=1)
    return float(np.exp(kl.mean()))


def class_coverage(probs: np.ndarray, num_classes: int) -> dict[str, float]:
    shares = np.bincount(probs.argmax(axis=1), minlength=num_classes) / len(probs)
    nonzero = shares[shares > 0]
    return {
        "class_entropy": float(-(nonzero * np.log(nonzero)).sum()),
        "min_class_share": float(shares.min()),
    }


def _squared_norms(points: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", points, points)


# The searches below expand ‖q − m‖² = ‖q‖² + ‖m‖² − 2 q·m and leave out the term that is
# constant along a row until the row has been reduced, and reduce the distances tile by tile:
# a tile of QUERY_BLOCK × POINT_TILE stays in cache between its matrix product and its passes
# (benchmarks/LOG.md, "The export's searches in tiles").
QUERY_BLOCK = 256
POINT_TILE = 4096


@dataclasses.dataclass(frozen=True)
class Tiling:
    block: int = QUERY_BLOCK
    tile: int = POINT_TILE


def _tiles(
    queries: np.ndarray, points: np.ndarray, scale: float, offsets: np.ndarray, tiling: Tiling
):
    """Per block of queries, its tiles: (block start, tile start, scale · q·m + offset_m)."""
    for start in range(0, len(queries), tiling.block):
        block = queries[start : start + tiling.block]
        for first in range(0, len(points), tiling.tile):
            rows = block @ points[first : first + tiling.tile].T
            rows *= scale
            rows += offsets[None, first : first + tiling.tile]
            yield start, first, rows


def _smallest(rows: np.ndarray, count: int) -> np.ndarray:
    """Each row's ``count`` smallest values, overwriting ``rows``: ``count`` argmin passes are
    ~7× faster than a partition for the few a k-NN radius needs."""
    index = np.arange(len(rows))
    taken = np.empty((len(rows), count), rows.dtype)
    for i in range(count):
        nearest = rows.argmin(axis=1)
        taken[:, i] = rows[index, nearest]
        rows[index, nearest] = np.inf
    return taken


def _knn_radii(
    points: np.ndarray, k: int, of: np.ndarray | None = None, tiling: Tiling = Tiling()
) -> np.ndarray:
    """Each point's squared distance to its k-th nearest neighbour among ``points``; only the
    points indexed by ``of``, when given."""
    norms = _squared_norms(points)
    queries = points if of is None else points[of]
    candidates: dict[int, list[np.ndarray]] = {}
    for start, _, rows in _tiles(queries, points, -2.0, norms, tiling):
        # k + 1, not k: each point is its own nearest neighbour.
        candidates.setdefault(start, []).append(_smallest(rows, min(k + 1, rows.shape[1])))
    radii = np.empty(len(queries))
    for start, parts in candidates.items():
        # With k or fewer other points there is no k-th neighbour: the radius is infinite.
        parts.append(np.full((len(parts[0]), k + 1), np.inf, parts[0].dtype))
        nearest = np.partition(np.concatenate(parts, axis=1), k, axis=1)[:, k]
        radii[start : start + len(nearest)] = nearest + _squared_norms(
            queries[start : start + len(nearest)]
        )
    return np.maximum(radii, 0.0)


def _nearest(queries: np.ndarray, points: np.ndarray, tiling: Tiling = Tiling()):
    """Each query's squared distance to its nearest point, and that point's index."""
    distances = np.full(len(queries), np.inf)
    indices = np.zeros(len(queries), np.int64)
    for start, first, rows in _tiles(queries, points, -2.0, _squared_norms(points), tiling):
        nearest = rows.argmin(axis=1)
        value = rows[np.arange(len(rows)), nearest]
        here = slice(start, start + len(rows))
        closer = value < distances[here]  # ties keep the earlier point, as one argmin would
        distances[here][closer] = value[closer]
        indices[here][closer] = nearest[closer] + first
    return np.maximum(distances + _squared_norms(queries), 0.0), indices


def memorization_share(
    train: np.ndarray, samples: np.ndarray, within: float = MEMORIZED_WITHIN
) -> float:
    """The share of ``samples`` at most ``within`` × d(t, t') from their nearest training point
    t, where t' is t's own nearest other training point: copies of training images (and near
    copies, closer to one than it is to any other) count; new images do not."""
    distance, nearest = _nearest(samples, train)
    # The spacing (squared distance to the nearest other training point) of the training points
    # that are some sample's nearest only: a fraction of a large training set's.
    used, which = np.unique(nearest, return_inverse=True)
    spacing = _knn_radii(train, 1, of=used)
    return float((distance <= within**2 * spacing[which]).mean())


def _coverage_of(
    manifold: np.ndarray, radii: np.ndarray, queries: np.ndarray, tiling: Tiling = Tiling()
) -> float:
    """The share of ``queries`` inside some manifold point's ball: ‖q − m‖² ≤ r_m for some m,
    i.e. max over m of (2 q·m − ‖m‖² + r_m) ≥ ‖q‖²."""
    offsets = (radii - _squared_norms(manifold)).astype(manifold.dtype)
    best = np.full(len(queries), -np.inf)
    for start, _, rows in _tiles(queries, manifold, 2.0, offsets, tiling):
        here = slice(start, start + len(rows))
        best[here] = np.maximum(best[here], rows.max(axis=1))
    return float((best >= _squared_norms(queries)).mean())


class Embedded:
    """Images in a classifier's feature space: features, class probabilities, and (computed on
    first use, then kept) each point's distance to its k-th nearest neighbour."""

    def __init__(self, features: np.ndarray, probs: np.ndarray):
        self.features, self.probs = features, probs
        self.points = features.astype(np.float32)

    @functools.cached_property
    def radii(self) -> np.ndarray:
        return _knn_radii(self.points, KNN_K)


def embed(classifier: Classifier, images: np.ndarray) -> Embedded:
    return Embedded(*classifier.features_and_probs(images))


def precision_recall(real: Embedded, fake: Embedded) -> dict[str, float]:
    return {
        "precision": _coverage_of(real.points, real.radii, fake.points),
        "recall": _coverage_of(fake.points, fake.radii, real.points),
    }


def compare_embedded(real: Embedded, fake: Embedded) -> dict[str, float]:
    """Every classifier metric of the generated ``fake`` against the ``real`` images."""
    return {
        "frechet_distance": frechet_distance(fake.features, real.features),
        "kernel_distance": kernel_distance(fake.features, real.features),
        "classifier_score": classifier_score(fake.probs),
        **class_coverage(fake.probs, fake.probs.shape[1]),
        **precision_recall(real, fake),
    }


def compare(classifier: Classifier, real: np.ndarray, images: np.ndarray) -> dict[str, float]:
    """Every classifier metric of ``images`` against the real ``real`` images."""
    return compare_embedded(embed(classifier, real), embed(classifier, images))


# --- sliced Wasserstein distance on Laplacian pyramids (Karras et al. 2018) ----------------------

_GAUSS = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]).astype(np.float32) / 256.0


def _blur(images: np.ndarray) -> np.ndarray:
    return ndimage.convolve(images, _GAUSS[None, :, :, None], mode="mirror")


def laplacian_pyramid(images: np.ndarray) -> list[np.ndarray]:
    """[N, H, W, C] → band-pass levels from H×W down, the last one the low-pass residual."""
    levels, current = [], images.astype(np.float32)
    while min(current.shape[1:3]) // 2 >= SWD_MIN_SIDE:
        down = _blur(current)[:, ::2, ::2]
        up = np.zeros_like(current)
        up[:, ::2, ::2] = down
        levels.append(current - _blur(up) * 4.0)
        current = down
    return [*levels, current]


def patch_descriptors(level: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """SWD_PATCHES_PER_IMAGE random 7×7×C neighbourhoods per image, flattened."""
    n, height, width, channels = level.shape
    half = SWD_PATCH // 2
    count = n * SWD_PATCHES_PER_IMAGE
    image = np.repeat(np.arange(n), SWD_PATCHES_PER_IMAGE)[:, None, None]
    ys = (
        rng.integers(half, height - half, count)[:, None, None]
        + np.arange(-half, half + 1)[None, :, None]
    )
    xs = (
        rng.integers(half, width - half, count)[:, None, None]
        + np.arange(-half, half + 1)[None, None, :]
    )
    return level[image, ys, xs].reshape(count, SWD_PATCH * SWD_PATCH * channels)


def _normalize(a: np.ndarray, b: np.ndarray, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std over both sets' descriptors, as the paper's reference code."""
    both = np.concatenate([a, b]).reshape(-1, channels)
    mean, std = both.mean(axis=0), both.std(axis=0) + 1e-8
    scale = lambda d: ((d.reshape(len(d), -1, channels) - mean) / std).reshape(len(d), -1)  # noqa: E731
    return scale(a), scale(b)


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> float:
    """Mean over random unit directions of the 1-D Wasserstein distance of the projections."""
    distances = []
    for _ in range(SWD_REPEATS):
        directions = rng.standard_normal((a.shape[1], SWD_DIRECTIONS)).astype(np.float32)
        directions /= np.linalg.norm(directions, axis=0, keepdims=True)
        projected_a = np.sort(a @ directions, axis=0)
        projected_b = np.sort(b @ directions, axis=0)
        distances.append(np.abs(projected_a - projected_b).mean())
    return float(np.mean(distances))


def swd(real: np.ndarray, images: np.ndarray, seed: int = 0) -> dict[str, float]:
    """SWD ×10³ per pyramid level (``swd_<side>``) and their mean (``sliced_wasserstein``)."""
    count = min(len(real), len(images))
    rng = np.random.default_rng(seed)
    real_levels, fake_levels = laplacian_pyramid(real[:count]), laplacian_pyramid(images[:count])
    channels = real.shape[-1]
    result = {}
    for real_level, fake_level in zip(real_levels, fake_levels, strict=True):
        a, b = _normalize(
            patch_descriptors(real_level, rng), patch_descriptors(fake_level, rng), channels
        )
        result[f"swd_{real_level.shape[1]}"] = 1e3 * sliced_wasserstein(a, b, rng)
    result["sliced_wasserstein"] = float(np.mean(list(result.values())))
    return result


# --- Stacked MNIST modes --------------------------------------------------------------------------


def stacked_modes(classifier: Classifier, images: np.ndarray) -> dict[str, float]:
    """Modes covered (of 1,000) and KL(p_gen ‖ uniform), each channel's digit classified."""
    digits = []
    for channel in range(3):
        _, probs = classifier.features_and_probs(images[..., channel : channel + 1])
        digits.append(probs.argmax(axis=1))
    modes = digits[0] * 100 + digits[1] * 10 + digits[2]
    p = np.bincount(modes, minlength=1000) / len(modes)
    nonzero = p[p > 0]
    return {
        "modes_covered": float(len(nonzero)),
        "mode_kl": float((nonzero * np.log(nonzero * 1000)).sum()),
    }


# --- what a data set is scored with ---------------------------------------------------------------


def sample(
    generate: Callable[[np.ndarray, np.ndarray], np.ndarray],
    latent_dim: int,
    classes: list[int],
    num_samples: int,
    seed: int = 1234,
    batch: int = 1000,
) -> tuple[np.ndarray, np.ndarray]:
    """``num_samples`` images from fixed latents (and labels drawn from ``classes``)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((num_samples, latent_dim)).astype(np.float32)
    labels = np.asarray(classes or [0], np.int32)[rng.integers(0, len(classes or [0]), num_samples)]
    images = np.concatenate(
        [generate(z[i : i + batch], labels[i : i + batch]) for i in range(0, num_samples, batch)]
    )
    return images, labels


class Evaluator:
    """Scores generated images against a data set's test split, by what the data set offers."""

    def __init__(
        self,
        spec,
        real: np.ndarray,
        classifier: Classifier | None,
        num_samples: int = NUM_SAMPLES,
        data_fingerprint: str = "",
        cache_root: str = "",
    ):
        self.spec = spec
        self.real = real[:num_samples]
        self.classifier = classifier
        self.num_samples = num_samples
        # Where real-data floors and embeddings are cached (trainer/real_cache.py): none
        # without both.
        self.data_fingerprint, self.cache_root = data_fingerprint, cache_root
        # Training images' embedding, once held: samples are checked for copies of them.
        self._train: Embedded | None = None

    @functools.cached_property
    def _reference(self) -> Embedded:
        """The real images' embedding: computed once, compared with every sample set."""
        return self._embed_split("test", self.real)

    def _embed_split(self, split: str, images: np.ndarray) -> Embedded:
        """The embedding of ``split``'s first ``len(images)`` images (``images``): from the
        cache when an earlier run of this classifier on this data computed it, else computed and
        cached."""
        if not self._caches:
            return embed(self.classifier, images)
        from trainer import real_cache

        key = real_cache.EmbeddingKey(
            self.classifier.sha256, self.data_fingerprint, split, len(images)
        )
        cached = real_cache.load_embedding(self.classifier, self.cache_root, key)
        if cached is not None:
            return Embedded(*cached)
        embedded = embed(self.classifier, images)
        real_cache.save_embedding(
            self.classifier, self.cache_root, key, embedded.features, embedded.probs
        )
        return embedded

    @property
    def _caches(self) -> bool:
        """Whether real-data results are cached: with a cache root, the data's fingerprint and
        a saved classifier (its sha256 names the feature space)."""
        return bool(
            self.cache_root and self.data_fingerprint and self.classifier and self.classifier.sha256
        )

    def score(self, images: np.ndarray, labels: np.ndarray | None = None) -> dict[str, float]:
        """``images``' metrics against the real images; with ``labels`` (those a conditional
        generator was asked for) also its label accuracy."""
        if self.spec.stacked_mnist:  # modes on all samples (26,000), SWD on as many as real
            return {**stacked_modes(self.classifier, images), **swd(self.real, images)}
        if self.classifier is None:
            return swd(self.real, images)
        fake = embed(self.classifier, images)
        metrics = compare_embedded(self._reference, fake)
        if self._train is not None:
            metrics["memorization_share"] = memorization_share(self._train.points, fake.points)
        if labels is not None:
            metrics["label_accuracy"] = float((fake.probs.argmax(axis=1) == labels).mean())
        return metrics

    def evaluate(
        self,
        generate: Callable[[np.ndarray, np.ndarray], np.ndarray],
        latent_dim: int,
        conditional: bool,
    ) -> dict[str, float]:
        """Sample from fixed latents and score the samples against the real images."""
        classes = list(self.spec.kept)
        count = max(self.num_samples, STACKED_SAMPLES) if self.spec.stacked_mnist else None
        images, labels = sample(generate, latent_dim, classes, count or self.num_samples)
        reads_labels = self.classifier is not None and self.classifier.test_accuracy is not None
        asked = conditional and reads_labels and not self.spec.stacked_mnist
        return self.score(images, labels=labels if asked else None)

    @property
    def feature_space(self) -> str:
        if self.classifier is None:
            return "sliced Wasserstein distance of Laplacian-pyramid patches (×10³)"
        if self.classifier.test_accuracy is None:
            return "InceptionV3 ImageNet features (the standard FID)"
        named = f" {self.classifier.sha256[:12]}" if self.classifier.sha256 else ""
        return (
            f"the feature space of classifier{named} ({self.classifier.test_accuracy:.4f} test "
            "accuracy)"
        )

    def hold_training_images(self, train: np.ndarray) -> None:
        """From now on, check samples for copies of these training images, the training split's
        first ``len(train)`` (all of them: a copy of one left out would go unseen). Classifier
        feature spaces only."""
        if self.classifier is not None and not self.spec.stacked_mnist:
            self._train = self._embed_split("train", train)

    def nearest_training(self, images: np.ndarray, k: int = 3) -> np.ndarray | None:
        """Indices into the held training images of each image's ``k`` nearest, nearest first
        (None when none are held): what a person compares samples with to see copies."""
        if self._train is None:
            return None
        queries = embed(self.classifier, images).points
        rows = _squared_norms(self._train.points)[None, :] - 2.0 * queries @ self._train.points.T
        return np.argsort(rows, axis=1, kind="stable")[:, :k]

    def real_floor(self, train: np.ndarray) -> dict[str, float]:
        """The same metrics for real training images vs the test split: the best a model can do
        (with training images held, the test images' memorization share: fresh images').
        Computed once per classifier, data set, sample count and held images, then cached beside
        the classifier."""
        key = self._floor_key(len(train))
        if key is None:
            return self._compute_floor(train)
        from trainer import real_cache

        cached = real_cache.load_floor(self.classifier, self.cache_root, key)
        if cached is not None:
            return cached
        floor = self._compute_floor(train)
        real_cache.save_floor(self.classifier, self.cache_root, key, floor)
        return floor

    def _floor_key(self, train_images: int):
        """The floor's cache key, or None where floors are not cached (no saved classifier)."""
        if not self._caches:
            return None
        from trainer import real_cache

        return real_cache.FloorKey(
            classifier_sha256=self.classifier.sha256,
            data_fingerprint=self.data_fingerprint,
            num_samples=self.num_samples,
            train_images=train_images,
            held_images=0 if self._train is None else len(self._train.points),
        )

    def _compute_floor(self, train: np.ndarray) -> dict[str, float]:
        rng = np.random.default_rng(0)
        subset = train[rng.choice(len(train), min(self.num_samples, len(train)), replace=False)]
        held, self._train = self._train, None  # the subset is not checked against itself
        floor = self.score(subset)
        self._train = held
        if held is not None:
            floor["memorization_share"] = memorization_share(held.points, self._reference.points)
        return floor


def make_evaluator(
    data_dir: str,
    manifest: Manifest,
    classifier_dir: str,
    num_samples: int = NUM_SAMPLES,
    feature_extractor: str = "own",
) -> Evaluator:
    """The evaluator of a data directory: its test split and, when labelled, its classifier
    (or InceptionV3's ImageNet features for any data set, when asked)."""
    from trainer import classifier as classifier_lib
    from trainer import data

    spec = manifest.spec
    classifier = None
    if feature_extractor == "inception_v3":
        classifier = classifier_lib.inception()
        spec = dataclasses.replace(spec, stacked_mnist=False)  # score as images, not digits
    root = classifier_dir or classifier_lib.DEFAULT_CACHE
    if feature_extractor == "own" and spec.labelled:
        classifier = classifier_lib.load_or_train(root, data_dir, manifest)
    real = data.load_examples(data_dir, manifest, "test", num_samples).images
    return Evaluator(spec, real, classifier, num_samples, manifest.fingerprint, root)
