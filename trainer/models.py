"""Generator and discriminator architectures, a registry keyed by ``--architecture``.

Every generator maps ``z`` [B, latent_dim] (and ``label`` [B] when conditional) to images
[B, H, W, C] in [-1, 1], the data's shape from its manifest; every discriminator maps images (and
labels) to one logit per image. Architectures scale with the resolution: ``dcgan`` starts from
H/4 × W/4 (7×7 for MNIST, 8×8 for 32) and adds a stride-2 block per doubling above 32;
``upsample`` pads to a multiple of 32 inside the model (as its seed pads MNIST to 32×32) and
crops back, so the data contract and the exported signature never change; ``dense`` works at any
size.

Conditioning: a generator with batch norm gets class-conditional batch norm (every norm layer
scales and shifts per class); one without (``dense``) gets a label embedding concatenated to
``z``. The discriminator is a projection discriminator (Miyato & Koyama 2018),
``logit = ψ(h) + <embed(y), h>``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import keras
from keras import layers

from common.cli import UserError
from trainer import layers as gan_layers

BASE_MAX = 8  # the generator's first feature map is at most BASE_MAX × BASE_MAX


class ShapeError(UserError, ValueError):
    """An architecture cannot produce the data's image shape."""


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    latent_dim: int = 128
    image_shape: tuple[int, int, int] = (28, 28, 1)
    num_classes: int = 0  # 0: unconditional
    spectral_norm: bool = False
    width: int = 64  # channels (or units) of the first block; the rest scale from it
    d_width: int | None = None  # the discriminator's own width; None: ``width``
    dropout: float | None = None  # None: the architecture's own default
    minibatch_std: int = 0  # D's minibatch standard deviation group size; 0: off
    # Labels per image: 1, or one per channel (clusters per channel: [B, groups] ids, each
    # group's own rows of the num_classes, their embeddings averaged).
    label_groups: int = 1

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def channels(self) -> int:
        return self.image_shape[2]

    def label_input(self) -> keras.KerasTensor:
        shape = () if self.label_groups == 1 else (self.label_groups,)
        return keras.Input(shape, dtype="int32", name="label")

    def embed(self, label: keras.KerasTensor, size: int, **kwargs) -> keras.KerasTensor:
        """The label's embedding [B, size]: the groups' embeddings averaged."""
        embedded = gan_layers.Embedding(self.num_classes, size, **kwargs)(label)
        if self.label_groups > 1:
            embedded = layers.GlobalAveragePooling1D(**kwargs)(embedded)
        return embedded

    @property
    def discriminator_width(self) -> int:
        return self.width if self.d_width is None else self.d_width


def upsampling_blocks(height: int, width: int, minimum: int = 2) -> int:
    """Stride-2 blocks from the first feature map to H×W: at least ``minimum``, more until the
    first map is at most BASE_MAX on a side (MNIST: 2, from 7×7; 32: 2; 64: 3; 128: 4)."""
    blocks = minimum
    while (
        max(height, width) >> blocks > BASE_MAX
        and height % (1 << (blocks + 1)) == 0
        and width % (1 << (blocks + 1)) == 0
    ):
        blocks += 1
    if height % (1 << blocks) or width % (1 << blocks):
        raise ShapeError(
            f"images of {height}x{width} are not divisible by {1 << blocks}; preprocess with "
            "--image_size=32/64/128 or use --architecture=dense or upsample"
        )
    return blocks


Norm = Callable[[keras.KerasTensor], keras.KerasTensor]
NormFactory = Callable[..., Norm]  # (momentum=0.99) → a new batch-norm layer
GeneratorBody = Callable[[keras.KerasTensor, ModelSpec, NormFactory], keras.KerasTensor]
DiscriminatorBody = Callable[[keras.KerasTensor, ModelSpec], keras.KerasTensor]


@dataclasses.dataclass(frozen=True)
class Architecture:
    generator_body: GeneratorBody  # latent (+ label embedding) → images [B, 28, 28, 1]
    discriminator_body: DiscriminatorBody  # images → features [B, F]; the logit head is shared
    description: str
    label_beside_z: bool = False  # conditional G without norm layers: embed the label beside z


def _sn(layer: layers.Layer, spec: ModelSpec) -> layers.Layer:
    return layers.SpectralNormalization(layer) if spec.spectral_norm else layer


def _dropout(spec: ModelSpec, default: float) -> layers.Layer | None:
    rate = default if spec.dropout is None else spec.dropout
    return gan_layers.Dropout(rate) if rate > 0 else None


def _minibatch_std(spec: ModelSpec, last: bool) -> layers.Layer | None:
    """Before D's last block, as in StyleGAN: that block sees the group's spread beside x."""
    return gan_layers.MinibatchStdDev(spec.minibatch_std) if last and spec.minibatch_std else None


def _apply(x: keras.KerasTensor, *stack: layers.Layer | None) -> keras.KerasTensor:
    for layer in stack:
        if layer is not None:
            x = layer(x)
    return x


def _bn(momentum: float = 0.99) -> layers.Layer:
    return gan_layers.BatchNormalization(momentum=momentum)


def _conditional_bn(num_classes: int, label: keras.KerasTensor) -> NormFactory:
    def factory(momentum: float = 0.99) -> Norm:
        layer = gan_layers.ConditionalBatchNorm(num_classes, momentum)
        return lambda x: layer([x, label])

    return factory


# --- dense: the seeds' MLP GAN ------------------------------------------------------------------


def _dense_generator(z: keras.KerasTensor, spec: ModelSpec, norm: NormFactory) -> keras.KerasTensor:
    x = z
    for units in (spec.width * 4, spec.width * 8, spec.width * 16):
        x = _apply(x, layers.Dense(units), layers.LeakyReLU(0.2))
    size = spec.image_shape[0] * spec.image_shape[1] * spec.image_shape[2]
    x = layers.Dense(size, activation="tanh", dtype="float32")(x)
    return layers.Reshape(spec.image_shape)(x)


def _dense_discriminator(image: keras.KerasTensor, spec: ModelSpec) -> keras.KerasTensor:
    x = layers.Flatten()(image)
    width = spec.discriminator_width
    for i, units in enumerate((width * 16, width * 8, width * 4)):
        x = _apply(
            x,
            _minibatch_std(spec, last=i == 2),
            _sn(layers.Dense(units), spec),
            layers.LeakyReLU(0.2),
            _dropout(spec, 0.3),
        )
    return x


# --- dcgan: the TensorFlow DCGAN tutorial ------------------------------------------------------


def _dcgan_generator(z: keras.KerasTensor, spec: ModelSpec, norm: NormFactory) -> keras.KerasTensor:
    height, width, channels = spec.image_shape
    blocks = upsampling_blocks(height, width)
    base_h, base_w, w = height >> blocks, width >> blocks, spec.width
    x = _apply(
        z,
        layers.Dense(base_h * base_w * w << blocks, use_bias=False),
        norm(),
        layers.LeakyReLU(),
        layers.Reshape((base_h, base_w, w << blocks)),
    )
    # Channels halve from w·2^blocks down to w; the last block writes the image.
    for i, strides in enumerate([1] + [2] * (blocks - 1)):
        x = _apply(
            x,
            layers.Conv2DTranspose(
                w << (blocks - 1 - i), 5, strides=strides, padding="same", use_bias=False
            ),
            norm(),
            layers.LeakyReLU(),
        )
    return layers.Conv2DTranspose(
        channels, 5, strides=2, padding="same", use_bias=False, activation="tanh", dtype="float32"
    )(x)


def _dcgan_discriminator(image: keras.KerasTensor, spec: ModelSpec) -> keras.KerasTensor:
    x = image
    blocks = upsampling_blocks(*spec.image_shape[:2])
    for i in range(blocks):
        conv = layers.Conv2D(spec.discriminator_width << i, 5, strides=2, padding="same")
        x = _apply(
            x,
            _minibatch_std(spec, last=i == blocks - 1),
            _sn(conv, spec),
            layers.LeakyReLU(),
            _dropout(spec, 0.3),
        )
    return layers.Flatten()(x)


# --- upsample: UpSampling2D + Conv2D at 32×32 (the fourth seed) --------------------------------


def _padded(spec: ModelSpec) -> tuple[int, int, int]:
    """The 32-multiple the upsample models work at, and the up-sampling blocks to reach it."""
    height, width = (-(-side // 32) * 32 for side in spec.image_shape[:2])
    return height, width, upsampling_blocks(height, width)


def _upsample_generator(
    z: keras.KerasTensor, spec: ModelSpec, norm: NormFactory
) -> keras.KerasTensor:
    w = spec.width
    height, width, blocks = _padded(spec)
    base_h, base_w = height >> blocks, width >> blocks
    x = _apply(
        z,
        layers.Dense(base_h * base_w * w * 4),
        layers.LeakyReLU(0.2),
        layers.Reshape((base_h, base_w, w * 4)),
    )
    for i in range(blocks):
        x = _apply(
            x,
            layers.UpSampling2D(),
            layers.Conv2D(max(w, w * 2 >> i), 3, padding="same"),
            norm(momentum=0.8),
            layers.LeakyReLU(0.2),
        )
    x = layers.Conv2D(spec.channels, 3, padding="same", activation="tanh", dtype="float32")(x)
    top, left = (height - spec.image_shape[0]) // 2, (width - spec.image_shape[1]) // 2
    crop = ((top, height - spec.image_shape[0] - top), (left, width - spec.image_shape[1] - left))
    return layers.Cropping2D(crop)(x)  # MNIST: 32×32 → 28×28


def _pad_with_background(image: keras.KerasTensor, spec: ModelSpec) -> keras.KerasTensor:
    # Pad with the background value -1, as the seed pads MNIST, not with 0 (mid-grey).
    height, width, _ = _padded(spec)
    top, left = (height - spec.image_shape[0]) // 2, (width - spec.image_shape[1]) // 2
    pad = ((top, height - spec.image_shape[0] - top), (left, width - spec.image_shape[1] - left))
    return layers.ZeroPadding2D(pad)(image + 1.0) - 1.0


def _upsample_discriminator(image: keras.KerasTensor, spec: ModelSpec) -> keras.KerasTensor:
    x = _pad_with_background(image, spec)
    blocks = _padded(spec)[2]
    for i, strides in enumerate([1] + [2] * blocks):
        width = spec.discriminator_width << min(i, blocks)
        conv = layers.Conv2D(width, 3, strides=strides, padding="same")
        x = _apply(
            x,
            _minibatch_std(spec, last=i == blocks),
            _sn(conv, spec),
            layers.LeakyReLU(0.2),
            _dropout(spec, 0.0),
        )
    return layers.Flatten()(x)


# --- resnet: a modern baseline without normalization (after R3GAN) ------------------------------
# Huang et al. 2024's G and D, scaled to a CPU: one residual block per resolution, plain 3×3
# convolutions in the block (grouped ones cost more than they save on CPUs: benchmarks/README.md,
# "Limited data"), no normalization layers, fix-up initialization (each block's last
# convolution starts at zero, so every block starts as the identity), bilinear resampling, leaky
# ReLU, the label's embedding beside z in G and a projection D.


def _stage_channels(spec_width: int, blocks: int, stage: int) -> int:
    """Channels at a resolution stage (0: the first feature map), halving as it doubles."""
    return spec_width << (blocks - stage)


def _residual(x: keras.KerasTensor, channels: int, depth: int, conv=lambda c: c):
    """x + conv₃ₓ₃(lrelu(conv₃ₓ₃(lrelu(x)))), the second convolution zero at the start; the
    first scaled by depth^-¼ (Fixup, Zhang et al. 2019, m = 2 layers a branch)."""
    scaled = keras.initializers.VarianceScaling(2.0 * depth**-0.5, "fan_in", "truncated_normal")
    branch = _apply(
        x,
        layers.LeakyReLU(0.2),
        conv(layers.Conv2D(channels, 3, padding="same", kernel_initializer=scaled)),
        layers.LeakyReLU(0.2),
        conv(layers.Conv2D(channels, 3, padding="same", kernel_initializer="zeros")),
    )
    return layers.Add()([x, branch])


def _resnet_generator(
    z: keras.KerasTensor, spec: ModelSpec, norm: NormFactory
) -> keras.KerasTensor:
    height, width, channels = spec.image_shape
    blocks = upsampling_blocks(height, width)
    base_h, base_w = height >> blocks, width >> blocks
    x = _apply(
        z,
        layers.Dense(base_h * base_w * _stage_channels(spec.width, blocks, 0)),
        layers.Reshape((base_h, base_w, _stage_channels(spec.width, blocks, 0))),
    )
    for stage in range(blocks + 1):
        if stage:
            x = _apply(
                x,
                layers.UpSampling2D(interpolation="bilinear"),
                layers.Conv2D(_stage_channels(spec.width, blocks, stage), 1),
            )
        x = _residual(x, _stage_channels(spec.width, blocks, stage), blocks + 1)
    return _apply(
        x,
        layers.LeakyReLU(0.2),
        layers.Conv2D(channels, 1, activation="tanh", dtype="float32"),
    )


def _resnet_discriminator(image: keras.KerasTensor, spec: ModelSpec) -> keras.KerasTensor:
    blocks = upsampling_blocks(*spec.image_shape[:2])
    width = spec.discriminator_width

    def sn(layer: layers.Layer) -> layers.Layer:
        return _sn(layer, spec)

    x = sn(layers.Conv2D(_stage_channels(width, blocks, blocks), 1))(image)
    for stage in range(blocks, -1, -1):
        x = _residual(x, _stage_channels(width, blocks, stage), blocks + 1, conv=sn)
        if stage:
            x = _apply(
                x,
                layers.AveragePooling2D(2),
                sn(layers.Conv2D(_stage_channels(width, blocks, stage - 1), 1)),
            )
    return _apply(
        x,
        _minibatch_std(spec, last=True),
        layers.LeakyReLU(0.2),
        layers.Flatten(),
        sn(layers.Dense(_stage_channels(width, blocks, 0))),
        layers.LeakyReLU(0.2),
    )


ARCHITECTURES: dict[str, Architecture] = {
    "dense": Architecture(
        _dense_generator,
        _dense_discriminator,
        "MLP generator and critic (the seeds' dense GAN)",
        label_beside_z=True,
    ),
    "dcgan": Architecture(
        _dcgan_generator,
        _dcgan_discriminator,
        "the TensorFlow DCGAN tutorial: Dense→Conv2DTranspose generator, Conv2D critic",
    ),
    "upsample": Architecture(
        _upsample_generator,
        _upsample_discriminator,
        "UpSampling2D+Conv2D generator on 32×32 padded inputs (the Keras GAN class seed)",
    ),
    "resnet": Architecture(
        _resnet_generator,
        _resnet_discriminator,
        "residual G and D without normalization, fix-up initialization, bilinear resampling "
        "(after R3GAN, Huang et al. 2024), for RGB at 32-256 px",
        label_beside_z=True,
    ),
}


# --- assembly ------------------------------------------------------------------------------------


def build_generator(name: str, spec: ModelSpec) -> keras.Model:
    architecture = ARCHITECTURES[name]
    z = keras.Input((spec.latent_dim,), name="z")
    inputs, x, norm = [z], z, _bn
    if spec.conditional:
        label = spec.label_input()
        inputs.append(label)
        norm = _conditional_bn(spec.num_classes, label)
        if architecture.label_beside_z:
            x = layers.Concatenate()([z, spec.embed(label, spec.latent_dim // 2)])
    images = architecture.generator_body(x, spec, norm)
    return keras.Model(inputs, images, name="generator")


def build_discriminator(name: str, spec: ModelSpec) -> keras.Model:
    image = keras.Input(spec.image_shape, name="image")
    inputs = [image]
    features = ARCHITECTURES[name].discriminator_body(image, spec)
    logit = _sn(layers.Dense(1, dtype="float32"), spec)(features)
    if spec.conditional:
        label = spec.label_input()
        inputs.append(label)
        projection = gan_layers.ClassProjection(spec.num_classes, dtype="float32")(
            [features, label]
        )
        logit = layers.Add(dtype="float32")([logit, projection])
    return keras.Model(inputs, layers.Reshape((), dtype="float32")(logit), name="discriminator")
