"""The augmentations against hand-made inputs, their gradients, and ADA's controller."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from trainer import augment, loop
from trainer.augment import Draws

from .test_training import tiny_config

DIFFAUGMENT, ADA = augment.PIPELINES["diffaugment"], augment.PIPELINES["ada"]


def draws(batch: int = 1, uniform: dict[int, float] | None = None, fill: float = 0.999) -> Draws:
    """Draws with every uniform at ``fill`` (no transform applied below p = 0.999) but the
    columns given, and normals 0 (each transform's neutral value)."""
    table = np.full((batch, augment.DRAWS), fill, np.float32)
    for column, value in (uniform or {}).items():
        table[:, column] = value
    return Draws(tf.constant(table), tf.zeros([batch, augment.DRAWS]))


def dot(row: int, col: int, size: int = 8, channels: int = 1) -> np.ndarray:
    images = np.zeros((1, size, size, channels), np.float32)
    images[0, row, col] = 1.0
    return images


def lit(images) -> list[tuple[int, int]]:
    values = np.asarray(images)[0, ..., 0]
    return [tuple(int(i) for i in index) for index in np.argwhere(np.abs(values) > 1e-5)]


def test_an_integer_translation_moves_a_known_pixel_exactly():
    moved = augment.resample(
        dot(2, 3), augment._translate_inverse(tf.constant([2.0]), tf.constant([1.0])), "zeros"
    )
    assert lit(moved) == [(3, 5)]
    np.testing.assert_allclose(np.asarray(moved)[0, 3, 5, 0], 1.0, atol=1e-6)


def test_a_half_pixel_translation_shares_a_pixel_between_two_neighbours():
    half = augment._translate_inverse(tf.constant([0.5]), tf.constant([0.0]))
    moved = np.asarray(augment.resample(dot(2, 3), half, "zeros"))[0, ..., 0]
    np.testing.assert_allclose(moved[2, 3:5], [0.5, 0.5], atol=1e-6)
    assert lit(moved[None, ..., None]) == [(2, 3), (2, 4)]


def test_reflection_mirrors_the_image_at_its_border():
    row = np.arange(8, dtype=np.float32)[None, None, :, None] * np.ones((1, 8, 1, 1), np.float32)
    moved = np.asarray(
        augment.resample(row, augment._translate_inverse(tf.constant([3.0]), tf.constant([0.0])))
    )
    # Shifted right by 3: columns 0-2 show the mirror of columns 3-1 (the edge not repeated).
    np.testing.assert_allclose(moved[0, 0, :, 0], [3, 2, 1, 0, 1, 2, 3, 4], atol=1e-5)


def test_resampling_gradients_are_the_exact_adjoint():
    """⟨A x, y⟩ = ⟨x, Aᵀ y⟩ for a rotation + scaling: the tape's gradient is Aᵀ y, also at the
    reflecting border, so R1 through an augmentation is the true penalty's gradient."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((2, 8, 8, 3)), tf.float32)
    y = tf.constant(rng.standard_normal((2, 8, 8, 3)), tf.float32)
    theta = tf.constant([0.3, -1.1])
    matrix = augment._rotate_inverse(tf.cos(theta), tf.sin(theta)) @ augment._scale_inverse(
        tf.constant([1.3, 0.8]), tf.constant([1.3, 0.8])
    )
    matrix = matrix @ augment._translate_inverse(tf.constant([0.4, 2.7]), tf.constant([-1.5, 0.0]))
    for fill in ("reflect", "zeros"):
        with tf.GradientTape() as tape:
            tape.watch(x)
            inner = tf.reduce_sum(augment.resample(x, matrix, fill) * y)
        adjoint_y = tape.gradient(inner, x)
        # Linear in x: ⟨A x, y⟩ equals ⟨x, ∇ₓ⟨A x, y⟩⟩ only when the gradient is exact.
        np.testing.assert_allclose(float(tf.reduce_sum(x * adjoint_y)), float(inner), rtol=1e-5)
        assert float(tf.reduce_sum(tf.abs(adjoint_y))) > 1.0


# DiffAugment's columns: brightness, saturation, contrast, x and y shift, cutout x and y centre.
NEUTRAL_COLOUR = {0: 0.5, 1: 0.5, 2: 0.5}  # +0, ×1, ×1
CORNER_CUTOUT = {5: 0.99, 6: 0.99}  # centred at (8, 8): rows and columns 6-7 of 8×8


def test_diffaugment_translates_by_whole_pixels_and_cuts_out_a_known_box():
    moved = DIFFAUGMENT.apply(
        dot(2, 3), draws(uniform={**NEUTRAL_COLOUR, 3: 0.9, 4: 0.9, **CORNER_CUTOUT}), 1.0
    )
    assert lit(moved) == [(3, 4)]  # shifted by (+1, +1)
    ones = np.ones((1, 8, 8, 1), np.float32)
    centred_at_2 = {**NEUTRAL_COLOUR, 3: 0.5, 4: 0.5, 5: 2.5 / 9, 6: 2.5 / 9}
    cut = np.asarray(DIFFAUGMENT.apply(ones, draws(uniform=centred_at_2), 1.0))[0, ..., 0]
    assert (cut[:4, :4] == 0).all() and (cut[4:, :] == 1).all() and (cut[:, 4:] == 1).all()


def test_diffaugment_colour_equals_its_formulas():
    rng = np.random.default_rng(1)
    images = rng.uniform(-1, 1, (16, 8, 8, 3)).astype(np.float32)
    table = rng.uniform(0, 1, (16, augment.DRAWS)).astype(np.float32)
    table[:, 3:5] = 0.5  # no translation
    table[:, 5:7] = 0.99
    out = np.asarray(DIFFAUGMENT.apply(images, Draws(tf.constant(table), tf.zeros([16, 32])), 1.0))
    u = table[:, :3, None, None, None]
    x = images + (u[:, 0] - 0.5)
    x = (x - x.mean(axis=3, keepdims=True)) * 2 * u[:, 1] + x.mean(axis=3, keepdims=True)
    x = (x - x.mean(axis=(1, 2, 3), keepdims=True)) * (u[:, 2] + 0.5) + x.mean(
        axis=(1, 2, 3), keepdims=True
    )
    x[:, 6:, 6:] = 0
    np.testing.assert_allclose(out, x, atol=1e-5)


def test_ada_applies_nothing_at_p_zero_and_each_flip_exactly():
    images = np.random.default_rng(2).uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)
    untouched = ADA.apply(images, draws(fill=0.0), tf.constant(0.0))
    np.testing.assert_array_equal(np.asarray(untouched), images)
    # Column 0 applies the x-flip, column 1 picks it; nothing else below p = 0.5.
    flipped = ADA.apply(images, draws(uniform={0: 0.1, 1: 0.1}), tf.constant(0.5))
    np.testing.assert_allclose(np.asarray(flipped), images[:, :, ::-1], atol=1e-5)
    # Columns 2-3: a 90° rotation (quarter 1) applied.
    turned = ADA.apply(images, draws(uniform={2: 0.3, 3: 0.1}), tf.constant(0.5))
    np.testing.assert_allclose(np.asarray(turned), np.rot90(images, -1, axes=(1, 2)), atol=1e-5)


def test_ada_colour_turns_hue_around_grey_and_flips_luma():
    batch = 1
    table = np.full((batch, augment.DRAWS), 0.999, np.float32)
    colour = augment.DRAWS // 2  # brightness, contrast, luma flip (2), hue (2), saturation
    table[:, colour + 4 : colour + 6] = [0.1, 0.8]  # hue rotation applied, θ = 0.6π
    hue = Draws(tf.constant(table), tf.zeros([batch, augment.DRAWS]))
    pixels = np.array([[[[0.2, 0.2, 0.2], [0.9, -0.3, 0.1]]]], np.float32)
    out = np.asarray(augment._apply_colour(pixels, *augment.ada_colour(hue, tf.constant(0.5))))
    np.testing.assert_allclose(out[0, 0, 0], [0.2, 0.2, 0.2], atol=1e-6)  # grey stays grey
    np.testing.assert_allclose(
        np.linalg.norm(out[0, 0, 1]), np.linalg.norm(pixels[0, 0, 1]), rtol=1e-5
    )  # a rotation: the colour's length kept
    np.testing.assert_allclose(out[0, 0, 1].sum(), pixels[0, 0, 1].sum(), atol=1e-5)  # luma kept
    assert np.abs(out[0, 0, 1] - pixels[0, 0, 1]).max() > 0.3
    table[:, colour + 4] = 0.999
    table[:, colour + 2 : colour + 4] = [0.1, 0.1]  # luma flip applied
    flip = Draws(tf.constant(table), tf.zeros([batch, augment.DRAWS]))
    out = np.asarray(augment._apply_colour(pixels, *augment.ada_colour(flip, tf.constant(0.5))))
    np.testing.assert_allclose(out[0, 0, 0], [-0.2, -0.2, -0.2], atol=1e-6)


def test_ada_geometric_moves_pixels_as_ada_does_and_keeps_every_colour():
    rng = np.random.default_rng(5)
    images = rng.uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32)
    uniform = rng.uniform(0, 1, (4, augment.DRAWS)).astype(np.float32)
    normal = rng.standard_normal((4, augment.DRAWS)).astype(np.float32)
    geometric = augment.PIPELINES["ada_geometric"]
    random = Draws(tf.constant(uniform), tf.constant(normal))
    moved = np.asarray(geometric.apply(images, random, tf.constant(0.9)))
    assert not np.allclose(moved, images, atol=1e-3)
    # ADA with its colour half's columns above p: the same images.
    uniform[:, augment.DRAWS // 2 :] = 0.999
    no_colour = Draws(tf.constant(uniform), tf.constant(normal))
    np.testing.assert_allclose(moved, ADA.apply(images, no_colour, tf.constant(0.9)), atol=1e-5)
    # A skin-tone square stays that tone wherever ADA would recolour it.
    tone = np.broadcast_to(np.float32([0.8, 0.4, 0.1]), (4, 16, 16, 3))
    kept = np.asarray(geometric.apply(tone, random, tf.constant(0.9)))
    np.testing.assert_allclose(kept, tone, atol=1e-5)
    recoloured = np.asarray(ADA.apply(tone, random, tf.constant(0.9)))
    assert np.abs(recoloured - tone).max() > 0.1


@pytest.mark.parametrize("name", ["diffaugment", "ada", "ada_geometric"])
def test_the_same_draws_give_the_same_images_and_gradients_reach_the_input(name):
    rng = np.random.default_rng(3)
    images = tf.constant(rng.uniform(-1, 1, (4, 16, 16, 3)), tf.float32)
    table = Draws(
        tf.constant(rng.uniform(0, 1, (4, augment.DRAWS)), tf.float32),
        tf.constant(rng.standard_normal((4, augment.DRAWS)), tf.float32),
    )
    pipeline = augment.PIPELINES[name]
    with tf.GradientTape() as tape:
        tape.watch(images)
        first = pipeline.apply(images, table, tf.constant(0.8))
        loss = tf.reduce_sum(tf.square(first))
    np.testing.assert_array_equal(first, pipeline.apply(images, table, tf.constant(0.8)))
    assert not np.allclose(np.asarray(first), np.asarray(images), atol=1e-3)
    gradient = tape.gradient(loss, images)
    assert gradient is not None and float(tf.reduce_sum(tf.abs(gradient))) > 0


def test_mirror_flips_the_images_whose_draw_is_below_one_half():
    images = np.arange(2 * 2 * 3).reshape(2, 2, 3, 1).astype(np.float32)
    out = np.asarray(augment.mirror(tf.constant(images), tf.constant([0.2, 0.7])))
    np.testing.assert_array_equal(out[0], images[0, :, ::-1])
    np.testing.assert_array_equal(out[1], images[1])


def test_the_controller_moves_p_toward_the_target_and_stays_in_range():
    p = tf.constant(0.5)
    assert float(augment.adjusted_p(p, tf.constant(0.9), 0.6, 100, 1.0)) == pytest.approx(0.6)
    assert float(augment.adjusted_p(p, tf.constant(0.1), 0.6, 100, 1.0)) == pytest.approx(0.4)
    assert float(augment.adjusted_p(tf.constant(0.99), tf.constant(1.0), 0.6, 100, 1.0)) == 1.0
    assert float(augment.adjusted_p(tf.constant(0.01), tf.constant(-1.0), 0.6, 100, 1.0)) == 0.0


@pytest.mark.parametrize("target", [-0.6, 0.9])
def test_ada_in_the_train_step_moves_p_by_the_sign_statistic(target, tiny_data_dir, tmp_path):
    """Every step: p ← clip(p + sign(r_t - target) · 16 images / 0.1 kimg); p and r_t are
    reported, and the last p is in the checkpoint."""
    config = tiny_config(
        tiny_data_dir,
        str(tmp_path),
        augment="ada",
        augment_p=0.5,
        ada_kimg=0.1,
        ada_target=target,
        train_steps=4,
        log_every=1,
        checkpoint_every=4,
    )
    loop.train(config)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    p = [r["augment_p"] for r in records]
    rt = [r["d_real_sign"] for r in records]
    assert p[0] == pytest.approx(0.5)
    for k in range(1, 4):
        expected = min(max(p[k - 1] + 0.16 * np.sign(rt[k - 1] - target), 0.0), 1.0)
        assert p[k] == pytest.approx(expected), (p, rt)
    reader = tf.train.load_checkpoint(str(tmp_path / "checkpoints" / "ckpt-4"))
    stored = next(k for k in reader.get_variable_to_shape_map() if k.startswith("augment_p"))
    last = min(max(p[3] + 0.16 * np.sign(rt[3] - target), 0.0), 1.0)
    assert float(reader.get_tensor(stored)) == pytest.approx(last)
    # Overconfident on reals against -0.6: p rose; against 0.9 it fell.
    assert (last > 0.5) == (target < 0), (p, rt)


def test_a_fixed_p_stays_where_it_is(tiny_data_dir, tmp_path):
    config = tiny_config(tiny_data_dir, str(tmp_path), augment="ada", augment_p=0.4, ada_kimg=0)
    assert loop.train(config).last_metrics["augment_p"] == pytest.approx(0.4)


def test_relativistic_sign_pairs_real_with_fake():
    from trainer import losses

    real, fake = tf.constant([-2.0, 1.0]), tf.constant([-3.0, 2.0])
    np.testing.assert_array_equal(losses.LOSSES["relativistic"].real_sign(real, fake), [1, -1])
    np.testing.assert_array_equal(losses.LOSSES["hinge"].real_sign(real, fake), [-1, 1])
