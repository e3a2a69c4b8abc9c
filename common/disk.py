"""A full disk (or an exhausted quota) as the one line a user can act on."""

from __future__ import annotations

import errno
import os
import shutil

from common.cli import UserError

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# TensorFlow's file writers report the OS error in a message, not as an errno.
FULL_MESSAGES = ("No space left on device", "Disk quota exceeded")


class DiskFullError(UserError, OSError):
    """A write ran out of space; what was committed before it is intact."""


def is_full(error: BaseException) -> bool:
    if isinstance(error, OSError) and error.errno in FULL_ERRNOS:
        return True
    return any(message in str(error) for message in FULL_MESSAGES)


def free_bytes(path: str) -> int | None:
    """Free space on the filesystem holding ``path`` (its nearest existing ancestor)."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def size_text(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def full_error(path: str, needed: int | None = None, what: str = "the write") -> DiskFullError:
    """The one-line error for a write into ``path`` that found no space."""
    free = free_bytes(path)
    room = f"{size_text(free)} free" if free is not None else "free space unknown"
    need = f", {what} needs ~{size_text(needed)}" if needed else ""
    return DiskFullError(f"{path}: no space left on device ({room}{need}); free some and re-run")
