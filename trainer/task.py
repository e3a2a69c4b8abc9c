r"""Train a GAN on preprocessed MNIST under tf.distribute (the Vertex AI ``trainer.task`` entry).

    python -m trainer.task --data_dir=/tmp/run/data --job_dir=/tmp/run/job --train_steps=5000
    python -m trainer.task --flagfile=/tmp/run/job/flags.txt     # re-run exactly, or resume

The latest checkpoint in ``--job_dir`` is restored on start; SIGTERM finishes the current call
of steps, writes a checkpoint and exits 0.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
from collections.abc import Sequence

from absl import app, flags

from common import cli
from trainer import config as config_lib
from trainer import losses, models, presets

FLAGS = flags.FLAGS
_DEFAULTS = config_lib.TrainConfig(data_dir="", job_dir="")

flags.DEFINE_string(
    "data_dir", None, "Preprocessed data: TFRecords + manifest.json (local or gs://)."
)
flags.DEFINE_string("job_dir", None, "Checkpoints, logs, samples, metrics (local or gs://).")
flags.DEFINE_enum(
    "preset",
    presets.TUTORIAL,
    sorted(presets.PRESETS),
    "Named configuration; flags given explicitly win over it. " + presets.describe(),
)
flags.DEFINE_enum(
    "architecture",
    _DEFAULTS.architecture,
    sorted(models.ARCHITECTURES),
    "; ".join(f"{k}: {v.description}" for k, v in models.ARCHITECTURES.items()),
)
flags.DEFINE_enum(
    "loss",
    _DEFAULTS.loss,
    sorted(losses.LOSSES),
    "; ".join(f"{k}: {v.description}" for k, v in losses.LOSSES.items()),
)
flags.DEFINE_float(
    "label_smoothing", _DEFAULTS.label_smoothing, "One-sided: real targets become 1 - this."
)
flags.DEFINE_integer(
    "training_ratio", _DEFAULTS.training_ratio, "Discriminator updates per generator update."
)
flags.DEFINE_float("g_learning_rate", _DEFAULTS.g_learning_rate, "Generator Adam learning rate.")
flags.DEFINE_float(
    "d_learning_rate", _DEFAULTS.d_learning_rate, "Discriminator Adam learning rate."
)
flags.DEFINE_float("beta1", _DEFAULTS.beta1, "Adam beta_1 of both optimizers (DCGAN: 0.5).")
flags.DEFINE_float("beta2", _DEFAULTS.beta2, "Adam beta_2 of both optimizers.")
flags.DEFINE_bool("spectral_norm", _DEFAULTS.spectral_norm, "Spectral normalization on D.")
flags.DEFINE_bool("conditional", _DEFAULTS.conditional, "Class-conditional G and D.")
flags.DEFINE_integer("latent_dim", _DEFAULTS.latent_dim, "Size of the latent vector z.")
flags.DEFINE_integer(
    "model_width", _DEFAULTS.model_width, "Channels of the first conv block (units scale along)."
)
flags.DEFINE_float(
    "d_dropout",
    None,
    "Discriminator dropout rate; unset: the architecture's own (0.3 for dense and dcgan).",
)
flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "Global batch, split over replicas.")
flags.DEFINE_integer("train_steps", _DEFAULTS.train_steps, "Generator updates to train for.")
flags.DEFINE_float(
    "max_minutes", _DEFAULTS.max_minutes, "Stop (with a checkpoint) after this long; 0: no limit."
)
flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seeds weights, data order, noise and dropout.")
flags.DEFINE_float(
    "ema_decay", _DEFAULTS.ema_decay, "EMA of G weights used for samples and export; 0: off."
)
flags.DEFINE_enum(
    "mixed_precision",
    _DEFAULTS.mixed_precision,
    list(config_lib.MIXED_PRECISION_CHOICES),
    "bf16 on CPU/TPU, fp16 (with loss scaling) on GPU; auto: bf16 on TPUs and CPUs with "
    "AVX512-BF16/AMX, fp16 on GPUs, none (fp32) elsewhere.",
)
flags.DEFINE_enum(
    "strategy",
    _DEFAULTS.strategy,
    list(config_lib.STRATEGIES),
    "auto: TPU if resolvable, Mirrored for >1 GPU, else default.",
)
flags.DEFINE_string("tpu", _DEFAULTS.tpu, "TPU name or address, for --strategy=tpu.")
flags.DEFINE_integer(
    "cpu_replicas",
    _DEFAULTS.cpu_replicas,
    "With --strategy=mirrored: split the CPU into this many logical devices (testing).",
)
flags.DEFINE_bool(
    "deterministic",
    _DEFAULTS.deterministic,
    "TF op determinism: bitwise-reproducible runs and resumes, at some speed cost.",
)
flags.DEFINE_bool(
    "xla", _DEFAULTS.xla, "XLA-compile the train step (faster only where measured so)."
)
flags.DEFINE_integer("checkpoint_every", _DEFAULTS.checkpoint_every, "Steps between checkpoints.")
flags.DEFINE_integer("keep_checkpoints", _DEFAULTS.keep_checkpoints, "Checkpoints to keep.")
flags.DEFINE_integer("log_every", _DEFAULTS.log_every, "Steps between progress reports.")
flags.DEFINE_integer("sample_every", _DEFAULTS.sample_every, "Steps between sample grids.")
flags.DEFINE_integer(
    "steps_per_call", _DEFAULTS.steps_per_call, "Steps per tf.function call (less Python)."
)
flags.DEFINE_string(
    "checkpoint_dir", "", "Checkpoints (default: JOB_DIR/checkpoints; Vertex: AIP_CHECKPOINT_DIR)."
)
flags.DEFINE_string(
    "tensorboard_dir",
    "",
    "TensorBoard logs (default: JOB_DIR/logs; Vertex: AIP_TENSORBOARD_LOG_DIR).",
)
flags.DEFINE_string(
    "scratch_dir", "", "Local working copy of gs:// outputs (default: a temp dir per job)."
)

flags.DEFINE_integer(
    "eval_every", _DEFAULTS.eval_every, "Steps between evaluations (FD, scores); 0: off."
)
flags.DEFINE_integer("eval_samples", _DEFAULTS.eval_samples, "Samples per evaluation.")
flags.DEFINE_bool(
    "allow_data_change",
    _DEFAULTS.allow_data_change,
    "Resume a checkpoint against a data set other than the one it was trained on.",
)
flags.DEFINE_string(
    "classifier_dir", "", "Cache of evaluation classifiers (default: a temp dir; local or gs://)."
)

CONFIG_FIELDS = [f.name for f in dataclasses.fields(config_lib.TrainConfig)]


def config_from_flags(environ: dict[str, str] = os.environ) -> config_lib.TrainConfig:
    """The preset, then the flags given, then Vertex AI's output directories for unset ones."""
    values = {name: FLAGS[name].value for name in CONFIG_FIELDS}
    given = {name for name in CONFIG_FIELDS if FLAGS[name].present}
    return config_lib.resolve(values, given, environ)


class StopOnSignal:
    """SIGTERM (preemption) and SIGINT ask the loop to finish its current call and checkpoint."""

    def __init__(self) -> None:
        self._event = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        print(
            f"trainer: {signal.Signals(signum).name} received; checkpointing and stopping",
            flush=True,
        )
        self._event.set()

    def __call__(self) -> bool:
        return self._event.is_set()


def main(argv: Sequence[str]) -> None:
    from trainer import loop

    if len(argv) > 1:
        raise config_lib.ConfigError(f"unexpected arguments {' '.join(argv[1:])}")
    config = config_from_flags()
    result = loop.train(config, should_stop=StopOnSignal())
    print(
        f"trainer: stopped at step {result.step} ({result.stopped_by}); "
        f"checkpoint {result.checkpoint}; weights sha256 {result.weights_sha256}"
    )


if __name__ == "__main__":
    app.run(cli.guarded("trainer", main), flags_parser=cli.flags_parser("trainer"))
