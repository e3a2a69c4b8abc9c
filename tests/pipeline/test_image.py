"""The image as the Dockerfile builds it (no Docker engine here: its working directory is
materialized from the Dockerfile's own COPY lines). ``make test`` runs the whole suite in such a
directory with the build's test-step command (``tests/in_image.py``): that run is the proof that
the image passes its own test step."""

from __future__ import annotations

import os

from tests.image import Image


def test_the_image_holds_the_code_data_and_the_files_its_tests_read(tmp_path):
    app = Image().materialize(str(tmp_path / "app"))
    top = set(os.listdir(app))
    assert {"common", "preprocessing", "trainer", "pipeline", "tests", "data", "docker"} <= top
    assert {"Dockerfile", ".dockerignore", "cloudbuild.yaml", "requirements.lock"} <= top
    assert not {".git", "runs", "benchmarks", ".ci"} & top
    assert not [p for p, _, _ in os.walk(app) if p.endswith("__pycache__")]
