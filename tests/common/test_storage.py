"""The storage module against local disk and a real GCS server: the same functions for both."""

from __future__ import annotations

import os

import pytest

from common import storage
from tests.gcs import BUCKET


@pytest.fixture(params=["local", "gcs"])
def root(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "root")
    request.getfixturevalue("gcs")
    return f"gs://{BUCKET}/root"


def test_write_read_list_delete_round_trip(root):
    path = storage.join(root, "a", "x.bin")
    storage.write_bytes(path, b"\x00\x01payload")
    storage.write_text(storage.join(root, "a", "y.txt"), "hello")
    assert storage.exists(path)
    assert storage.read_bytes(path) == b"\x00\x01payload"
    assert storage.read_text(storage.join(root, "a", "y.txt")) == "hello"
    assert storage.list_files(storage.join(root, "a")) == [
        storage.join(root, "a", "x.bin"),
        storage.join(root, "a", "y.txt"),
    ]
    storage.delete(path)
    storage.delete(path)  # deleting twice is not an error
    assert not storage.exists(path)
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(path)


def test_put_file_publishes_and_consumes_the_local_file(root, tmp_path):
    local = tmp_path / "shard.tmp"
    local.write_bytes(b"x" * 100_000)
    target = storage.join(root, "shard-00000")
    storage.put_file(str(local), target)
    assert not local.exists()
    assert storage.read_bytes(target) == b"x" * 100_000


def test_mirror_pushes_only_changes(gcs, tmp_path):
    mirror = storage.Mirror(f"gs://{BUCKET}/job", str(tmp_path / "scratch"))
    with open(mirror.path("metrics.jsonl"), "w") as f:
        f.write("{}\n")
    os.makedirs(mirror.path("samples"))
    with open(mirror.path("samples", "step-1.png"), "wb") as f:
        f.write(b"png")
    assert mirror.push() == 2
    assert mirror.push() == 0
    with open(mirror.path("metrics.jsonl"), "a") as f:
        f.write("{}\n")
    assert mirror.push() == 1
    assert gcs.list("job/") == ["job/metrics.jsonl", "job/samples/step-1.png"]
    assert gcs.read("job/metrics.jsonl") == b"{}\n{}\n"


def test_local_mirror_works_in_place(tmp_path):
    mirror = storage.Mirror(str(tmp_path / "job"), str(tmp_path / "unused"))
    assert mirror.local == str(tmp_path / "job")
    assert mirror.push() == 0


def test_missing_bucket_fails_fast_with_one_line(gcs):
    with pytest.raises(storage.StorageError) as error:
        storage.check_bucket("gs://no-such-bucket/data")
    assert (
        str(error.value)
        == "gs://no-such-bucket: bucket does not exist (needed for gs://no-such-bucket/data)"
    )
    storage.check_bucket(f"gs://{BUCKET}/anything")


def test_unreachable_server_gives_one_line_naming_bucket_and_operation(gcs):
    gcs.stop()
    with pytest.raises(storage.StorageError) as error:
        storage.write_bytes(f"gs://{BUCKET}/x", b"1")
    message = str(error.value)
    assert message.startswith(f"gs://{BUCKET}: write gs://{BUCKET}/x failed after retries")
    assert "\n" not in message
