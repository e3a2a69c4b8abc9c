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
SMOKE = "smoke"

_PIPELINE: dict[str, object] = {
    "conditional": True,
    "model_width": 32,
    "batch_size": 64,
    "train_steps": 14_000,
    "mixed_precision": "auto",
    "log_every": 500,
    "sample_every": 1000,
    "checkpoint_every": 2000,
    "eval_every": 7000,
    "eval_samples": 2000,
}

PRESETS: dict[str, dict[str, object]] = {
    # The TensorFlow DCGAN tutorial: width 64, batch 128, non-saturating loss, Adam(2e-4, 0.5).
    TUTORIAL: {},
    # The measured default (benchmarks/README.md: FD 2.39 after 10 minutes on 2 CPU cores vs 24.9
    # unconditional): class-conditional BN, half width, batch 64, EMA, bf16 where the device has
    # it; 14,000 steps finish the whole local pipeline in about 8 minutes on 2 cores.
    PIPELINE: _PIPELINE,
    # The measured unconditional default (benchmarks/README.md, selection table: FD 43 vs 100 for
    # the pipeline's networks with --noconditional, same 5 minutes): R3GAN's objective (the
    # relativistic pairing loss with R1 and R2 on real and generated images, γ = 1, lazily every
    # 4th step), Adam(5e-4, β1 0, β2 0.99), no dropout in D. For unlabelled image folders too.
    UNCONDITIONAL: {
        **_PIPELINE,
        "conditional": False,
        "loss": "relativistic",
        "r1_gamma": 1.0,
        "r2_gamma": 1.0,
        "penalty_every": 4,
        "g_learning_rate": 5e-4,
        "d_learning_rate": 5e-4,
        "beta1": 0.0,
        "beta2": 0.99,
        "d_dropout": 0.0,
    },
    # The pipeline's model at toy size: a build or a cluster checked end to end in minutes
    # (the cloud rehearsal test trains it), not a model anyone should use.
    SMOKE: {
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
