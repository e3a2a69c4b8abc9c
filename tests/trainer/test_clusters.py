"""Self-conditioning's clusters: found without labels, assigned in the step, drawn from z."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from trainer import clusters


def three_groups(sizes=(50, 30, 20), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images [N, 12, 12, 1] of three bright squares in different corners, lightly noisy."""
    rng = np.random.default_rng(seed)
    images, groups = [], []
    for group, (size, (row, col)) in enumerate(zip(sizes, [(0, 0), (0, 6), (6, 3)], strict=True)):
        template = -np.ones((12, 12, 1), np.float32)
        template[row : row + 6, col : col + 6] = 1.0
        images.append(template + 0.1 * rng.standard_normal((size, 12, 12, 1)).astype(np.float32))
        groups += [group] * size
    return np.concatenate(images), np.asarray(groups)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two labelings group the items alike (cluster numbers are arbitrary)."""
    return len({*zip(a, b, strict=True)}) == len(set(a)) == len(set(b))


def loaded(fitted: clusters.Fitted, image_shape=(12, 12, 1)) -> clusters.Clusters:
    module = clusters.Clusters(len(fitted.frequencies), image_shape)
    module.load(fitted)
    return module


def test_kmeans_finds_the_groups_and_their_shares():
    images, groups = three_groups()
    fitted = clusters.fit(images, 3, seed=0)
    assigned = loaded(fitted).assign(images).numpy()
    assert same_partition(assigned, groups)
    np.testing.assert_allclose(sorted(fitted.frequencies), [0.2, 0.3, 0.5])
    assert fitted.frequencies[assigned[0]] == pytest.approx(0.5)  # the group of 50


def test_the_step_assigns_a_new_image_to_its_groups_cluster():
    images, groups = three_groups()
    module = loaded(clusters.fit(images, 3, seed=0))
    fresh, fresh_groups = three_groups(sizes=(2, 2, 2), seed=1)
    assigned = module.assign(fresh).numpy()
    fitted_cluster = {g: c for g, c in zip(groups, module.assign(images).numpy(), strict=True)}
    assert [fitted_cluster[g] for g in fresh_groups] == list(assigned)


def test_fewer_images_than_clusters_is_refused():
    images, _ = three_groups(sizes=(1, 1, 1))
    with pytest.raises(ValueError, match="4 clusters need at least 4 images, got 3"):
        clusters.fit(images, 4, seed=0)


def test_fewer_images_than_principal_components_still_fit():
    images, groups = three_groups(sizes=(4, 3, 2))
    fitted = clusters.fit(images, 3, seed=0)
    assert fitted.basis.shape == (144, clusters.PRINCIPAL_COMPONENTS)
    assert same_partition(loaded(fitted).assign(images).numpy(), groups)


@pytest.mark.parametrize("side, factor", [(28, 1), (32, 1), (33, 2), (64, 2), (100, 4)])
def test_images_are_pooled_to_at_most_32_a_side(side, factor):
    assert clusters.pool_factor((side, side, 3)) == factor
    assert clusters.feature_size((side, side, 3)) == (side // factor) ** 2 * 3


def fitted_with_shares(shares: list[float]) -> clusters.Fitted:
    """Clusters of 4×4×1 images with the given shares (their centroids do not matter here)."""
    size = clusters.feature_size((4, 4, 1))
    return clusters.Fitted(
        np.zeros(size), np.eye(size), np.zeros((len(shares), size)), np.asarray(shares)
    )


def module_with_shares(shares: list[float]) -> clusters.Clusters:
    return loaded(fitted_with_shares(shares), (4, 4, 1))


def test_a_cluster_is_drawn_from_z_by_hand():
    # Shares 0.5 / 0.3 / 0.2: Φ(z₀) = 0.65 lies in cluster 1's interval [0.5, 0.8), halfway:
    # z₀' = Φ⁻¹(0.5) = 0. Φ(z₀) = 0.9 is 1/2 into [0.8, 1): cluster 2, z₀' = 0 again; 0.1 is
    # 1/5 into [0, 0.5): cluster 0, z₀' = Φ⁻¹(0.2).
    module = module_with_shares([0.5, 0.3, 0.2])
    u = np.array([0.65, 0.9, 0.1])
    z = np.stack([stats.norm.ppf(u), [1.0, 2.0, 3.0]], axis=1).astype(np.float32)
    drawn, labels = module.draw(z)
    assert list(labels.numpy()) == [1, 2, 0]
    np.testing.assert_allclose(drawn[:, 0], [0.0, 0.0, stats.norm.ppf(0.2)], atol=2e-4)
    np.testing.assert_array_equal(drawn[:, 1], [1.0, 2.0, 3.0])  # the rest of z untouched


def test_drawn_clusters_follow_the_shares_and_leave_z_standard_normal():
    shares = [0.5, 0.3, 0.15, 0.05]
    module = module_with_shares(shares)
    z = np.random.default_rng(0).standard_normal((200_000, 4)).astype(np.float32)
    drawn, labels = (t.numpy() for t in module.draw(z))
    np.testing.assert_allclose(np.bincount(labels) / len(labels), shares, atol=0.005)
    for cluster in range(len(shares)):
        first = drawn[labels == cluster, 0]
        # As in training: z₀' is N(0, 1) whatever the cluster.
        assert stats.kstest(first, "norm").statistic < 0.01, cluster


def test_clusters_per_channel_partition_each_channel_and_offset_its_labels():
    # Channel 0 groups the images 50/30/20; channel 1 holds the same images in another order,
    # so its groups cut across channel 0's.
    images, groups = three_groups()
    order = np.random.default_rng(1).permutation(len(images))
    stacked = np.concatenate([images, images[order]], axis=-1)
    module = clusters.ChannelClusters(3, (12, 12, 2))
    fitted = module.fit(stacked, seed=0)
    labels = module.assign(stacked).numpy()
    assert labels.shape == (100, 2)
    assert same_partition(labels[:, 0], groups) and same_partition(labels[:, 1], groups[order])
    assert set(labels[:, 0]) == {0, 1, 2} and set(labels[:, 1]) == {3, 4, 5}
    for channel in fitted:
        np.testing.assert_allclose(sorted(channel.frequencies), [0.2, 0.3, 0.5])


def test_each_channels_cluster_is_drawn_independently_from_its_own_coordinate():
    shares = [[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]
    module = clusters.ChannelClusters(3, (4, 4, 2))
    for channel, channel_shares in zip(module.channels, shares, strict=True):
        channel.load(fitted_with_shares(channel_shares))
    z = np.random.default_rng(0).standard_normal((200_000, 5)).astype(np.float32)
    drawn, labels = (t.numpy() for t in module.draw(z))
    assert labels.shape == (200_000, 2)
    first, second = labels[:, 0], labels[:, 1] - 3  # channel 1's clusters are rows 3..5
    np.testing.assert_allclose(np.bincount(first) / len(z), shares[0], atol=0.005)
    np.testing.assert_allclose(np.bincount(second) / len(z), shares[1], atol=0.005)
    joint = np.bincount(3 * first + second, minlength=9).reshape(3, 3) / len(z)
    np.testing.assert_allclose(joint, np.outer(*shares), atol=0.005)  # independent
    for coordinate in (0, 1):  # each re-drawn coordinate N(0, 1) again
        assert stats.kstest(drawn[:, coordinate], "norm").statistic < 0.01
    np.testing.assert_array_equal(drawn[:, 2:], z[:, 2:])
