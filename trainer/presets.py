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
SMOKE = "smoke"

PRESETS: dict[str, dict[str, object]] = {
    # The TensorFlow DCGAN tutorial: width 64, batch 128, non-saturating loss, Adam(2e-4, 0.5).
    TUTORIAL: {},
    # The measured default (benchmarks/README.md: FD 2.39 after 10 minutes on 2 CPU cores vs 24.9
    # unconditional): class-conditional BN, half width, batch 64, EMA, bf16 where the device has
    # it; 14,000 steps finish the whole local pipeline in about 8 minutes on 2 cores.
    PIPELINE: {
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
