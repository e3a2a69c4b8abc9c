"""Differentiable augmentation of every image the discriminator sees, a registry by ``--augment``.

With a few thousand training images the discriminator memorizes them and the generator's
gradients stop meaning anything. Augmenting real *and* generated images, in both players' steps,
with transformations the generator cannot learn to imitate (they are applied after it, with
gradients flowing through them) keeps D from memorizing while G still learns the un-augmented
distribution, provided the transformations do not "leak" (Karras et al. 2020, "Training
Generative Adversarial Networks with Limited Data"; Zhao et al. 2020, "Differentiable
Augmentation for Data-Efficient GAN Training").

- ``diffaugment``: DiffAugment's colour, translation and cutout, on every image.
- ``ada``: StyleGAN2-ADA's geometric and colour pipeline (x-flip, 90° rotations, integer
  translation, isotropic scaling, rotation, anisotropic scaling, fractional translation,
  brightness, contrast, luma flip, hue rotation, saturation), each applied with probability p;
  the train step moves p toward ``--ada_target`` (``adjusted_p``).
- ``ada_geometric``: the same geometric half alone, every colour kept (StyleGAN2-ADA's ``bg``).

A pipeline is a pure function of the images, a table of random draws and p: the train step
draws the table statelessly per (seed, step) for the global batch and slices its replica's rows,
so a resumed run and any number of replicas augment exactly alike. Images are [B, H, W, C] in
[-1, 1]; outputs may leave that range (a brightened image is brighter), as in both papers.
Geometric transforms resample with exact bilinear weights (a gather, so the gradient is the true
adjoint, also of the R1 penalty's gradient), reflecting the image at its borders (ADA) or
filling with zeros (DiffAugment's translation).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from trainer import stats

Tensor = tf.Tensor

DRAWS = 32  # random numbers per image and kind (uniform, normal): the most any pipeline uses
# Reported when p adapts: p itself, and the sign statistic of D on augmented reals that moves it
# (ADA's r_t).
AUGMENT_P = stats.declare("augment_p", "p", "{:.3f}", stats.GLOBAL, panel="augmentation")
REAL_SIGN = stats.declare("d_real_sign", "rt", "{:+.2f}", panel="augmentation")
ADAPTIVE_STATS = (AUGMENT_P, REAL_SIGN)


@dataclasses.dataclass(frozen=True)
class Draws:
    """Per-image random numbers: ``uniform`` in [0, 1) and ``normal`` N(0, 1), [B, DRAWS] each.
    Each transform takes its own columns, in a fixed order."""

    uniform: Tensor
    normal: Tensor


class _Columns:
    """Hands out the draws' columns one at a time, so each transform has its own."""

    def __init__(self, draws: Draws):
        self._draws = draws
        self._next = {"uniform": 0, "normal": 0}

    def _take(self, kind: str) -> Tensor:
        column = self._next[kind]
        self._next[kind] += 1
        return getattr(self._draws, kind)[:, column]

    def uniform(self) -> Tensor:
        return self._take("uniform")

    def normal(self) -> Tensor:
        return self._take("normal")

    def applied(self, p: Tensor | float) -> Tensor:
        """[B] bool: whether each image gets the next transform, with probability ``p``."""
        return self.uniform() < p


# --- geometry: 3×3 matrices in pixel coordinates centred on the image ----------------------------
# Each helper returns the *inverse* of its transform, [B, 3, 3], mapping an output pixel to the
# input point it samples; a pipeline composes them by right-multiplying, in the order applied.


def _matrices(rows: list[list[Tensor | float]], batch: Tensor) -> Tensor:
    entries = [tf.broadcast_to(tf.cast(e, tf.float32), [batch]) for row in rows for e in row]
    return tf.reshape(tf.stack(entries, axis=-1), [batch, 3, 3])


def _translate_inverse(tx: Tensor, ty: Tensor) -> Tensor:
    b = tf.shape(tx)[0]
    return _matrices([[1, 0, -tx], [0, 1, -ty], [0, 0, 1]], b)


def _scale_inverse(sx: Tensor, sy: Tensor) -> Tensor:
    b = tf.shape(sx)[0]
    return _matrices([[1 / sx, 0, 0], [0, 1 / sy, 0], [0, 0, 1]], b)


def _rotate_inverse(cos: Tensor, sin: Tensor) -> Tensor:
    """The inverse of a rotation by the angle whose cosine and sine are given."""
    b = tf.shape(cos)[0]
    return _matrices([[cos, sin, 0], [-sin, cos, 0], [0, 0, 1]], b)


def resample(images: Tensor, inverse: Tensor, fill: str = "reflect") -> Tensor:
    """Each output pixel bilinearly sampled at ``inverse`` × its centred coordinates.

    ``fill``: ``reflect`` mirrors the image at its borders (no edge pixel repeated);
    ``zeros`` samples 0 outside it. An integer translation, a flip or a 90° rotation of a
    square image moves pixels exactly.
    """
    dtype = images.dtype
    images = tf.cast(images, tf.float32)
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    rows, cols = tf.meshgrid(
        tf.range(height, dtype=tf.float32), tf.range(width, dtype=tf.float32), indexing="ij"
    )
    centre_x, centre_y = (width - 1) / 2, (height - 1) / 2
    points = tf.stack(
        [
            tf.reshape(cols, [-1]) - centre_x,
            tf.reshape(rows, [-1]) - centre_y,
            tf.ones([height * width]),
        ],
        axis=0,
    )  # [3, H·W]
    source = tf.linalg.matmul(inverse, points)  # [B, 3, H·W]
    x = source[:, 0] + centre_x
    y = source[:, 1] + centre_y
    x0, y0 = tf.floor(x), tf.floor(y)
    flat = tf.reshape(images, [-1, height * width, channels])
    out = tf.zeros_like(flat)
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        xi, yi = x0 + dx, y0 + dy
        weight = (1 - tf.abs(x - xi)) * (1 - tf.abs(y - yi))
        if fill == "reflect":
            xi, yi = _reflect(xi, width), _reflect(yi, height)
        else:
            inside = (xi >= 0) & (xi <= width - 1) & (yi >= 0) & (yi <= height - 1)
            weight *= tf.cast(inside, tf.float32)
            xi = tf.clip_by_value(xi, 0, width - 1)
            yi = tf.clip_by_value(yi, 0, height - 1)
        index = tf.cast(yi, tf.int32) * width + tf.cast(xi, tf.int32)
        out += weight[..., None] * tf.gather(flat, index, batch_dims=1)
    return tf.cast(tf.reshape(out, tf.shape(images)), dtype)


def _reflect(index: Tensor, size: int) -> Tensor:
    """Integer coordinates (as floats) folded into [0, size) by mirroring at the borders."""
    if size == 1:
        return tf.zeros_like(index)
    period = 2.0 * (size - 1)
    folded = tf.math.floormod(index, period)
    return tf.where(folded > size - 1, period - folded, folded)


# --- colour: an affine map of each pixel's channels ----------------------------------------------


def _apply_colour(images: Tensor, matrix: Tensor, offset: Tensor) -> Tensor:
    """``matrix`` [B, 3, 3] and ``offset`` [B, 3] on RGB images; on other channel counts the
    map's mean gain and offset on every channel (a grayscale image's brightness and contrast)."""
    dtype = images.dtype
    images = tf.cast(images, tf.float32)
    if images.shape[-1] == 3:
        out = tf.einsum("bij,bhwj->bhwi", matrix, images) + offset[:, None, None, :]
    else:
        gain = tf.reduce_mean(tf.reduce_sum(matrix, axis=2), axis=1)
        out = (
            images * gain[:, None, None, None] + tf.reduce_mean(offset, axis=1)[:, None, None, None]
        )
    return tf.cast(out, dtype)


_LUMA = np.full(3, 1 / math.sqrt(3.0), np.float32)  # the grey axis colour ops turn around
_LUMA_PROJECTION = np.outer(_LUMA, _LUMA)  # v vᵀ
_LUMA_CROSS = np.cross(np.eye(3, dtype=np.float32), _LUMA)  # v×: Rodrigues' rotation about it


# --- the pipelines ------------------------------------------------------------------------------


Transform = Callable[[Tensor], Tensor]


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """An augmentation. ``bind(draws, p, height, width)`` fixes one batch's random transforms
    (computed once, however often D is evaluated on them) as a function of the images;
    ``adaptive`` when the train step moves p."""

    bind: Callable[[Draws, Tensor, int, int], Transform]
    adaptive: bool
    description: str

    def apply(self, images: Tensor, draws: Draws, p: Tensor | float) -> Tensor:
        return self.bind(draws, p, images.shape[1], images.shape[2])(images)


def _bind_diffaugment(draws: Draws, p: Tensor | float, height: int, width: int) -> Transform:
    """DiffAugment's ``color,translation,cutout`` policy (Zhao et al. 2020), on every image
    (``p`` is unused): brightness + U(-½, ½); saturation × U(0, 2) around each pixel's channel
    mean; contrast × U(½, 3/2) around the image's mean; a translation by up to ⅛ of the size
    in whole pixels, zeros filled in; a zeroed square of half the size at a random centre."""
    columns = _Columns(draws)
    brightness = (columns.uniform() - 0.5)[:, None, None, None]
    saturation = (2.0 * columns.uniform())[:, None, None, None]
    contrast = (columns.uniform() + 0.5)[:, None, None, None]

    def shift(size: int) -> Tensor:
        most = int(size * 0.125 + 0.5)
        return tf.floor(columns.uniform() * (2 * most + 1)) - most

    translation = _translate_inverse(shift(width), shift(height))
    cut_h, cut_w = int(height * 0.5 + 0.5), int(width * 0.5 + 0.5)
    centre_x = tf.floor(columns.uniform() * (width + 1 - cut_w % 2))
    centre_y = tf.floor(columns.uniform() * (height + 1 - cut_h % 2))
    cols = tf.range(width, dtype=tf.float32)[None, :]
    rows = tf.range(height, dtype=tf.float32)[None, :]
    left, top = centre_x[:, None] - cut_w // 2, centre_y[:, None] - cut_h // 2
    in_cols = (cols >= left) & (cols < left + cut_w)  # [B, W]
    in_rows = (rows >= top) & (rows < top + cut_h)  # [B, H]
    kept = tf.cast(~tf.logical_and(in_rows[:, :, None], in_cols[:, None, :]), tf.float32)

    def transform(images: Tensor) -> Tensor:
        x = tf.cast(images, tf.float32) + brightness
        pixel_mean = tf.reduce_mean(x, axis=3, keepdims=True)
        x = (x - pixel_mean) * saturation + pixel_mean
        image_mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        x = (x - image_mean) * contrast + image_mean
        x = resample(x, translation, fill="zeros") * kept[..., None]
        return tf.cast(x, images.dtype)

    return transform


# StyleGAN2-ADA's 'bgc' strengths (its AugmentPipe defaults).
ADA_STRENGTH = {
    "translate_int": 0.125,  # of the image size
    "scale_std": 0.2,  # log2
    "aniso_std": 0.2,  # log2
    "translate_frac_std": 0.125,  # of the image size
    "brightness_std": 0.2,
    "contrast_std": 0.5,  # log2
    "saturation_std": 1.0,  # log2
}


def ada_geometry(draws: Draws, p: Tensor, height: int, width: int) -> Tensor:
    """The geometric half of ADA's pipeline as one inverse matrix per image [B, 3, 3]."""
    columns = _Columns(draws)
    batch = tf.shape(draws.uniform)[0]
    one = tf.ones([batch])
    s = ADA_STRENGTH
    inverse = _matrices([[1, 0, 0], [0, 1, 0], [0, 0, 1]], batch)

    def then(applied: Tensor, transform: Tensor) -> None:
        nonlocal inverse
        identity = _matrices([[1, 0, 0], [0, 1, 0], [0, 0, 1]], batch)
        inverse = inverse @ tf.where(applied[:, None, None], transform, identity)

    flip = columns.applied(p) & (columns.uniform() < 0.5)
    then(flip, _scale_inverse(-one, one))
    # 90° rotations: exact cosines and sines, no π rounding.
    quarter = tf.cast(tf.floor(columns.uniform() * 4), tf.int32)
    then(
        columns.applied(p),
        _rotate_inverse(
            tf.gather([1.0, 0.0, -1.0, 0.0], quarter), tf.gather([0.0, 1.0, 0.0, -1.0], quarter)
        ),
    )
    applied = columns.applied(p)
    tx = tf.round((2 * columns.uniform() - 1) * s["translate_int"] * width)
    ty = tf.round((2 * columns.uniform() - 1) * s["translate_int"] * height)
    then(applied, _translate_inverse(tx, ty))
    applied = columns.applied(p)
    scale = tf.pow(2.0, columns.normal() * s["scale_std"])
    then(applied, _scale_inverse(scale, scale))
    # Rotation is applied before and after the anisotropic scaling, each time with the
    # probability that makes "at least once" p (ADA).
    p_rotate = 1 - tf.sqrt(tf.maximum(1 - p, 0.0))

    def rotation() -> None:
        applied = columns.applied(p_rotate)
        theta = (2 * columns.uniform() - 1) * math.pi
        then(applied, _rotate_inverse(tf.cos(theta), tf.sin(theta)))

    rotation()
    applied = columns.applied(p)
    aniso = tf.pow(2.0, columns.normal() * s["aniso_std"])
    then(applied, _scale_inverse(aniso, 1 / aniso))
    rotation()
    applied = columns.applied(p)
    tx = columns.normal() * s["translate_frac_std"] * width
    ty = columns.normal() * s["translate_frac_std"] * height
    then(applied, _translate_inverse(tx, ty))
    return inverse


def ada_colour(draws: Draws, p: Tensor) -> tuple[Tensor, Tensor]:
    """The colour half of ADA's pipeline: (matrix [B, 3, 3], offset [B, 3]) per image."""
    columns = _Columns(
        Draws(draws.uniform[:, DRAWS // 2 :], draws.normal[:, DRAWS // 2 :])
    )  # the geometry's columns are its own
    batch = tf.shape(draws.uniform)[0]
    s = ADA_STRENGTH
    eye = tf.eye(3, batch_shape=[batch])
    matrix, offset = eye, tf.zeros([batch, 3])

    def then(applied: Tensor, new_matrix: Tensor, new_offset: Tensor | None = None) -> None:
        nonlocal matrix, offset
        new_matrix = tf.where(applied[:, None, None], new_matrix, eye)
        new_offset = (
            tf.zeros([batch, 3])
            if new_offset is None
            else tf.where(applied[:, None], new_offset, 0.0)
        )
        matrix = new_matrix @ matrix
        offset = tf.linalg.matvec(new_matrix, offset) + new_offset

    applied = columns.applied(p)
    brightness = columns.normal() * s["brightness_std"]
    then(applied, eye, tf.tile(brightness[:, None], [1, 3]))
    applied = columns.applied(p)
    contrast = tf.pow(2.0, columns.normal() * s["contrast_std"])
    then(applied, eye * contrast[:, None, None])
    projection = tf.constant(_LUMA_PROJECTION)
    flip = columns.applied(p) & (columns.uniform() < 0.5)
    then(flip, eye - 2.0 * projection)
    applied = columns.applied(p)
    theta = (2 * columns.uniform() - 1) * math.pi
    cross = tf.constant(_LUMA_CROSS)
    cos, sin = tf.cos(theta)[:, None, None], tf.sin(theta)[:, None, None]
    then(applied, cos * eye + sin * cross + (1 - cos) * projection)
    applied = columns.applied(p)
    saturation = tf.pow(2.0, columns.normal() * s["saturation_std"])[:, None, None]
    then(applied, projection + (eye - projection) * saturation)
    return matrix, offset


def _bind_ada(draws: Draws, p: Tensor | float, height: int, width: int) -> Transform:
    """StyleGAN2-ADA's geometric + colour pipeline, each transform with probability ``p``."""
    # No tf.cond skipping p = 0: under the R1 penalty's double backprop it made the step's graph
    # take minutes to build.
    geometric = _bind_ada_geometric(draws, p, height, width)
    colour = ada_colour(draws, tf.convert_to_tensor(p, tf.float32))
    return lambda images: _apply_colour(geometric(images), *colour)


def _bind_ada_geometric(draws: Draws, p: Tensor | float, height: int, width: int) -> Transform:
    """ADA's geometric half alone (its ``bg`` pipeline): every colour stays the image's own."""
    geometry = ada_geometry(draws, tf.convert_to_tensor(p, tf.float32), height, width)
    return lambda images: resample(images, geometry, fill="reflect")


PIPELINES: dict[str, Pipeline] = {
    "none": Pipeline(
        lambda draws, p, height, width: tf.identity, adaptive=False, description="none"
    ),
    "diffaugment": Pipeline(
        _bind_diffaugment,
        adaptive=False,
        description="DiffAugment's colour, translation and cutout on every image (Zhao et al. "
        "2020)",
    ),
    "ada": Pipeline(
        _bind_ada,
        adaptive=True,
        description="StyleGAN2-ADA's geometric and colour pipeline at an adaptive probability "
        "p (Karras et al. 2020)",
    ),
    "ada_geometric": Pipeline(
        _bind_ada_geometric,
        adaptive=True,
        description="ADA's geometric transforms alone, at an adaptive p: for data whose colours "
        "carry meaning (skin tones, flags, logos)",
    ),
}


def mirror(images: Tensor, uniform: Tensor) -> Tensor:
    """Each image flipped left-right where its ``uniform`` draw [B] is below ½: the data set's
    x-flips (StyleGAN2-ADA's ``--mirror``), before anything else sees the batch."""
    flipped = tf.where(uniform[:, None, None, None] < 0.5, images[:, :, ::-1, :], images)
    return flipped


def adjusted_p(p: Tensor, real_sign: Tensor, target: float, images: int, kimg: float) -> Tensor:
    """ADA's controller: p moves by ``images / (kimg·1000)`` toward more augmentation when the
    discriminator's sign statistic on reals ``real_sign`` (r_t, in [-1, 1]) is above
    ``target``, toward less when below, clipped to [0, 1]. ``kimg``: the images over which p
    could cross from 0 to 1."""
    step = tf.sign(real_sign - target) * images / (kimg * 1000.0)
    return tf.clip_by_value(p + step, 0.0, 1.0)
