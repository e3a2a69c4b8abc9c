"""Named training configurations: the one place a measured configuration is written down.

A preset is a set of ``TrainConfig`` field values; flags given on the command line win over it.
``pipeline.run``, ``pipeline.submit train`` (and so ``cloudbuild.yaml``) train ``PIPELINE``
unless told otherwise; ``python -m trainer.task`` alone trains ``tutorial``, the TensorFlow DCGAN
tutorial's configuration (the dataclass defaults). No TensorFlow import here: the pipeline's
launchers read this module without paying for one.
"""

from __future__ import annotations

TUTORIAL = "tutorial"
PIPELINE = "pipeline"
UNCONDITIONAL = "unconditional"
LIMITED = "limited"
LIMITED_UNCONDITIONAL = "limited_unconditional"
SMOKE = "smoke"
AUTO = "auto"  # not a preset: the one ``automatic`` picks for the data

# R3GAN's objective (Huang et al. 2024): the relativistic pairing loss with R1 and R2 on real and
# generated images, γ = 1, Adam(5e-4, β1 0, β2 0.99), no dropout in D. Picked for the
# unconditional model (benchmarks/README.md, selection table: FD 43 vs 100 in the same 5
# minutes); on the conditional one it beats the old recipe's FD in fewer than half the steps.
# The penalties lazily every 16th step, at 16× γ (StyleGAN2's R1 interval; first picked every
# 4th): unconditional FD 8.7 → 7.5 at 1,200 kimg; conditional FD 3.27 → 3.29 after 6,000 steps
# at 1.06× the step rate on the bf16 machine.
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

_PIPELINE: dict[str, object] = {
    "conditional": True,
    "model_width": 32,
    **ZERO_CENTRED_GAN,
    # 3,500 steps of 96 at 7e-4: as good as 3,000 of 128 on 12.5% fewer images at the same
    # images/s (FD 2.57 / 2.77 / 2.43 for seeds 0 / 1 / 2, against 2.67 / 2.66 / 2.61), so
    # 0.88× the training time. 3,000 of 96: 2.89; at 6e-4: 2.79; benchmarks/README.md.
    "batch_size": 96,
    "train_steps": 3500,
    "g_learning_rate": 7e-4,
    "d_learning_rate": 7e-4,
    # Both learning rates fall linearly to zero over the second half: FD 3.27 → 2.56 after
    # 6,000 steps of 64 on the bf16 machine (5,000 steps: 2.76; 4,000: 2.83).
    "lr_decay_start": 0.5,
    "mixed_precision": "auto",
    "log_every": 250,
    "sample_every": 500,
    "checkpoint_every": 1000,
    "eval_every": 1750,
    "eval_samples": 2000,
}

# Augmentation against a discriminator that memorizes a small data set; the rest is the
# pipeline preset's. ADA over DiffAugment and none: benchmarks/README.md, "Limited data".
LIMITED_DATA: dict[str, object] = {
    "augment": "ada",
}

# What "MNIST-like" means to ``automatic``: where the MNIST presets were measured.
MNIST_LIKE_MAX_SIDE = 32
MNIST_LIKE_MIN_IMAGES = 20_000

PRESETS: dict[str, dict[str, object]] = {
    # The TensorFlow DCGAN tutorial: width 64, batch 128, non-saturating loss, Adam(2e-4, 0.5).
    TUTORIAL: {},
    # The measured default (benchmarks/README.md): class-conditional BN in G and a projection D,
    # half the tutorial's width, batch 96, EMA, bf16 where the device has it, the zero-centred
    # objective above; 3,500 steps, decaying over the second half, reach FD 2.57 on the bf16
    # machine (the previous recipe: 2.73 after 14,000 steps of 64).
    PIPELINE: _PIPELINE,
    # The same without labels, for --noconditional runs and unlabelled image folders: G and D
    # self-conditioned on 100 k-means clusters of the images (FD 32 → 4.0 at 250 kimg; 10 minutes
    # on the bf16 machine: FD 3.0, every digit ≥ 8.8%), batch 32 (twice the updates per image:
    # FD 9.3 → 8.7 at 1,200 kimg), Adam at 5e-4; benchmarks/README.md. 384 kimg (12,000 steps)
    # with the pipeline preset's decay over the second half (FD 3.55 → 2.73). A --max_minutes
    # run with more --train_steps than it reaches never decays.
    UNCONDITIONAL: {
        **_PIPELINE,
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
    LIMITED: {**_PIPELINE, **LIMITED_DATA},
    LIMITED_UNCONDITIONAL: {
        **_PIPELINE,
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
