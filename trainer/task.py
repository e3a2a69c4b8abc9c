r"""Train a GAN on preprocessed MNIST under tf.distribute (the Vertex AI ``trainer.task`` entry).

    python -m trainer.task --data_dir=/tmp/run/data --job_dir=/tmp/run/job --train_steps=5000
    python -m trainer.task --flagfile=/tmp/run/job/flags.txt     # re-run exactly, or resume

The latest checkpoint in ``--job_dir`` is restored on start; SIGTERM finishes the current call
of steps, writes a checkpoint and exits 0.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Sequence

from absl import app, flags

from common import cli
from trainer import command_line, settings

FLAGS = flags.FLAGS

command_line.define_flags(FLAGS)
flags.adopt_module_key_flags(command_line)  # --help and --helpshort list them as this module's


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

    config = command_line.config_from(FLAGS, argv, os.environ)
    result = loop.train(config, should_stop=StopOnSignal())
    spent = (
        f" after {result.seconds['steps']:.1f}s in train steps and "
        f"{result.seconds['maintenance']:.1f}s in samples, evaluations and checkpoints"
        if result.seconds
        else ""
    )
    print(
        f"trainer: stopped at step {result.step} ({result.stopped_by}){spent}; "
        f"checkpoint {result.checkpoint}; weights sha256 {result.weights_sha256}"
    )


if __name__ == "__main__":
    app.run(
        cli.guarded("trainer", main),
        flags_parser=cli.flags_parser("trainer", retired=settings.RETIRED),
    )
