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
from trainer import losses, models, settings

FLAGS = flags.FLAGS

# Choices that live in registries, and the help that describes their entries.
REGISTRIES = {"architecture": models.ARCHITECTURES, "loss": losses.LOSSES}


def _field_type(field: dataclasses.Field) -> str:
    kind = str(field.type)
    return next(t for t in ("bool", "int", "float", "str") if t in kind)


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """One absl flag per ``TrainConfig`` field: name, type, default and help, none retyped."""
    for field in dataclasses.fields(settings.TrainConfig):
        name, default, help_text = field.name, field.default, field.metadata["help"]
        choices = field.metadata.get("choices")
        if field.metadata.get("registry"):
            registry = REGISTRIES[name]
            choices = tuple(sorted(registry))
            help_text += " " + "; ".join(f"{k}: {v.description}" for k, v in registry.items())
        kind = _field_type(field)
        if choices:
            flags.DEFINE_enum(name, default, list(choices), help_text, flag_values=flag_values)
        elif kind == "bool":
            flags.DEFINE_bool(name, default, help_text, flag_values=flag_values)
        elif kind == "int":
            flags.DEFINE_integer(name, default, help_text, flag_values=flag_values)
        elif kind == "float":
            flags.DEFINE_float(name, default, help_text, flag_values=flag_values)
        else:
            flags.DEFINE_string(name, default, help_text, flag_values=flag_values)


define_flags()
CONFIG_FIELDS = list(settings.NAMES)


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
    app.run(
        cli.guarded("trainer", main),
        flags_parser=cli.flags_parser("trainer", retired=settings.RETIRED),
    )
