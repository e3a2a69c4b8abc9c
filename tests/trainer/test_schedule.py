"""The learning-rate schedule against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize(
    "decay_start, expected",
    [
        # 10 steps, the second half decaying: (10 - step) / (10 - 5) from step 5 on.
        (0.5, [1, 1, 1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2, 0, 0]),
        # From the first step: (10 - step) / 10.
        (0.0, [1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0, 0]),
        # From step 8: (10 - step) / 2.
        (0.8, [1, 1, 1, 1, 1, 1, 1, 1, 1, 0.5, 0, 0]),
        (1.0, [1] * 12),  # the default: constant, also past the planned steps
    ],
)
def test_learning_rate_scale_by_hand(decay_start, expected):
    from trainer.schedule import learning_rate_scale

    got = [float(learning_rate_scale(step, 10, decay_start)) for step in range(12)]
    np.testing.assert_allclose(got, expected, atol=1e-7)


def test_a_decay_shorter_than_one_step_is_no_decay():
    from trainer.schedule import learning_rate_scale

    assert float(learning_rate_scale(9, 10, 0.95)) == 1.0  # start 9.5: less than a step left
