"""The k-NN radii and manifold coverage behind precision and recall, against hand-computed
values."""

import numpy as np
import pytest

from trainer import evaluation

# One query and one point a tile, uneven tiles, and everything in one tile.
TILINGS = [evaluation.Tiling(1, 1), evaluation.Tiling(2, 3), evaluation.Tiling()]


@pytest.mark.parametrize("tiling", TILINGS)
@pytest.mark.parametrize(
    "k, expected",
    [
        # Points 0, 1, 3, 6, 10 on a line: squared distances to their k-th nearest other point.
        (1, [1, 1, 4, 9, 16]),
        (2, [9, 4, 9, 16, 49]),
    ],
)
def test_knn_radii_are_squared_distances_to_the_kth_neighbour(k, expected, tiling):
    points = np.array([[0.0], [1.0], [3.0], [6.0], [10.0]], np.float32)
    assert evaluation._knn_radii(points, k, tiling=tiling).tolist() == expected


@pytest.mark.parametrize("tiling", TILINGS)
def test_a_point_without_k_others_has_an_infinite_radius(tiling):
    points = np.array([[0.0], [1.0], [3.0]], np.float32)
    assert evaluation._knn_radii(points, 2, tiling=tiling).tolist() == [9, 4, 9]
    assert evaluation._knn_radii(points, 3, tiling=tiling).tolist() == [np.inf] * 3


def test_a_duplicate_point_is_a_neighbour_at_distance_zero():
    points = np.array([[0.0], [0.0], [2.0]], np.float32)
    assert evaluation._knn_radii(points, 1).tolist() == [0, 0, 4]
    assert evaluation._knn_radii(points, 2).tolist() == [4, 4, 4]


@pytest.mark.parametrize("tiling", TILINGS)
def test_coverage_counts_queries_inside_some_ball_boundary_included(tiling):
    # Balls around 0, 1, 3 of squared radii 1, 1, 4 (each point's nearest neighbour): 0.5 and
    # 2.5 are inside, -1 and 5 exactly on a boundary (inside), 10 outside: 4 of 5.
    manifold = np.array([[0.0], [1.0], [3.0]], np.float32)
    radii = evaluation._knn_radii(manifold, 1)
    queries = np.array([[0.5], [2.5], [-1.0], [5.0], [10.0]], np.float32)
    assert evaluation._coverage_of(manifold, radii, queries, tiling=tiling) == 0.8
    assert evaluation._coverage_of(manifold, radii * 0.99, queries, tiling=tiling) == 0.4


@pytest.mark.parametrize("tiling", TILINGS)
def test_nearest_finds_each_querys_closest_point_the_first_of_ties(tiling):
    points = np.array([[0.0], [4.0], [6.0], [4.0], [9.0]], np.float32)
    queries = np.array([[5.0], [8.0], [-1.0], [4.0]], np.float32)
    distances, indices = evaluation._nearest(queries, points, tiling=tiling)
    # 5 is 1 from 4 (points 1 and 3) and from 6: point 1 comes first.
    assert indices.tolist() == [1, 4, 0, 1]
    assert distances.tolist() == [1, 1, 1, 0]


def test_kernel_distance_is_the_unbiased_mmd_of_the_cubic_kernel_by_hand():
    # k(x, y) = (x·y + 1)³ in one dimension. Within X = {0, 1}: k(0, 1) = 1; within Y = {1, 2}:
    # k(1, 2) = 27; across: k(0,1), k(0,2), k(1,1), k(1,2) = 1, 1, 8, 27, mean 9.25.
    x, y = np.array([[0.0], [1.0]]), np.array([[1.0], [2.0]])
    assert evaluation.kernel_distance(x, y) == pytest.approx(1 + 27 - 2 * 9.25)


def test_kernel_distance_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 3000, 16))
    same = evaluation.kernel_distance(a, b, subsets=20, subset_size=500)
    shifted = evaluation.kernel_distance(a, b + 0.5, subsets=20, subset_size=500)
    assert abs(same) < 0.02 < shifted
    assert evaluation.kernel_distance(a, b + 1.0, subsets=20, subset_size=500) > shifted


def test_memorization_share_counts_samples_within_half_the_training_spacing():
    # Training points 0, 10, 20 (each 10 from its nearest other): a sample within 5 of its
    # nearest training point is a copy, the boundary included.
    train = np.array([[0.0], [10.0], [20.0]])
    samples = np.array([[2.0], [14.0], [25.0], [27.0]])
    assert evaluation.memorization_share(train, samples) == 3 / 4
    assert evaluation.memorization_share(train, train) == 1.0
    # A duplicated training image (spacing 0): only its exact copies count.
    twice = np.array([[0.0], [0.0], [10.0]])
    assert evaluation.memorization_share(twice, np.array([[0.0], [0.5]])) == 1 / 2


def test_knn_radii_of_chosen_points_are_theirs_among_all():
    points = np.array([[0.0], [1.0], [3.0], [6.0], [10.0]], np.float32)
    chosen = np.array([4, 0])
    for tiling in TILINGS:
        assert evaluation._knn_radii(points, 1, of=chosen, tiling=tiling).tolist() == [16, 1]
