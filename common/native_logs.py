"""Keep TensorFlow's and XLA's native log lines off the user's terminal unless asked for.

TensorFlow 2.21 logs through absl's C++ logging, which ignores ``TF_CPP_MIN_LOG_LEVEL`` for some
sources: a machine without a GPU prints ``cudart_stub.cc] Could not find cuda drivers`` and
``cuda_platform.cc] failed call to cuInit`` at every start, grappler an ``E``-level "remapper
failed" line per trace. They look like failures and are not. Those writes go straight to file
descriptor 2, below Python, so the filter sits there: fd 2 becomes a pipe whose reader passes
every line through except the native ones it recognizes.

Installed only when an entry point runs as a program (``python -m trainer.task`` ...), not when
tests import the modules, and not with ``--verbosity``/``-v`` on the command line or
``GAN_PIPELINE_NATIVE_LOGS=1`` in the environment.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import sys
import threading

ENTRY_POINTS = {
    "preprocessing.run",
    "trainer.task",
    "pipeline.export",
    "pipeline.run",
    "pipeline.promote",
    "pipeline.submit",
}
SHOW_ENV = "GAN_PIPELINE_NATIVE_LOGS"
# glog/absl C++ format: I0000 00:00:1795606586.060973    4667 cudart_stub.cc:31] ...
_NATIVE = re.compile(rb"^[IWE]\d{4} [\d:.]+\s+\d+ [\w.]+\.(cc|h):\d+\] ")
_NATIVE_ERRORS_THAT_ARE_NOT = re.compile(
    rb"cuda_platform\.cc|cuda_executor\.cc|cuda_diagnostics\.cc|remapper failed|"
    rb"Mutation::Apply error|tasks are unhealthy|StartAbort UNAVAILABLE"
)
_NOISE_LINES = (
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    b"To enable the following instructions:",
)


def is_noise(line: bytes) -> bool:
    """A native line that is not the user's business: I and W always, E from known sources."""
    if line.startswith(_NOISE_LINES):
        return True
    if not _NATIVE.match(line):
        return False
    return line[:1] in (b"I", b"W") or bool(_NATIVE_ERRORS_THAT_ARE_NOT.search(line))


def _wanted() -> bool:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is None or spec.name not in ENTRY_POINTS:
        return False
    verbose = any(a in ("-v", "--verbosity") or a.startswith("--verbosity=") for a in sys.argv)
    return not verbose and os.environ.get(SHOW_ENV) != "1"


def install() -> None:
    """Route fd 2 through the filter (idempotent); undone, and drained, at exit."""
    if getattr(install, "done", False) or not _wanted():
        return
    install.done = True
    sys.stderr.flush()
    real = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        # Never stops reading while the process runs: a writer to a full pipe would block.
        with os.fdopen(read_end, "rb") as lines:
            for line in lines:
                if not is_noise(line):
                    with contextlib.suppress(OSError):  # the reader of stderr went away
                        os.write(real, line)

    thread = threading.Thread(target=pump, name="native-log-filter", daemon=True)
    thread.start()

    def restore() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(real, 2)  # the pipe's last write end closes: the reader drains and stops
        thread.join(timeout=5)

    atexit.register(restore)
