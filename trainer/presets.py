"""Named training configurations: the one place a measured configuration is written down.

A preset is a set of ``TrainConfig`` field values; flags given on the command line win over it.
``pipeline.run``, ``pipeline.submit train`` (and so ``cloudbuild.yaml``) train ``PIPELINE``
unless told otherwise; ``python -m trainer.task`` alone trains ``tutorial``, the TensorFlow DCGAN
tutorial's configuration (the dataclass defaults). No TensorFlow import here: the pipeline's
launchers read this module without paying for one.
"""

from __future__ import annotations

from collections.abc import Sequence

TUTORIAL = "tutorial"
PIPELINE = "pipeline"
UNCONDITIONAL = "unconditional"
LIMITED = "limited"
LIMITED_UNCONDITIONAL = "limited_unconditional"
SMOKE = "smoke"
AUTO = "auto"  # not a preset: the one ``automatic`` picks for the data

# R3GAN's objective (Huang et al. 2024): the relativistic pairing loss with R1 and R2 on real and
# generated images, γ = 1, Adam(5e-4, β1 0, β2 0.99), no dropout in D; the penalties lazily every
# 16th step at 16× γ (StyleGAN2's interval). benchmarks/LOG.md: "How the unconditional default
# was picked", "R1/R2 every 16th step, adopted".
ZERO_CENTRED_GAN: dict[str, object] = {
    "loss": "relativistic",
    "r1_gamma": 1.0,
    "r2_gamma": 1.0,
    "penalty_every": 16,
    "g_learning_rate": 5e-4,
    "d_learning_rate": 5e-4,
    "beta1": 0.0,
    "beta2": 0.99,
    "d_dropout": 0.0,
}

# The width the presets other than ``pipeline`` were measured at, G and D alike.
WIDTH_32: dict[str, object] = {"model_width": 32, "d_width": 0}

_PIPELINE: dict[str, object] = {
    "conditional": True,
    # G at a quarter of the tutorial's width, D at half: half the FLOPs an image of width 32
    # throughout, at about its FD. benchmarks/LOG.md, "A narrow generator, adopted".
    "model_width": 16,
    "d_width": 32,
    **ZERO_CENTRED_GAN,
    # Batch, steps and rate: benchmarks/LOG.md, "Batch 96, adopted", then "Batch 64 for the
    # narrow G, adopted" (1.5 times the updates, a lower FD), then "320 kimg" (fewer images
    # raise FD).
    "batch_size": 64,
    "train_steps": 5000,
    "g_learning_rate": 7e-4,
    "d_learning_rate": 7e-4,
    # Both learning rates fall linearly to zero over the second half: trainer/schedule.py.
    "lr_decay_start": 0.5,
    "mixed_precision": "auto",
    "log_every": 250,
    "sample_every": 500,
    "checkpoint_every": 1000,
    "eval_every": 2500,
    "eval_samples": 2000,
}

# Three times the updates an image at batch 32 (about the same images/s), for 480 kimg: about
# what a 2-core bf16 host trains at 64×64×3 in 20 minutes, the rates decaying over the second
# half. ADA's geometric transforms alone: on the Twemoji folder at 20 minutes they lowered FD
# and KID where the whole ADA pipeline raised them (its colour transforms leaked into the
# samples' colours); on the first 1,000 MNIST digits ADA's p stayed near 0. The rest is the
# pipeline preset's. benchmarks/README.md, "Limited data".
LIMITED_DATA: dict[str, object] = {
    "augment": "ada_geometric",
    "batch_size": 32,
    "g_learning_rate": 5e-4,
    "d_learning_rate": 5e-4,
    "train_steps": 15_000,
    "log_every": 500,
    "sample_every": 1500,
    "checkpoint_every": 1500,
    "eval_every": 5000,
}

# What "MNIST-like" means to ``automatic``: where the MNIST presets were measured.
MNIST_LIKE_MAX_SIDE = 32
MNIST_LIKE_MIN_IMAGES = 20_000

PRESETS: dict[str, dict[str, object]] = {
    # The TensorFlow DCGAN tutorial: width 64, batch 128, non-saturating loss, Adam(2e-4, 0.5).
    TUTORIAL: {},
    # The measured default: class-conditional BN in G and a projection D, a narrow G, batch 64,
    # EMA, bf16 where the device has it, the zero-centred objective above.
    PIPELINE: _PIPELINE,
    # The same without labels, for --noconditional runs and unlabelled image folders: G and D
    # self-conditioned on 100 k-means clusters of the images, batch 32, Adam at 5e-4, 384 kimg;
    # benchmarks/LOG.md, "Self-conditioning on k-means clusters, adopted". A --max_minutes run
    # with more --train_steps than it reaches never decays.
    UNCONDITIONAL: {
        **_PIPELINE,
        **WIDTH_32,
        **ZERO_CENTRED_GAN,
        "conditional": False,
        "clusters": 100,
        "batch_size": 32,
        "train_steps": 12_000,
        "log_every": 1000,
        "sample_every": 2000,
        "checkpoint_every": 4000,
        "eval_every": 6000,
    },
    # A user's folder: a few thousand images, often RGB.
    LIMITED: {**_PIPELINE, **WIDTH_32, **LIMITED_DATA},
    LIMITED_UNCONDITIONAL: {
        **_PIPELINE,
        **WIDTH_32,
        **ZERO_CENTRED_GAN,
        "conditional": False,
        "clusters": 0,
        **LIMITED_DATA,
    },
    # The pipeline's model at toy size: a build or a cluster checked end to end in minutes
    # (the cloud rehearsal test trains it), not a model anyone should use.
    SMOKE: {
        **ZERO_CENTRED_GAN,
        "conditional": True,
        "model_width": 8,
        "latent_dim": 16,
        "batch_size": 16,
        "train_steps": 40,
        "mixed_precision": "auto",
        "log_every": 4,
        "sample_every": 20,
        "checkpoint_every": 4,
        "eval_every": 0,
    },
}


def with_default(trainer_args: Sequence[str]) -> list[str]:
    """Trainer arguments as the launchers (``pipeline.run``, ``pipeline.submit train``) send
    them: ``--preset=auto`` first, the measured recipe for the data, unless they name a preset;
    the flags the user gave come after it and win."""
    named = any(arg.lstrip("-").split("=", 1)[0] == "preset" for arg in trainer_args)
    return list(trainer_args) if named else [f"--preset={AUTO}", *trainer_args]


def describe() -> str:
    """One help line per preset."""
    return "; ".join(
        f"{name}: " + (", ".join(f"{k}={v}" for k, v in values.items()) or "the dataclass defaults")
        for name, values in PRESETS.items()
    )


def automatic(image_shape: tuple[int, ...], labelled: bool, train_images: int) -> tuple[str, str]:
    """``--preset=auto``: the measured preset for data of this kind, and why (StyleGAN2-ADA's
    ``--cfg=auto`` in spirit): the MNIST recipes where they were measured, grayscale images of
    at most 32 px with tens of thousands of them; the limited-data recipes for the rest."""
    height, width, channels = image_shape
    labels = "labelled" if labelled else "unlabelled"
    kind = f"{height}×{width}×{channels}, {train_images:,} {labels} training images"
    mnist_like = channels == 1 and max(height, width) <= MNIST_LIKE_MAX_SIDE
    if mnist_like and train_images >= MNIST_LIKE_MIN_IMAGES:
        return (PIPELINE if labelled else UNCONDITIONAL), f"{kind}: MNIST-like, its recipe"
    why = (
        f"fewer than {MNIST_LIKE_MIN_IMAGES:,} images"
        if mnist_like
        else f"not grayscale of at most {MNIST_LIKE_MAX_SIDE} px"
    )
    return (
        LIMITED if labelled else LIMITED_UNCONDITIONAL
    ), f"{kind}: {why}, the limited-data recipe"
