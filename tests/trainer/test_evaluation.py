"""The k-NN radii behind precision and recall, against hand-computed values."""

import numpy as np
import pytest

from trainer import evaluation


@pytest.mark.parametrize(
    "k, expected",
    [
        # Points 0, 1, 3, 6, 10 on a line: squared distances to their k-th nearest other point.
        (1, [1, 1, 4, 9, 16]),
        (2, [9, 4, 9, 16, 49]),
    ],
)
def test_knn_radii_are_squared_distances_to_the_kth_neighbour(k, expected):
    points = np.array([[0.0], [1.0], [3.0], [6.0], [10.0]], np.float32)
    assert evaluation._knn_radii(points, k, block=2).tolist() == expected


def test_a_duplicate_point_is_a_neighbour_at_distance_zero():
    points = np.array([[0.0], [0.0], [2.0]], np.float32)
    assert evaluation._knn_radii(points, 1).tolist() == [0, 0, 4]
    assert evaluation._knn_radii(points, 2).tolist() == [4, 4, 4]
