"""The image as the Dockerfile builds it, without a Docker engine: its files and its environment.

Reads the final stage of the ``Dockerfile``: ``WORKDIR``, ``ENV`` and every ``COPY`` from the
build context (``--from=`` copies from other images are not the project's files), with the
context filtered by ``.dockerignore``.
"""

from __future__ import annotations

import fnmatch
import os
import shlex
import shutil

from common import storage
from tests import helpers


def instructions(path: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile's last stage, continuation lines joined."""
    with open(path) as f:
        text = f.read().replace("\\\n", " ")
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]
    parsed = [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]
    last_from = max(i for i, (kind, _) in enumerate(parsed) if kind == "FROM")
    return parsed[last_from + 1 :]


def ignored(rel: str, patterns: list[str]) -> bool:
    parts = rel.split("/")
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        if fnmatch.fnmatch(rel, pattern) or any(
            fnmatch.fnmatch("/".join(parts[: i + 1]), pattern) for i in range(len(parts))
        ):
            return True
        if pattern.startswith("**/") and any(fnmatch.fnmatch(p, bare) for p in parts):
            return True
    return False


class Image:
    def __init__(self, context: str = helpers.REPO_ROOT):
        self.context = context
        steps = instructions(os.path.join(context, "Dockerfile"))
        self.workdir = next(args for kind, args in reversed(steps) if kind == "WORKDIR")
        self.env: dict[str, str] = {}
        self.copies: list[tuple[list[str], str]] = []
        for kind, args in steps:
            if kind == "ENV":
                self.env.update(dict(word.split("=", 1) for word in shlex.split(args)))
            elif kind == "COPY" and not args.startswith("--from="):
                *sources, destination = shlex.split(args)
                self.copies.append((sources, destination))
        with open(os.path.join(context, ".dockerignore")) as f:
            self.ignore = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]

    def materialize(self, root: str) -> str:
        """The files COPY puts under WORKDIR, in ``root`` (which plays WORKDIR); return it."""
        for sources, destination in self.copies:
            if os.path.isabs(destination) and not destination.startswith(self.workdir):
                continue  # outside the working directory (e.g. the entrypoint in /usr/local/bin)
            target = os.path.join(
                root, os.path.relpath(os.path.join(self.workdir, destination), self.workdir)
            )
            for source in sources:
                self._copy(source.rstrip("/"), target, destination.endswith("/"))
        return root

    def _copy(self, source: str, target: str, into_dir: bool) -> None:
        src = os.path.join(self.context, source)
        if os.path.isfile(src):
            dst = os.path.join(target, os.path.basename(source)) if into_dir else target
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(src, dst)
            return
        for rel in sorted(storage.walk_files(src)):
            if ignored(f"{source}/{rel}", self.ignore):
                continue
            dst = os.path.join(target, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(os.path.join(src, rel), dst)
