"""The trainer's configuration: presets, flags and the environment resolved into one config."""

from __future__ import annotations

import dataclasses

import pytest

from common import schema
from trainer import config as config_lib
from trainer import models, presets

DIRS = {"data_dir": "/d", "job_dir": "/j"}


def flag_values(**given) -> dict:
    """Every field as absl would hold it: the dataclass default unless given."""
    defaults = dataclasses.asdict(config_lib.TrainConfig(data_dir="", job_dir=""))
    return {**defaults, **DIRS, **given}


def test_the_preset_fills_what_the_user_did_not_give():
    values = flag_values(preset="pipeline", batch_size=32)
    config = config_lib.resolve(values, given={"preset", "batch_size", "data_dir", "job_dir"})
    assert config.batch_size == 32  # given: wins over the preset's 64
    assert (config.model_width, config.d_width, config.conditional) == (16, 32, True)  # preset
    assert config.mixed_precision == "auto" and config.eval_every == 2500
    assert (config.loss, config.r1_gamma, config.penalty_every) == ("relativistic", 1.0, 16)
    tutorial = config_lib.resolve(flag_values(), given=set())
    assert (tutorial.model_width, tutorial.batch_size, tutorial.conditional) == (64, 128, False)


def test_a_flag_given_at_its_default_value_still_wins_over_the_preset():
    values = flag_values(preset="pipeline", model_width=64)  # 64 is the dataclass default
    assert config_lib.resolve(values, given={"model_width"}).model_width == 64


def test_vertex_environment_fills_unset_directories_only():
    environ = {
        "AIP_MODEL_DIR": "gs://b/runs/r1/model/",
        "AIP_CHECKPOINT_DIR": "gs://b/runs/r1/checkpoints/",
        "AIP_TENSORBOARD_LOG_DIR": "gs://b/runs/r1/logs/",
    }
    config = config_lib.resolve({**flag_values(), "job_dir": None}, environ=environ)
    assert config.job_dir == "gs://b/runs/r1"
    assert config.checkpoint_dir == "gs://b/runs/r1/checkpoints"
    assert config.tensorboard_dir == "gs://b/runs/r1/logs"
    assert config_lib.resolve(flag_values(), environ=environ).job_dir == "/j"


def test_flags_text_records_every_field_and_reads_back_to_the_same_config():
    config = config_lib.resolve(
        flag_values(
            preset="pipeline",
            d_dropout=0.25,
            g_learning_rate=1.5e-4,
            spectral_norm=True,
            checkpoint_dir="gs://b/ckpt",
        ),
        given={"d_dropout", "g_learning_rate", "spectral_norm", "checkpoint_dir"},
    )
    text = config_lib.to_flags_text(config)
    assert "--checkpoint_dir=gs://b/ckpt" in text.splitlines()
    assert "--spectral_norm" in text.splitlines() and "--noxla" in text.splitlines()
    assert config_lib.from_flags_text(text, "flags.txt") == config
    unset = dataclasses.replace(config, d_dropout=None)
    assert config_lib.from_flags_text(config_lib.to_flags_text(unset), "flags.txt") == unset


@pytest.mark.parametrize(
    ("line", "ema_kimg"), [("--ema_decay=0.0", 0.0), ("--ema_decay=0.999", 100)]
)
def test_an_older_runs_flags_file_builds_its_model(line, ema_kimg):
    """Runs trained before the EMA was counted in images: one without EMA has no EMA generator
    in its checkpoints, so its export must not build one."""
    text = f"--data_dir=d\n--job_dir=j\n{line}\n"
    assert config_lib.from_flags_text(text, "flags.txt").ema_kimg == ema_kimg


def test_unknown_preset_is_one_line():
    with pytest.raises(config_lib.ConfigError, match=r"--preset=huge: choose one of"):
        config_lib.resolve(flag_values(preset="huge"))


@pytest.mark.parametrize(
    ("device", "cpu_flags", "expected"),
    [
        ("tpu", "", "bf16"),
        ("gpu", "", "fp16"),
        ("cpu", "fpu avx2 avx512f avx512_bf16", "bf16"),
        ("cpu", "fpu amx_bf16 amx_tile", "bf16"),
        ("cpu", "fpu avx2 avx512f", "none"),
    ],
)
def test_auto_mixed_precision_per_device(device, cpu_flags, expected):
    assert config_lib.auto_mixed_precision(device, cpu_flags) == expected


def test_every_preset_is_a_valid_configuration():
    for name, values in presets.PRESETS.items():
        assert set(values) <= {f.name for f in dataclasses.fields(config_lib.TrainConfig)}, name
        config_lib.resolve(flag_values(preset=name))


def test_the_trainer_flags_are_generated_from_the_settings():
    """Names, defaults, types and help of every flag are the dataclass fields', none retyped."""
    from absl import flags

    from trainer import command_line, settings

    defined = flags.FlagValues()
    command_line.define_flags(defined)
    generated = {n: [defined[n].default, defined[n].flag_type(), defined[n].help] for n in defined}
    fields = {f.name: f for f in dataclasses.fields(config_lib.TrainConfig)}
    assert list(generated) == list(fields) == list(settings.NAMES)
    kinds = {"bool": "bool", "int": "int", "float": "float", "str": "string"}
    for name, (default, flag_type, help_text) in generated.items():
        field = fields[name]
        assert default == field.default, name
        assert field.metadata["help"] in help_text, name
        kind = next(k for k in ("bool", "int", "float", "str") if k in str(field.type))
        expected = kinds[kind]
        if field.metadata.get("choices") or field.metadata.get("registry"):
            expected = "string enum"
        assert flag_type == expected, (name, flag_type)


def test_routing_flags_imports_no_tensorflow():
    import subprocess
    import sys

    from tests import helpers

    code = "import sys, pipeline.run\nprint('tensorflow' in sys.modules, 'keras' in sys.modules)"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=helpers.REPO_ROOT, capture_output=True, text=True
    )
    assert proc.stdout.split() == ["False", "False"], proc.stderr[-2000:]


STACKS = schema.DataSpec("stacked_mnist", 28, 28, 3, tuple(f"{i:03d}" for i in range(1000)))


@pytest.mark.parametrize(
    "given, num_classes, label_groups",
    [
        ({"clusters": 10}, 10, 1),  # whole stacks
        ({"clusters": 10, "clusters_per_channel": True}, 30, 3),  # rows 0-9, 10-19, 20-29
        ({"clusters": 10, "clusters_per_channel": True, "conditional": True}, 1000, 1),  # labels
    ],
)
def test_clusters_per_channel_give_the_networks_one_label_per_channel(
    given, num_classes, label_groups
):
    config = config_lib.resolve(flag_values(**given), given=set(given) | set(DIRS))
    spec = config.model_spec(STACKS)
    assert (spec.num_classes, spec.label_groups) == (num_classes, label_groups)


def test_clusters_per_channel_need_a_coordinate_of_z_per_channel():
    given = {"clusters": 10, "clusters_per_channel": True, "latent_dim": 2}
    config = config_lib.resolve(flag_values(**given), given=set(given) | set(DIRS))
    with pytest.raises(models.ShapeError, match="3 channels each draw their cluster from a"):
        config.model_spec(STACKS)


@pytest.mark.parametrize(
    "shape, labelled, images, expected",
    [
        ((28, 28, 1), True, 60_000, "pipeline"),  # MNIST: `make run` keeps its recipe
        ((28, 28, 1), False, 60_000, "unconditional"),  # pipeline.run --noconditional
        ((32, 32, 1), True, 20_000, "pipeline"),
        ((28, 28, 1), True, 1_000, "limited"),  # the first 1,000 digits
        ((64, 64, 3), True, 3_429, "limited"),  # the Twemoji folder
        ((64, 64, 3), False, 3_429, "limited_unconditional"),
        ((32, 32, 3), True, 50_000, "limited"),  # RGB: not where the MNIST recipes were measured
    ],
)
def test_auto_picks_the_recipe_measured_for_the_datas_kind(shape, labelled, images, expected):
    name, why = presets.automatic(shape, labelled, images)
    assert name == expected and f"{images:,} " in why
    config_lib.resolve(flag_values(preset=name))  # a valid configuration
