"""Training statistics by name (trainer/stats.py): declared where computed, shown wherever read."""

from __future__ import annotations

import pytest

from trainer import augment, gan, penalties, schedule, stats


def test_the_progress_line_shows_every_declared_statistic_of_a_record_in_its_order():
    record = {
        "step": 100,
        gan.D_LOSS: 0.5,
        gan.D_REAL: 1.25,
        penalties.PENALTY: 0.0123,
        "undeclared": 7.0,
        augment.AUGMENT_P: 0.2,
        augment.REAL_SIGN: 0.61,
        schedule.LR_SCALE: 0.5,
    }
    assert stats.line(record) == (
        "d_loss 0.5000  D(x) 1.250  penalty 0.0123  p 0.200  rt +0.61  lr ×0.50"
    )


def test_gallery_panels_group_the_recorded_statistics():
    names = ["step", gan.D_LOSS, gan.G_LOSS, gan.D_REAL, penalties.PENALTY, augment.AUGMENT_P]
    assert stats.panels(names) == [
        ("losses", (gan.D_LOSS, gan.G_LOSS, penalties.PENALTY)),
        ("discriminator outputs", (gan.D_REAL,)),
        ("augmentation", (augment.AUGMENT_P,)),
    ]


def test_a_name_declared_twice_differently_is_refused():
    with pytest.raises(AssertionError):
        stats.declare(gan.D_LOSS, "loss of D", "{:.2f}")
