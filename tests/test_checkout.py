"""The checkout's own tooling: how `make` finds a Python. The image holds neither (see the
``checkout`` marker), so these run beside the rehearsal, outside the image."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests import helpers

pytestmark = pytest.mark.checkout

FIND_PYTHON = os.path.join(helpers.REPO_ROOT, "tools", "find-python")
HERE = f"{sys.version_info.major}.{sys.version_info.minor}"


def fake_path(tmp_path, working: dict[str, str], failing: list[str]) -> dict[str, str]:
    """A PATH holding ``pythonX.Y`` commands: links to real interpreters, and shims that fail
    the way pyenv's do for a version it has not selected. No pyenv root."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for version, target in working.items():
        os.symlink(target, bin_dir / f"python{version}")
    for version in failing:
        shim = bin_dir / f"python{version}"
        shim.write_text(
            f"#!/bin/sh\necho 'pyenv: python{version}: command not found' >&2\nexit 127\n"
        )
        shim.chmod(0o755)
    system = os.pathsep.join(
        os.path.dirname(shutil.which(tool)) for tool in ("sh", "ls", "sort", "make")
    )
    return {
        "PATH": f"{bin_dir}{os.pathsep}{system}",
        "PYENV_ROOT": str(tmp_path / "no-pyenv"),
        "HOME": str(tmp_path),
    }


def find_python(env: dict[str, str], *versions: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["sh", FIND_PYTHON, *versions], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_newest_python_that_runs_is_chosen_past_failing_shims(tmp_path):
    newer = [v for v in ("3.11", "3.12", "3.13") if v > HERE]
    env = fake_path(tmp_path, {HERE: sys.executable}, failing=newer)
    proc = find_python(env)
    assert proc.returncode == 0 and proc.stdout.strip() == str(tmp_path / "bin" / f"python{HERE}")


def test_a_command_named_for_one_version_that_runs_another_is_not_taken(tmp_path):
    impostor = next(v for v in ("3.11", "3.12", "3.13") if v != HERE)
    env = fake_path(tmp_path, {impostor: sys.executable}, failing=[])
    proc = find_python(env, impostor)
    assert proc.returncode == 1 and proc.stdout == ""


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_with_no_supported_python_says_so_in_one_line(tmp_path):
    env = fake_path(tmp_path, {}, failing=["3.11", "3.12", "3.13"])
    proc = subprocess.run(
        ["make", "-s", "-C", helpers.REPO_ROOT, "install"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    ours = [ln for ln in proc.stderr.splitlines() if ln.startswith("make: ") and "***" not in ln]
    assert len(ours) == 1, proc.stderr
    for fragment in ("no supported Python (3.11, 3.12, 3.13)", "Debian 13", "PYTHON="):
        assert fragment in ours[0]
