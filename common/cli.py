"""What every entry point does with errors: one line naming what and where, a documented code.

Every error a user can cause (bad flags, bad input, unreachable buckets, a run that cannot go
on) derives from ``UserError`` and is caught once, here, per entry point: a new error type
cannot leak a traceback. Exit codes, the same for every command:

    0  done
    1  an internal error (a bug: the traceback is kept, for the report)
    2  a user-facing error: bad flags or input, unreachable storage, a full disk or quota;
       one line on stderr
    3  pipeline.promote only: the candidate was not better, the promoted model was kept
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence

from absl import flags, logging

from common import native_logs

# TensorFlow's C++ INFO and WARNING lines (CUDA probing on a machine without a GPU, CPU feature
# notes) are not the user's business unless asked for; set before TensorFlow is imported, and
# filter what its absl-based logging prints regardless (every entry point imports this first).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
native_logs.install()

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A user-facing error; its message is the one line the user sees."""


def one_line(error: BaseException) -> str:
    """``TypeName: first line of the message``, at most 300 characters: a library's error
    (Google API, TensorFlow) made fit for a one-line report."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def fail(prog: str, message: object) -> None:
    lines = str(message).strip().splitlines() or [""]
    print(f"{prog}: error: {lines[0]}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USER_ERROR)


def flags_parser(
    prog: str, known_only: bool = False, retired: Mapping[str, str] | None = None
) -> Callable[[list[str]], list[str]]:
    """absl's parsing, with a bad flag (unknown, unparsable, missing) as one line, exit 2.

    ``retired`` maps a flag that no longer exists to what replaced it: a command line or an old
    run's ``flags.txt`` that still names it is told what to write instead.
    """

    def parse(argv: list[str]) -> list[str]:
        try:
            return flags.FLAGS(argv, known_only=known_only)
        except flags.Error as e:
            fail(prog, flag_error(e, retired))
        raise AssertionError("unreachable")

    return parse


def flag_error(error: flags.Error, retired: Mapping[str, str] | None = None) -> str:
    """absl's parse error as the line a user sees; a retired flag says what replaced it."""
    hint = (retired or {}).get(getattr(error, "flagname", ""))
    return f"--{error.flagname} was {hint}" if hint else str(error)


def guarded(prog: str, main: Callable[[Sequence[str]], None]) -> Callable[[Sequence[str]], None]:
    """``main`` with every ``UserError`` turned into one line and exit 2."""

    def run(argv: Sequence[str]) -> None:
        if "verbosity" in flags.FLAGS and not flags.FLAGS["verbosity"].present:
            # Libraries' INFO logs (Beam's runner choice, TF's saver timings) only with -v 0.
            logging.set_verbosity(logging.WARNING)
        try:
            main(argv)
        except UserError as e:
            fail(prog, e)
        except Exception as e:
            from common import disk  # imports this module: not at the top

            if not disk.is_full(e):
                raise
            fail(prog, disk.full_error(getattr(e, "filename", None) or _named_path(e)))

    return run


def _named_path(error: BaseException) -> str:
    """The path a library's error message starts with (TensorFlow's: ``path; reason``)."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return first.split(";", 1)[0].split(" ", 1)[0] or "?"
