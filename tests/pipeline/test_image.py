"""The build's test step passes in the image as the Dockerfile builds it (no Docker engine here:
the image's working directory is materialized from the Dockerfile's own COPY lines)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.image import Image
from tests.rehearsal import Build

# Set in the run this test starts, so that run does not start another.
INSIDE = "GAN_PIPELINE_INSIDE_IMAGE_TEST"


def test_the_image_holds_the_code_data_and_the_files_its_tests_read(tmp_path):
    app = Image().materialize(str(tmp_path / "app"))
    top = set(os.listdir(app))
    assert {"common", "preprocessing", "trainer", "pipeline", "tests", "data", "docker"} <= top
    assert {"Dockerfile", ".dockerignore", "cloudbuild.yaml", "requirements.lock"} <= top
    assert not {".git", "runs", "benchmarks", ".ci"} & top
    assert not [p for p, _, _ in os.walk(app) if p.endswith("__pycache__")]


@pytest.mark.skipif(bool(os.environ.get(INSIDE)), reason="the run this test started")
@pytest.mark.timeout(1500)  # a whole suite runs inside it
def test_the_builds_test_step_passes_in_the_image_as_built(tmp_path):
    build = Build({"PROJECT_ID": "p", "COMMIT_SHA": "c0ffee", "_BUCKET": "b"})
    step = build.steps["test"]
    image = Image()
    assert step["dir"] == image.workdir  # the step runs in the image's files, not the checkout
    command = build.command("test")
    assert command[0] == "python"
    app = image.materialize(str(tmp_path / "app"))
    container_tmp = tmp_path / "tmp"  # the container's own /tmp
    container_tmp.mkdir()
    step_env = dict(item.split("=", 1) for item in step.get("env", []))
    step_env = {
        k: str(container_tmp) + v[len("/tmp") :] if v.startswith("/tmp/") else v
        for k, v in step_env.items()
    }
    env = {
        **os.environ,
        **image.env,
        **step_env,
        "HOME": str(tmp_path / "home"),
        "TMPDIR": str(container_tmp),
        INSIDE: "1",
    }
    proc = subprocess.run(
        [sys.executable, *command[1:]],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=1450,
    )
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary and "error" not in summary
    assert not os.path.exists(os.path.join(app, ".pytest_cache"))
