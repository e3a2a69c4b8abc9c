"""The trainer's command line: one absl flag per ``TrainConfig`` field, and trainer arguments
read into the configuration they would train.

``task.py`` defines these flags on the process's ``FLAGS``. A launcher reads the arguments it is
about to send to a paid machine (``pipeline.submit train``) into flags of its own, so a typo
fails before the job is created, with the line the trainer would have printed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from absl import flags

from common import cli
from common import settings as common_settings
from trainer import augment, losses, models, presets, settings
from trainer import config as config_lib

# Choices that live in registries, and the help that describes their entries.
REGISTRIES = {
    "architecture": models.ARCHITECTURES,
    "loss": losses.LOSSES,
    "augment": augment.PIPELINES,
}


def define_flags(flag_values: flags.FlagValues) -> None:
    """One absl flag per ``TrainConfig`` field: name, type, default and help, none retyped."""
    common_settings.define_flags(settings.TrainConfig, flag_values, REGISTRIES)


def config_from(
    flag_values: flags.FlagValues,
    argv: Sequence[str],
    environ: Mapping[str, str],
    read_data: bool = True,
) -> config_lib.TrainConfig:
    """The preset, then the flags given, then Vertex AI's output directories for unset ones.
    ``argv`` is what absl left unparsed (the program name first): anything more is refused."""
    if len(argv) > 1:
        raise config_lib.ConfigError(f"unexpected arguments {' '.join(argv[1:])}")
    values = common_settings.values(settings.TrainConfig, flag_values)
    given = common_settings.given(settings.TrainConfig, flag_values)
    if read_data and values["preset"] == presets.AUTO and values["data_dir"]:
        # --noconditional on labelled data asks for an unconditional recipe.
        unlabelled = "conditional" in given and not values["conditional"]
        values["preset"], why = automatic_preset(str(values["data_dir"]), unlabelled)
        print(f"trainer: --preset=auto → {values['preset']}: {why}", flush=True)
    return config_lib.resolve(values, given, environ)


def automatic_preset(data_dir: str, unlabelled: bool = False) -> tuple[str, str]:
    """The preset ``--preset=auto`` trains on ``data_dir``, from its manifest, and why."""
    from trainer import data

    manifest = data.read_manifest(data_dir)
    spec = manifest.spec
    return presets.automatic(
        spec.shape, spec.labelled and not unlabelled, manifest.examples("train")
    )


def parse(args: Sequence[str], environ: Mapping[str, str]) -> config_lib.TrainConfig:
    """The configuration ``python -m trainer.task ARGS`` would train in ``environ``; a bad flag
    raises ``ConfigError`` with the trainer's own one-line message."""
    flag_values = flags.FlagValues()
    define_flags(flag_values)
    try:
        unparsed = flag_values(["trainer", *args])
    except flags.Error as e:
        raise config_lib.ConfigError(cli.flag_error(e, settings.RETIRED)) from e
    return config_from(flag_values, unparsed, environ, read_data=False)
