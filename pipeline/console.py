"""``gan-pipeline STAGE [FLAGS]``: the installed command for every stage.

Each stage runs exactly as ``python -m MODULE`` runs it (the form Vertex AI and Dataflow use).
"""

from __future__ import annotations

import runpy
import sys
from collections.abc import Sequence

STAGES = {
    "run": "pipeline.run",
    "preprocess": "preprocessing.run",
    "train": "trainer.task",
    "export": "pipeline.export",
    "submit": "pipeline.submit",
    "promote": "pipeline.promote",
}
USAGE = f"usage: gan-pipeline {{{'|'.join(STAGES)}}} [FLAGS] (--help after a stage lists its flags)"
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in STAGES:
        stage = f"unknown stage {args[0]!r}; " if args and args[0] not in ("-h", "--help") else ""
        print(f"gan-pipeline: {stage}{USAGE}", file=sys.stderr)
        return 0 if args[:1] in (["-h"], ["--help"]) else EXIT_USAGE
    module = STAGES[args[0]]
    sys.argv = [f"gan-pipeline {args[0]}", *args[1:]]
    # The stage's own `if __name__ == "__main__"` block runs; its SystemExit is the exit code.
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
