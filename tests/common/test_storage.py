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


# --- hostile names, private directories, no process-wide umask ----------------------------


@pytest.mark.parametrize("name", ["../outside.txt", "a/../../outside.txt", "/etc/x", "a//b", "."])
def test_names_that_leave_their_directory_are_refused(name):
    with pytest.raises(storage.StorageError, match="refusing the unsafe name"):
        storage.safe_relative(name, "gs://b/job")
    assert storage.safe_relative("samples/step-00000002.png", "r") == "samples/step-00000002.png"


def test_a_hostile_object_name_in_a_bucket_cannot_write_outside_the_working_copy(
    tmp_path, monkeypatch
):
    """Cloud Storage accepts any object name, ``../`` included; the emulator cannot store one
    (it is file-backed), so the bucket's listing is played here by the function that reads it."""
    listing = ["metrics.jsonl", "samples/../../../escaped.txt"]
    monkeypatch.setattr(storage, "list_tree", lambda root: listing)
    monkeypatch.setattr(storage, "list_tree_generations", lambda root: dict.fromkeys(listing, 1))
    downloads = []

    def fetch(src: str, dst: str) -> None:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        open(dst, "wb").close()
        downloads.append(dst)

    monkeypatch.setattr(storage, "download_file", fetch)
    monkeypatch.setattr(storage, "copy_file", fetch)
    with pytest.raises(storage.StorageError, match="refusing the unsafe name"):
        storage.Mirror("gs://b/job", str(tmp_path / "scratch")).pull()
    with pytest.raises(storage.StorageError, match="refusing the unsafe name"):
        storage.copy_tree("gs://b/job", str(tmp_path / "copy"))
    assert all(str(tmp_path / "scratch") in d for d in downloads)
    assert not [d for d in downloads if "escaped" in d]


def test_private_dirs_are_created_0700_and_foreign_or_open_ones_refused(tmp_path):
    mine = storage.private_dir(str(tmp_path / "mine"))
    assert os.stat(mine).st_mode & 0o777 == 0o700
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    with pytest.raises(storage.StorageError, match="not a private directory"):
        storage.private_dir(str(open_dir))
    if os.getuid() == 0:  # only root can make a directory owned by someone else
        foreign = tmp_path / "foreign"
        foreign.mkdir(mode=0o700)
        os.chown(foreign, 12345, 12345)
        with pytest.raises(storage.StorageError, match="owner uid 12345"):
            storage.private_dir(str(foreign))


def test_a_private_dir_where_a_users_file_is_is_one_line_and_the_file_stays(tmp_path):
    """``--classifier_dir`` (the evaluation cache) given a file, or a path below one."""
    mine = tmp_path / "mine.txt"
    mine.write_text("keep")
    for path in (mine, mine / "cache"):
        with pytest.raises(storage.StorageError, match=f"{path}: cannot be a directory here"):
            storage.private_dir(str(path))
    assert mine.read_text() == "keep"


def test_writes_never_touch_the_process_umask(tmp_path, monkeypatch):
    mask = os.umask(0o022)
    os.umask(mask)

    def forbidden(_):
        raise AssertionError("os.umask changed process-wide (other threads see it)")

    monkeypatch.setattr(os, "umask", forbidden)
    path = tmp_path / "f.txt"
    storage.write_text(str(path), "x")
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask
