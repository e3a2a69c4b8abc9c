"""Every trainer setting, written once: name, type, default and help text.

``trainer/command_line.py`` generates the trainer's absl flags from these fields (``--help``,
``--flagfile`` and ``flags.txt`` stay absl's); ``trainer/config.py`` validates and resolves them;
``pipeline.run`` reads the names to route flags. No TensorFlow import here, so launchers that
only need the names do not pay for one. Choices that come from registries (architectures,
losses) are filled in by ``command_line.py``, which imports them anyway.
"""

from __future__ import annotations

import dataclasses

from common.settings import setting
from trainer import presets

# Flags that were, and what replaced them: an old run's flags.txt is told what to write instead.
RETIRED = {
    "ema_decay": "replaced by --ema_kimg, the EMA's half-life in thousands of images "
    "(a decay d a step at batch B is ln 0.5 / ln d · B / 1000 kimg; 0.999 at 64: 44.3)",
}
# The same flags in an older run's flags.txt, as today's fields: what building its model needs
# (the export reads old runs). An EMA decay of 0 was no EMA: no EMA generator to restore into.
RETIRED_AS = {"ema_decay": lambda raw: {"ema_kimg": 0.0} if float(raw) == 0 else {}}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    data_dir: str = setting(None, "Preprocessed data: TFRecords + manifest.json (local or gs://).")
    job_dir: str = setting(None, "Checkpoints, logs, samples, metrics (local or gs://).")
    preset: str = setting(
        presets.TUTORIAL,
        "Named configuration; flags given explicitly win over it. auto: the one for the "
        "data's kind (printed with the reason). " + presets.describe(),
        choices=(presets.AUTO, *sorted(presets.PRESETS)),
    )
    architecture: str = setting("dcgan", "Generator and discriminator networks.", registry=True)
    loss: str = setting("non_saturating", "The adversarial loss.", registry=True)
    label_smoothing: float = setting(0.0, "One-sided: real targets become 1 - this.")
    training_ratio: int = setting(1, "Discriminator updates per generator update.")
    r1_gamma: float = setting(
        0.0, "R1: γ/2·‖∇D(x)‖² on real images (Mescheder et al. 2018); any loss; 0: off."
    )
    r2_gamma: float = setting(
        0.0, "R2: γ/2·‖∇D(x)‖² on generated images (R3GAN: with R1); any loss; 0: off."
    )
    gp_weight: float | None = setting(
        None,
        "WGAN-GP penalty weight (Gulrajani et al. 2017); unset: 10 for wasserstein_gp, else 0.",
    )
    penalty_every: int = setting(
        1, "Lazy regularization: compute the penalties every k-th step, scaled by k (StyleGAN2)."
    )
    g_learning_rate: float = setting(2e-4, "Generator Adam learning rate.")
    d_learning_rate: float = setting(2e-4, "Discriminator Adam learning rate.")
    lr_decay_start: float = setting(
        1.0,
        "From this fraction of --train_steps on, both learning rates fall linearly to zero at "
        "the last step (0.5: the second half); 1: constant. Counted in steps: a run stopped by "
        "--max_minutes before then never decays.",
    )
    beta1: float = setting(0.5, "Adam beta_1 of both optimizers (DCGAN: 0.5).")
    beta2: float = setting(0.999, "Adam beta_2 of both optimizers.")
    spectral_norm: bool = setting(False, "Spectral normalization on D.")
    conditional: bool = setting(False, "Class-conditional G and D.")
    clusters: int = setting(
        0,
        "Self-conditioning of an unconditional run (Liu et al. 2020): G and D are conditioned on "
        "this many k-means clusters of the training images, found before the first step; samples "
        "draw their cluster from z. 0: off; --conditional uses the data's labels instead.",
    )
    clusters_per_channel: bool = setting(
        False,
        "Fit --clusters k-means clusters on each image channel on its own and draw a sample's "
        "channels' clusters independently: for data whose channels are independent images "
        "(Stacked MNIST), not for colour photos.",
    )
    augment: str = setting(
        "none",
        "Augmentation of every image D sees, real and generated, in both players' steps "
        "(limited data).",
        registry=True,
    )
    augment_p: float = setting(
        0.0, "--augment=ada: its probability p at the start; fixed there with --ada_kimg=0."
    )
    ada_target: float = setting(
        0.6,
        "--augment=ada: p rises while D's sign on augmented reals (sign(D(x)), or sign(D(x) - "
        "D(G(z))) for relativistic and Wasserstein losses) averages above this, falls below.",
    )
    ada_kimg: float = setting(
        100.0,
        "--augment=ada: thousands of images over which p can move from 0 to 1 (the paper: 500, "
        "too slow for a run of a few hundred kimg); 0: p stays at --augment_p.",
    )
    mirror: bool = setting(
        False, "x-flip real images half the time: doubles a data set that looks right mirrored."
    )
    latent_dim: int = setting(100, "Size of the latent vector z.")
    model_width: int = setting(64, "Channels of the first conv block (units scale along).")
    d_width: int = setting(
        0, "The discriminator's own --model_width (a D wider than G); 0: --model_width."
    )
    d_dropout: float | None = setting(
        None, "Discriminator dropout rate; unset: the architecture's own (0.3 for dense and dcgan)."
    )
    minibatch_std: int = setting(
        0,
        "Group size of D's minibatch standard deviation feature (Karras et al. 2018; StyleGAN: "
        "4); 0: off.",
    )
    batch_size: int = setting(128, "Global batch, split over replicas.")
    train_steps: int = setting(5000, "Generator updates to train for.")
    max_minutes: float = setting(0.0, "Stop (with a checkpoint) after this long; 0: no limit.")
    seed: int = setting(0, "Seeds weights, data order, noise and dropout.")
    ema_kimg: float = setting(
        100.0,
        "Half-life of the EMA of G's weights (used for samples and export), in thousands of "
        "images (StyleGAN2-ADA); 0: no EMA.",
    )
    # 0.077 ≈ ln 2 / 9: the half-life of tf.train.ExponentialMovingAverage's warm-up, decay ≤
    # (1 + s) / (10 + s) at step s, that this EMA had when it was counted in steps.
    ema_rampup: float = setting(
        0.077,
        "While shorter, the EMA's half-life is this fraction of the images seen; 0: none.",
    )
    mixed_precision: str = setting(
        "none",
        "bf16 on CPU/TPU, fp16 (with loss scaling) on GPU; auto: bf16 on TPUs and CPUs with "
        "AVX512-BF16/AMX, fp16 on GPUs, none (fp32) elsewhere.",
        choices=("auto", "none", "bf16", "fp16"),
    )
    strategy: str = setting(
        "auto",
        "auto: TPU if resolvable, Mirrored for >1 GPU, else default.",
        choices=("auto", "default", "mirrored", "multi_worker", "tpu"),
    )
    tpu: str = setting("", "TPU name or address, for --strategy=tpu.")
    cpu_replicas: int = setting(
        0, "With --strategy=mirrored: split the CPU into this many logical devices (testing)."
    )
    deterministic: bool = setting(
        False, "TF op determinism: bitwise-reproducible runs and resumes, at some speed cost."
    )
    xla: bool = setting(False, "XLA-compile the train step (faster only where measured so).")
    checkpoint_every: int = setting(500, "Steps between checkpoints.")
    keep_checkpoints: int = setting(3, "Checkpoints to keep.")
    log_every: int = setting(100, "Steps between progress reports.")
    sample_every: int = setting(500, "Steps between sample grids.")
    steps_per_call: int = setting(10, "Steps per tf.function call (less Python).")
    checkpoint_dir: str = setting(
        "", "Checkpoints (default: JOB_DIR/checkpoints; Vertex: AIP_CHECKPOINT_DIR)."
    )
    tensorboard_dir: str = setting(
        "", "TensorBoard logs (default: JOB_DIR/logs; Vertex: AIP_TENSORBOARD_LOG_DIR)."
    )
    scratch_dir: str = setting(
        "", "Local working copy of gs:// outputs (default: a private temp dir per job)."
    )
    eval_every: int = setting(0, "Steps between evaluations (FD, scores); 0: off.")
    eval_samples: int = setting(10_000, "Samples per evaluation.")
    feature_extractor: str = setting(
        "own",
        "Feature space of the Fréchet distance: 'own' (the pipeline's classifier per data set; "
        "SWD when unlabelled) or 'inception_v3' (Keras' ImageNet weights: the standard FID; "
        "downloaded once, online).",
        choices=("own", "inception_v3"),
    )
    classifier_dir: str = setting(
        "", "Cache of evaluation classifiers (default: a private temp dir; local or gs://)."
    )
    allow_data_change: bool = setting(
        False, "Resume a checkpoint against a data set other than the one it was trained on."
    )

    @property
    def gan_loss(self):
        from trainer import losses

        return losses.LOSSES[self.loss]

    @property
    def penalty_weights(self) -> dict[str, float]:
        """The penalties this run applies (``r1``, ``r2``, ``gp``; those weighted 0 left out)."""
        gp = self.gan_loss.gp_weight if self.gp_weight is None else self.gp_weight
        weights = {"r1": self.r1_gamma, "r2": self.r2_gamma, "gp": gp}
        return {name: weight for name, weight in weights.items() if weight}

    @property
    def self_conditioning(self) -> int:
        """The clusters G and D are conditioned on: ``clusters``, unless labels condition them."""
        return 0 if self.conditional else self.clusters

    def model_spec(self, data):
        """The networks' spec for ``data`` (a schema.DataSpec from the data's manifest)."""
        from trainer import models

        if self.conditional and not data.labelled:
            raise models.ShapeError(
                f"--conditional: {data.name} is unlabelled; train it with --preset=unconditional "
                "(or --noconditional)"
            )
        label_groups = data.shape[-1] if self.self_conditioning and self.clusters_per_channel else 1
        if self.latent_dim < label_groups:
            raise models.ShapeError(
                f"--clusters_per_channel: {data.name}'s {label_groups} channels each draw their "
                f"cluster from a coordinate of z; --latent_dim={self.latent_dim} is fewer"
            )
        return models.ModelSpec(
            latent_dim=self.latent_dim,
            image_shape=data.shape,
            num_classes=(
                data.num_classes if self.conditional else self.self_conditioning * label_groups
            ),
            label_groups=label_groups,
            spectral_norm=self.spectral_norm,
            width=self.model_width,
            d_width=self.d_width or self.model_width,
            dropout=self.d_dropout,
            minibatch_std=self.minibatch_std,
        )


NAMES = tuple(f.name for f in dataclasses.fields(TrainConfig))
