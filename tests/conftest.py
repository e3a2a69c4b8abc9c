"""Session fixtures: small real data sets made by the real preprocessing job."""

from __future__ import annotations

import os

import pytest

from tests import helpers

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> str:
    """512 train / 128 test real MNIST images, preprocessed into 2 shards per split."""
    root = tmp_path_factory.mktemp("tiny")
    source = helpers.tiny_mnist(str(root / "idx"), n_train=512, n_test=128)
    out = str(root / "data")
    proc = helpers.run_module(
        "preprocessing.run", f"--source={source}", f"--output_dir={out}", "--num_shards=2"
    )
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture
def gcs(tmp_path, monkeypatch):
    """A running GCS emulator with one bucket; this process and its children point at it."""
    from common import storage
    from tests.gcs import GcsEmulator

    emulator = GcsEmulator(str(tmp_path / "gcs-data")).start()
    for key, value in emulator.env().items():
        monkeypatch.setenv(key, value)
    storage._client.cache_clear()
    emulator.create_bucket()
    yield emulator
    emulator.stop()
    storage._client.cache_clear()
