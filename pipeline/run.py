r"""The whole pipeline on one machine: preprocess → train (with evaluation) → export.

    python -m pipeline.run --output_dir=/tmp/run
    python -m pipeline.run --output_dir=/tmp/run --digits=0 --architecture=dense --train_steps=2000

Writes ``data/``, ``job/`` and ``export/`` under ``--output_dir``; the evaluation classifier and
the real images' features are cached where the stages cache them by default (``--classifier_dir``
to choose), so a second run on the same data makes neither again. Each stage runs as its own
process, exactly as in the cloud, and each is idempotent: a re-run after a crash skips complete
stages and resumes training from its last checkpoint. Flags of the stages pass through:
preprocessing flags (``--source``, ``--digits``, …) to the Beam job, trainer flags
(``--architecture``, ``--train_steps``, …) to the trainer, and anything else to Beam as a
pipeline option.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Sequence

from absl import app, flags

from common import cli, layout, lease
from common import settings as common_settings
from common.cli import UserError
from common.settings import setting
from trainer import presets, settings

FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class RunConfig:
    output_dir: str = setting(None, "Root of data/, job/, export/ (local or gs://).")


# Names only: trainer/settings.py imports no TensorFlow, so routing flags costs none.
TRAINER_FLAGS = set(settings.NAMES) - {"data_dir", "job_dir"}


STAGE_MODULES = {
    "preprocess": "preprocessing.run",
    "train": "trainer.task",
    "export": "pipeline.export",
}


class PipelineError(UserError, RuntimeError):
    """A stage failed; its own one-line error was printed above."""


def _flag_name(arg: str) -> str:
    name = arg.lstrip("-").split("=", 1)[0]
    return name[2:] if name.startswith("no") and name[2:] in TRAINER_FLAGS else name


def route(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split pass-through arguments into (preprocessing + Beam, trainer)."""
    preprocess, trainer = [], []
    for arg in args:
        name = _flag_name(arg)
        (trainer if name in TRAINER_FLAGS else preprocess).append(arg)
    return preprocess, presets.with_default(trainer)


SECRET_WORDS = ("key", "secret", "token", "password", "passwd", "credential")


def masked(args: Sequence[str]) -> list[str]:
    """Arguments for a log line: the values of options that look like secrets replaced."""
    shown = []
    for arg in args:
        name, has_value, _ = arg.partition("=")
        secret = has_value and any(word in name.lower() for word in SECRET_WORDS)
        shown.append(f"{name}=***" if secret else arg)
    return shown


def run_stage(name: str, module: str, args: list[str]) -> float:
    print(f"pipeline: {name}: python -m {module} {' '.join(masked(args))}", flush=True)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", module, *args])
    if proc.returncode != 0:
        raise PipelineError(f"stage {name} failed (exit {proc.returncode})")
    return time.monotonic() - start


def flag_value(name: str, args: Sequence[str]) -> str | None:
    """The value the last ``--name=value`` in ``args`` gives (absl's rule: the last one wins)."""
    values = [arg.split("=", 1)[1] for arg in args if arg.startswith(f"--{name}=")]
    return values[-1] if values else None


def stage_args(output_dir: str, args: Sequence[str]) -> dict[str, list[str]]:
    """Each stage's arguments, by stage: the run directory's parts, then the pass-through flags
    routed to it. The evaluation classifier's cache is the stages' own default (shared by every
    run of this user on this machine: a data set's classifier and real-image features are made
    once, not once per output directory), or the ``--classifier_dir`` given, for both stages
    that evaluate."""
    dirs = layout.RunDir(output_dir)
    data_dir, job_dir, export_dir = dirs.data.path, dirs.job.path, dirs.export.path
    preprocess_args, trainer_args = route(args)
    unknown = [a for a in preprocess_args if not a.startswith("--")]
    if unknown:
        raise PipelineError(f"unexpected arguments: {' '.join(unknown)}")
    classifier_dir = flag_value("classifier_dir", trainer_args)
    return {
        "preprocess": [f"--output_dir={data_dir}", *preprocess_args],
        "train": [f"--data_dir={data_dir}", f"--job_dir={job_dir}", *trainer_args],
        "export": [
            f"--job_dir={job_dir}",
            f"--export_dir={export_dir}",
            *([f"--classifier_dir={classifier_dir}"] if classifier_dir is not None else []),
        ],
    }


def run(output_dir: str, args: Sequence[str]) -> dict[str, float]:
    stages = stage_args(output_dir, args)
    with lease.acquire(output_dir, "pipeline"):  # and each stage its own directory
        return {name: run_stage(name, STAGE_MODULES[name], stages[name]) for name in stages}


def main(argv: Sequence[str]) -> None:
    config = common_settings.from_flags(RunConfig, FLAGS)
    if not config.output_dir:
        raise PipelineError("--output_dir is required")
    timings = run(config.output_dir, argv[1:])
    total = sum(timings.values())
    parts = ", ".join(f"{k} {v:.0f}s" for k, v in timings.items())
    gallery = layout.RunDir(config.output_dir).export.gallery_index
    print(f"pipeline: done in {total:.0f}s ({parts}); open {gallery}")


HELP_FLAGS = {"-h", "-?", "--help", "--helpshort", "--helpfull"}
STAGES = (STAGE_MODULES["preprocess"], STAGE_MODULES["train"])  # whose flags pipeline.run routes


def print_help() -> None:
    """This command's flags, then every stage's own: they all pass through ``pipeline.run``."""
    print(__doc__.strip() + "\n")
    print(FLAGS.module_help(sys.modules[__name__]) or "  --output_dir: " + FLAGS["output_dir"].help)
    for module in STAGES:
        print(f"\nFlags of the {module} stage (pass them to pipeline.run):")
        proc = subprocess.run(
            [sys.executable, "-m", module, "--helpshort"], capture_output=True, text=True
        )
        print(proc.stdout.split("\n", 1)[-1].rstrip())


if __name__ == "__main__":
    common_settings.define_flags(RunConfig, FLAGS)
    if HELP_FLAGS & set(sys.argv[1:]):
        print_help()
        sys.exit(0)
    app.run(
        cli.guarded("pipeline", main), flags_parser=cli.flags_parser("pipeline", known_only=True)
    )
