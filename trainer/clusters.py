"""Self-conditioning for unlabelled data: k-means clusters of the training images as classes.

An unconditional generator maps one Gaussian onto every mode of the data, and pays for the gaps
between modes with samples that lie between them (low precision) and with modes it under-weights.
Self-conditioned GANs (Liu et al., "Diverse Image Generation via Self-Conditioned GANs", CVPR
2020) give G and D cluster labels found in the images themselves and train them as a
class-conditional pair. Here the clusters are fitted once, before the first step: k-means
(k-means++ seeding, Lloyd iterations, the best of a few restarts) on the principal components of
the pixels, averaged down to at most 32 on a side, of a random sample of the training split.
Nothing here reads the data's labels.

A real image's cluster is computed in the train step (a projection and the nearest centroid). A
sample's cluster is drawn from its own z, by the clusters' frequencies in the data: the first
coordinate's normal CDF picks the cluster and is then stretched back over that cluster's interval
into a standard normal, independent of the cluster. So the generator still maps z alone to
images, and the exported SavedModel's signature is the unconditional one.

Data whose channels are independent images (Stacked MNIST: three digits drawn on their own) can
be clustered per channel instead (``ChannelClusters``): k clusters fitted on each channel, an
image's label one cluster per channel, a sample's channels' clusters drawn independently from z's
first coordinates. k clusters per channel then stand for k^C combinations. Measured on 20,000
stacks: a channel's digit is its cluster's most common digit for 43–45% of stacks with 100
clusters of whole stacks (51% with 300), for 85–87% with 100 clusters per channel.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

PRINCIPAL_COMPONENTS = 50
FIT_IMAGES = 20_000  # a random sample of the training split: enough for k ≤ a few hundred
PCA_IMAGES = 5_000  # of those, the principal components' share
MAX_SIDE = 32  # images are averaged down to at most this many pixels a side before the PCA
RESTARTS = 4
ITERATIONS = 50


@dataclasses.dataclass(frozen=True)
class Fitted:
    """The clusters of a data set: features are ``(pooled(x) - mean) @ basis``."""

    mean: np.ndarray  # [D]
    basis: np.ndarray  # [D, P]
    centroids: np.ndarray  # [K, P]
    frequencies: np.ndarray  # [K], the clusters' shares of the fitted images; sums to 1


def pool_factor(image_shape: tuple[int, int, int]) -> int:
    """The average-pooling window that brings the longer side to at most ``MAX_SIDE``."""
    return -(-max(image_shape[:2]) // MAX_SIDE)


def pooled(images: tf.Tensor, factor: int) -> tf.Tensor:
    """Images [B, H, W, C] → float32 [B, D]: averaged over factor × factor windows, flattened."""
    images = tf.cast(images, tf.float32)
    if factor > 1:
        images = tf.nn.avg_pool2d(images, factor, factor, "VALID")
    return tf.reshape(images, [tf.shape(images)[0], -1])


def feature_size(image_shape: tuple[int, int, int]) -> int:
    factor = pool_factor(image_shape)
    return (image_shape[0] // factor) * (image_shape[1] // factor) * image_shape[2]


def components(feature_count: int) -> int:
    """The principal components kept: ``PRINCIPAL_COMPONENTS``, or every feature when fewer."""
    return min(PRINCIPAL_COMPONENTS, feature_count)


def _squared_distances(features: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    distances = (
        (features**2).sum(1, keepdims=True)
        - 2 * features @ centroids.T
        + (centroids**2).sum(1)[None]
    )
    return np.maximum(distances, 0.0)


def kmeans(features: np.ndarray, k: int, seed: int) -> np.ndarray:
    """The centroids [k, P] of the best of ``RESTARTS`` k-means runs (least squared error)."""
    rng = np.random.default_rng(seed)
    best, best_error = None, np.inf
    for _ in range(RESTARTS):
        seeds = [features[rng.integers(len(features))]]
        nearest = _squared_distances(features, seeds[0][None])[:, 0]
        for _ in range(k - 1):  # k-means++: far points are likelier seeds
            total = nearest.sum()
            seeds.append(features[rng.choice(len(features), p=nearest / total if total else None)])
            nearest = np.minimum(nearest, _squared_distances(features, seeds[-1][None])[:, 0])
        centroids = np.stack(seeds)
        for _ in range(ITERATIONS):
            assigned = _squared_distances(features, centroids).argmin(1)
            counts = np.bincount(assigned, minlength=k)
            sums = np.stack(
                [np.bincount(assigned, weights=column, minlength=k) for column in features.T], 1
            )
            # An empty cluster keeps its centroid.
            moved = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centroids)
            if np.array_equal(moved, centroids):
                break
            centroids = moved
        error = _squared_distances(features, centroids).min(1).sum()
        if error < best_error:
            best, best_error = centroids, error
    return best


def fit(images: np.ndarray, k: int, seed: int) -> Fitted:
    """k clusters of ``images`` [N, H, W, C] (N ≥ k): PCA of the pooled pixels, then k-means."""
    if len(images) < k:
        raise ValueError(f"{k} clusters need at least {k} images, got {len(images)}")
    x = pooled(images, pool_factor(images.shape[1:])).numpy().astype(np.float64)
    mean = x.mean(0)
    _, _, directions = np.linalg.svd(x[:PCA_IMAGES] - mean, full_matrices=False)
    basis = directions[:PRINCIPAL_COMPONENTS].T
    # Fewer images than components: zero columns, so the shapes are the variables' always.
    basis = np.pad(basis, [(0, 0), (0, components(x.shape[1]) - basis.shape[1])])
    features = (x - mean) @ basis
    centroids = kmeans(features, k, seed)
    counts = np.bincount(_squared_distances(features, centroids).argmin(1), minlength=k)
    return Fitted(mean, basis, centroids, counts / counts.sum())


class Clusters(tf.Module):
    """Fitted clusters as variables, so a checkpoint holds them and a resumed run (or the export)
    sees exactly the clusters the run started with."""

    def __init__(self, k: int, image_shape: tuple[int, int, int]):
        super().__init__(name="clusters")
        self.factor = pool_factor(image_shape)
        size = feature_size(image_shape)

        def variable(shape: tuple[int, ...], name: str) -> tf.Variable:
            return tf.Variable(tf.zeros(shape), trainable=False, name=name)

        self.mean = variable((size,), "mean")
        self.basis = variable((size, components(size)), "basis")
        self.centroids = variable((k, components(size)), "centroids")
        self.cumulative = variable((k,), "cumulative")  # the frequencies' running sum

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    def fit(self, images: np.ndarray, seed: int) -> list[Fitted]:
        """The clusters of ``images`` [N, H, W, C], loaded into the variables."""
        fitted = fit(images, self.k, seed)
        self.load(fitted)
        return [fitted]

    def load(self, fitted: Fitted) -> None:
        self.mean.assign(fitted.mean.astype(np.float32))
        self.basis.assign(fitted.basis.astype(np.float32))
        self.centroids.assign(fitted.centroids.astype(np.float32))
        self.cumulative.assign(np.cumsum(fitted.frequencies).astype(np.float32))

    def assign(self, images: tf.Tensor) -> tf.Tensor:
        """The nearest centroid of each image: int32 [B]."""
        features = (pooled(images, self.factor) - self.mean) @ self.basis
        distances = (
            tf.reduce_sum(features**2, 1, keepdims=True)
            - 2.0 * features @ tf.transpose(self.centroids)
            + tf.reduce_sum(self.centroids**2, 1)[None]
        )
        return tf.argmin(distances, axis=1, output_type=tf.int32)

    def draw(self, z: tf.Tensor, coordinate: int = 0) -> tuple[tf.Tensor, tf.Tensor]:
        """(z with one coordinate re-drawn, the cluster) for each row of z [B, L].

        u = Φ(z₀), z₀ the ``coordinate``-th coordinate, is uniform; its cluster is the interval
        of the frequencies' running sum that holds it, and u stretched over that interval is
        uniform again: z₀' = Φ⁻¹ of it is a standard normal independent of the cluster, as z₀
        was in training.
        """
        z = tf.cast(z, tf.float32)
        picked = z[:, coordinate : coordinate + 1]
        uniform = 0.5 * (1.0 + tf.math.erf(picked / np.sqrt(2.0)))
        upper = self.cumulative[None]
        labels = tf.reduce_sum(tf.cast(uniform >= upper[:, :-1], tf.int32), axis=1)
        high = tf.gather(self.cumulative, labels)
        low = tf.gather(tf.concat([[0.0], self.cumulative[:-1]], 0), labels)
        within = (uniform[:, 0] - low) / tf.maximum(high - low, 1e-12)
        within = tf.clip_by_value(within, 1e-6, 1.0 - 1e-6)  # Φ⁻¹ stays finite
        first = np.sqrt(2.0) * tf.math.erfinv(2.0 * within - 1.0)
        redrawn = tf.concat([z[:, :coordinate], first[:, None], z[:, coordinate + 1 :]], axis=1)
        return redrawn, labels


class ChannelClusters(tf.Module):
    """k clusters for each channel of the images, fitted and drawn independently. Labels are
    [B, C]: channel c's cluster offset by c·k, so one table of C·k rows embeds them all."""

    def __init__(self, k: int, image_shape: tuple[int, int, int]):
        super().__init__(name="channel_clusters")
        height, width, channels = image_shape
        self.channels = [Clusters(k, (height, width, 1)) for _ in range(channels)]

    @property
    def k(self) -> int:
        return self.channels[0].k

    def fit(self, images: np.ndarray, seed: int) -> list[Fitted]:
        """Each channel's clusters, fitted on that channel of ``images`` [N, H, W, C]."""
        return [
            fitted
            for c, clusters in enumerate(self.channels)
            for fitted in clusters.fit(images[..., c : c + 1], seed + c)
        ]

    def assign(self, images: tf.Tensor) -> tf.Tensor:
        return tf.stack(
            [
                clusters.assign(images[..., c : c + 1]) + c * self.k
                for c, clusters in enumerate(self.channels)
            ],
            axis=1,
        )

    def draw(self, z: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(z with its first C coordinates re-drawn, the clusters [B, C]): channel c's cluster
        from z's c-th coordinate, so the channels' clusters are independent."""
        labels = []
        for c, clusters in enumerate(self.channels):
            z, label = clusters.draw(z, coordinate=c)
            labels.append(label + c * self.k)
        return z, tf.stack(labels, axis=1)


def build(
    k: int, image_shape: tuple[int, int, int], per_channel: bool
) -> Clusters | ChannelClusters:
    """k clusters of whole images, or k for each channel."""
    return (ChannelClusters if per_channel else Clusters)(k, image_shape)
