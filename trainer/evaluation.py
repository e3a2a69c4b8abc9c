"""Sample-quality metrics in the classifier's feature space, in float64.

- Fréchet distance between Gaussian fits of features (FID's formula, on MNIST features).
- Classifier score: exp E_x KL(p(y|x) ‖ p(y)) (the Inception Score's formula).
- Class coverage: entropy of the predicted-class histogram (nats; log 10 is uniform) and the
  smallest class share.
- Precision and recall of k-NN manifolds (Kynkäänniemi et al. 2019, k=3).
- For conditional generators: the classifier's accuracy on the requested labels.

``evaluate_generator`` draws its latents from a fixed seed, so numbers are reproducible.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from scipy import linalg

from trainer.classifier import Classifier

NUM_SAMPLES = 10_000
KNN_K = 3


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():
        # Singular products (fewer samples than feature dimensions) are expected and handled
        # below, as pytorch-fid does; scipy's warning about them is not the user's business.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(cov_a)) * 1e-6
        covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    covmean = covmean.real
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean))


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


def _pairwise_sq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T, 0.0)


def _knn_radii(points: np.ndarray, k: int, block: int = 2000) -> np.ndarray:
    radii = np.empty(len(points))
    for start in range(0, len(points), block):
        d = _pairwise_sq(points[start : start + block], points)
        radii[start : start + block] = np.partition(d, k, axis=1)[:, k]  # index 0 is the point
    return radii


def _coverage_of(
    manifold: np.ndarray, radii: np.ndarray, queries: np.ndarray, block: int = 2000
) -> float:
    inside = 0
    for start in range(0, len(queries), block):
        d = _pairwise_sq(queries[start : start + block], manifold)
        inside += int((d <= radii[None, :]).any(axis=1).sum())
    return inside / len(queries)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = KNN_K) -> dict[str, float]:
    real32, fake32 = real.astype(np.float32), fake.astype(np.float32)
    return {
        "precision": _coverage_of(real32, _knn_radii(real32, k), fake32),
        "recall": _coverage_of(fake32, _knn_radii(fake32, k), real32),
    }


def compare(classifier: Classifier, real: np.ndarray, images: np.ndarray) -> dict[str, float]:
    """Every metric of ``images`` against the real ``real`` images."""
    real_features, _ = classifier.features_and_probs(real)
    features, probs = classifier.features_and_probs(images)
    return {
        "frechet_distance": frechet_distance(features, real_features),
        "classifier_score": classifier_score(probs),
        **class_coverage(probs, probs.shape[1]),
        **precision_recall(real_features, features),
    }


def evaluate_generator(
    generate: Callable[[np.ndarray, np.ndarray], np.ndarray],
    classifier: Classifier,
    real: np.ndarray,
    latent_dim: int,
    digits: list[int],
    conditional: bool,
    num_samples: int = NUM_SAMPLES,
    seed: int = 1234,
    batch: int = 1000,
) -> dict[str, float]:
    """Sample ``num_samples`` images from fixed latents and compare them with ``real``."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((num_samples, latent_dim)).astype(np.float32)
    labels = np.asarray(digits, np.int32)[rng.integers(0, len(digits), num_samples)]
    images = np.concatenate(
        [generate(z[i : i + batch], labels[i : i + batch]) for i in range(0, num_samples, batch)]
    )
    metrics = compare(classifier, real, images)
    if conditional:
        _, probs = classifier.features_and_probs(images)
        metrics["label_accuracy"] = float((probs.argmax(axis=1) == labels).mean())
    return metrics


def real_floor(
    classifier: Classifier, train: np.ndarray, test: np.ndarray, num_samples: int = NUM_SAMPLES
) -> dict[str, float]:
    """The same metrics for real training images vs the test split: the best a model can do."""
    rng = np.random.default_rng(0)
    subset = train[rng.choice(len(train), min(num_samples, len(train)), replace=False)]
    return compare(classifier, test, subset)
