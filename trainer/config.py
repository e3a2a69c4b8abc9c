"""The trainer's configuration: the settings (``settings.py``) resolved and validated once.

``command_line.py`` turns absl flags into a ``TrainConfig`` (for ``task.py``, and for launchers
checking the args they send); nothing below it reads flags.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping

from common import settings as common_settings
from common.cli import UserError
from trainer import augment, losses, models, presets, settings
from trainer.settings import TrainConfig


class ConfigError(UserError, ValueError):
    """A bad flag value or combination; the message is the one line the user sees."""


def resolve(
    values: Mapping[str, object],
    given: Collection[str] = (),
    environ: Mapping[str, str] | None = None,
) -> TrainConfig:
    """The configuration a run trains: the preset's values, then the flags the user gave.

    ``values`` holds every field's flag value, ``given`` the names set on the command line (or
    in a flag file): those win over the preset. Output directories left unset come from
    Vertex AI's ``AIP_*`` variables in ``environ``.
    """
    preset = str(values.get("preset") or presets.TUTORIAL)
    if preset == presets.AUTO:  # a launcher checking flags before the data exists
        preset = presets.PIPELINE
    _check(preset in presets.PRESETS, f"--preset={preset}: choose one of {sorted(presets.PRESETS)}")
    resolved = {**values, "preset": preset}
    resolved.update({k: v for k, v in presets.PRESETS[preset].items() if k not in given})
    for name, (variable, convert) in VERTEX_ENV.items():
        if not resolved.get(name) and (environ or {}).get(variable):
            resolved[name] = convert((environ or {})[variable])
    return validate(TrainConfig(**resolved))


# Vertex AI sets these for a CustomJob with a baseOutputDirectory B: B/model/, B/checkpoints/,
# B/logs/. They fill the directories a user left unset; the job dir is B itself.
VERTEX_ENV = {
    "job_dir": ("AIP_MODEL_DIR", lambda v: v.rstrip("/").rsplit("/", 1)[0]),
    "checkpoint_dir": ("AIP_CHECKPOINT_DIR", lambda v: v.rstrip("/")),
    "tensorboard_dir": ("AIP_TENSORBOARD_LOG_DIR", lambda v: v.rstrip("/")),
}


def to_flags_text(config: TrainConfig) -> str:
    """The resolved configuration as ``--flagfile`` lines: every field, explicitly.

    Written as ``flags.txt`` with each run, so a re-run with ``--flagfile`` (or the export,
    which rebuilds the model from it) sees what was trained, including directories that came
    from the environment and the preset's values.
    """
    lines = []
    for field in dataclasses.fields(TrainConfig):
        value = getattr(config, field.name)
        if value is None:
            continue
        if isinstance(value, bool):
            lines.append(f"--{'' if value else 'no'}{field.name}")
        else:
            lines.append(f"--{field.name}={value}")
    return "\n".join(lines) + "\n"


def from_flags_text(text: str, where: str) -> TrainConfig:
    """Rebuild a run's config from its ``flags.txt`` (``--name=value`` / ``--[no]name`` lines);
    an older run's retired flags are read as today's (``settings.RETIRED_AS``)."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    values: dict = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("--"):
            continue
        name, has_value, raw = line[2:].partition("=")
        if not has_value:
            negated = name.startswith("no") and name[2:] in fields
            name, raw = (name[2:], "false") if negated else (name, "true")
        if name in settings.RETIRED_AS:
            values.update(settings.RETIRED_AS[name](raw))
        if name not in fields:
            continue
        try:
            values[name] = common_settings.parse_value(fields[name], raw)
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from e
    missing = [n for n in ("data_dir", "job_dir") if not values.get(n)]
    if missing:
        raise ConfigError(f"{where}: no --{missing[0]}; not a trainer flags file")
    return validate(TrainConfig(**values))


def auto_mixed_precision(device: str, cpu_flags: str = "") -> str:
    """What ``--mixed_precision=auto`` means on a device: ``tpu``, ``gpu`` or ``cpu``.

    bf16 on TPUs and on CPUs with AVX512-BF16 or AMX (benchmarks/LOG.md, "Training
    throughput"), fp16 with loss scaling on GPUs, fp32 elsewhere (bf16 emulated in software is
    slower than fp32).
    """
    if device == "tpu":
        return "bf16"
    if device == "gpu":
        return "fp16"
    return "bf16" if ("avx512_bf16" in cpu_flags or "amx_bf16" in cpu_flags) else "none"


def _choices(name: str) -> tuple[str, ...]:
    return next(f for f in dataclasses.fields(TrainConfig) if f.name == name).metadata["choices"]


MIXED_PRECISION_POLICIES = {"none": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
AUTO = "auto"
MAX_CLUSTERS = 1000  # k-means over at most clusters.FIT_IMAGES images; more would be near-empty
MIXED_PRECISION_CHOICES = _choices("mixed_precision")
STRATEGIES = _choices("strategy")
assert set(MIXED_PRECISION_CHOICES) == {AUTO, *MIXED_PRECISION_POLICIES}


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def validate(config: TrainConfig) -> TrainConfig:
    """Reject values and combinations that cannot train; return the config unchanged."""
    _check(
        config.preset in presets.PRESETS,
        f"--preset={config.preset}: choose one of {sorted(presets.PRESETS)}",
    )
    _check(bool(config.data_dir), "--data_dir is required")
    _check(bool(config.job_dir), "--job_dir is required")
    _check(
        config.architecture in models.ARCHITECTURES,
        f"--architecture={config.architecture}: choose one of {sorted(models.ARCHITECTURES)}",
    )
    _check(
        config.loss in losses.LOSSES, f"--loss={config.loss}: choose one of {sorted(losses.LOSSES)}"
    )
    _check(
        0.0 <= config.label_smoothing < 0.5,
        f"--label_smoothing={config.label_smoothing}: must be in [0, 0.5)",
    )
    _check(
        config.label_smoothing == 0.0 or config.gan_loss.supports_label_smoothing,
        f"--label_smoothing applies to cross-entropy losses, not --loss={config.loss}",
    )
    _check(config.training_ratio >= 1, "--training_ratio must be >= 1")
    _check(
        config.augment in augment.PIPELINES,
        f"--augment={config.augment}: choose one of {sorted(augment.PIPELINES)}",
    )
    _check(0.0 <= config.augment_p <= 1.0, f"--augment_p={config.augment_p}: must be in [0, 1]")
    _check(-1.0 < config.ada_target < 1.0, f"--ada_target={config.ada_target}: must be in (-1, 1)")
    _check(config.ada_kimg >= 0.0, f"--ada_kimg={config.ada_kimg}: must be >= 0 (0: fixed p)")
    for name in ("r1_gamma", "r2_gamma", "gp_weight"):
        value = getattr(config, name)
        _check(value is None or 0.0 <= value < math.inf, f"--{name}={value}: must be >= 0")
    _check(config.penalty_every >= 1, "--penalty_every must be >= 1 (1: every step)")
    # One step holds batch × ratio images at once; beyond these it only runs out of memory.
    _check(
        config.training_ratio <= 100, f"--training_ratio={config.training_ratio}: must be <= 100"
    )
    _check(
        config.batch_size * config.training_ratio <= 1 << 20,
        f"--batch_size × --training_ratio = {config.batch_size * config.training_ratio} images "
        "per step: more than 1,048,576 does not fit in memory",
    )
    for name in ("g_learning_rate", "d_learning_rate"):
        _check(getattr(config, name) > 0, f"--{name} must be > 0")
    _check(
        0.0 <= config.lr_decay_start <= 1.0,
        f"--lr_decay_start={config.lr_decay_start}: must be in [0, 1] (1: no decay)",
    )
    for name in ("beta1", "beta2"):
        _check(0.0 <= getattr(config, name) < 1.0, f"--{name} must be in [0, 1)")
    _check(config.latent_dim >= 2, "--latent_dim must be >= 2")
    _check(
        0 <= config.clusters <= MAX_CLUSTERS,
        f"--clusters={config.clusters}: must be in [0, {MAX_CLUSTERS}] (0: off)",
    )
    _check(
        config.clusters > 0 or not config.clusters_per_channel,
        "--clusters_per_channel needs --clusters > 0 (the clusters per channel)",
    )
    _check(config.model_width >= 1, "--model_width must be >= 1")
    _check(config.d_width >= 0, "--d_width must be >= 0 (0: --model_width)")
    _check(
        config.d_dropout is None or 0.0 <= config.d_dropout < 1.0, "--d_dropout must be in [0, 1)"
    )
    _check(config.batch_size >= 1, "--batch_size must be >= 1")
    _check(
        config.minibatch_std == 0 or config.minibatch_std >= 2,
        "--minibatch_std must be 0 (off) or a group size >= 2",
    )
    _check(config.train_steps >= 1, "--train_steps must be >= 1")
    _check(config.max_minutes >= 0, "--max_minutes must be >= 0 (0: no limit)")
    _check(0 <= config.seed < 2**32, f"--seed={config.seed}: must be in [0, 2**32)")
    for name in ("ema_kimg", "ema_rampup"):
        value = getattr(config, name)
        _check(0.0 <= value < math.inf, f"--{name}={value}: must be >= 0 (0: off)")
    _check(
        config.mixed_precision in MIXED_PRECISION_CHOICES,
        f"--mixed_precision={config.mixed_precision}: choose one of "
        f"{list(MIXED_PRECISION_CHOICES)}",
    )
    _check(
        config.strategy in STRATEGIES,
        f"--strategy={config.strategy}: choose one of {list(STRATEGIES)}",
    )
    _check(not config.tpu or config.strategy in ("tpu", "auto"), "--tpu needs --strategy=tpu")
    _check(config.cpu_replicas >= 0, "--cpu_replicas must be >= 0")
    _check(
        config.cpu_replicas == 0 or config.strategy == "mirrored",
        "--cpu_replicas needs --strategy=mirrored",
    )
    for name in ("checkpoint_every", "log_every", "sample_every", "steps_per_call"):
        _check(getattr(config, name) >= 1, f"--{name} must be >= 1")
    _check(config.keep_checkpoints >= 1, "--keep_checkpoints must be >= 1")
    _check(config.eval_every >= 0, "--eval_every must be >= 0 (0: off)")
    _check(config.eval_samples >= 100, "--eval_samples must be >= 100")
    return config
