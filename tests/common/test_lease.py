"""One writer per directory (common/lease.py): the lease itself, in-process. The stages meeting
on a directory are tested where they run (test_task.py, test_run.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from common import lease


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    held = lease.acquire(str(tmp_path), "trainer", report=pytest.fail)
    try:
        with pytest.raises(lease.LeaseHeldError) as refused:
            lease.acquire(str(tmp_path), "export", report=pytest.fail)
        message = str(refused.value)
        assert message.startswith(f"{tmp_path}: trainer (pid {os.getpid()} on ")
        assert "is writing it" in message
    finally:
        held.release()


def test_a_released_lease_leaves_no_trace_and_is_taken_without_a_takeover_line(tmp_path):
    with lease.acquire(str(tmp_path), "trainer", report=pytest.fail):
        assert json.loads((tmp_path / lease.NAME).read_text())["pid"] == os.getpid()
    assert os.listdir(tmp_path) == []
    lease.acquire(str(tmp_path), "trainer", report=pytest.fail).release()


def test_a_dead_holders_lease_is_taken_over_with_a_line_naming_it(tmp_path):
    # What kill -9 leaves: the holder's record, and no lock (the OS dropped it with the process).
    gone = {"stage": "trainer", "host": "h1", "pid": 4242, "job_id": "", "since": "2026-12-01"}
    (tmp_path / lease.NAME).write_text(json.dumps(gone))
    lines: list[str] = []
    held = lease.acquire(str(tmp_path), "trainer", report=lines.append)
    try:
        assert lines == [
            f"trainer: took over {tmp_path} from trainer (pid 4242 on h1, since 2026-12-01), "
            "which is gone"
        ]
        now = json.loads((tmp_path / lease.NAME).read_text())
        assert now["pid"] == os.getpid() and now["stage"] == "trainer"
    finally:
        held.release()


def test_a_directory_the_lease_made_and_nothing_else_wrote_is_removed(tmp_path):
    target = tmp_path / "new" / "out"
    lease.acquire(str(target), "preprocessing").release()
    assert not target.exists()
    kept = tmp_path / "kept"
    with lease.acquire(str(kept), "preprocessing"):
        (kept / "manifest.json").write_text("{}")
    assert os.listdir(kept) == ["manifest.json"]


def test_fuse_paths_are_leased_as_the_bucket_paths_they_are():
    assert lease.bucket_path("/gcs/my-bucket/runs/1") == "gs://my-bucket/runs/1"
    assert lease.bucket_path("/data/runs/1") == "/data/runs/1"


# --- Buckets: a lease object, renewed, taken over by what a contender observes --------------


def bucket_dir(gcs) -> str:
    from tests.gcs import BUCKET

    return f"gs://{BUCKET}/runs/r1"


def plant(directory: str, **fields) -> int:
    """A lease object as another holder left it; return its generation."""
    from common import storage

    record = {"stage": "trainer", "host": "h2", "pid": 1, "job_id": "", "since": "t0", **fields}
    path = storage.join(directory, lease.NAME)
    return storage.write_if_generation(path, json.dumps(record).encode(), 0)


def dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    return int(proc.stdout)


@pytest.fixture
def quick_renewals(monkeypatch):
    monkeypatch.setenv(lease.RENEW_SECONDS_ENV, "0.25")


def test_a_live_holders_bucket_lease_is_refused_after_seeing_it_renewed(gcs, quick_renewals):
    directory = bucket_dir(gcs)
    held = lease.acquire(directory, "trainer", report=pytest.fail)
    try:
        lines: list[str] = []
        with pytest.raises(lease.LeaseHeldError, match=r"trainer \(pid \d+ on .* is writing it"):
            lease.acquire(directory, "export", report=lines.append)
        assert len(lines) == 1 and "watching 1s for a renewal" in lines[0]
        held.check()  # still the holder
    finally:
        held.release()
    assert gcs.list("runs/r1/") == []  # a clean release deletes the lease


@pytest.mark.parametrize(
    ("fields", "env", "reason"),
    [
        ({"host": socket.gethostname(), "pid": None}, {}, "which is gone"),
        ({"job_id": "4242"}, {"CLOUD_ML_JOB_ID": "4242"}, "the same job, restarted"),
    ],
    ids=["dead-pid-same-host", "same-vertex-job"],
)
def test_a_provably_gone_holders_bucket_lease_is_taken_at_once(
    gcs, quick_renewals, monkeypatch, fields, env, reason
):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    directory = bucket_dir(gcs)
    plant(directory, **{k: (dead_pid() if v is None else v) for k, v in fields.items()})
    lines: list[str] = []
    began = time.monotonic()
    held = lease.acquire(directory, "trainer", report=lines.append)
    try:
        assert time.monotonic() - began < 1.0  # no watching
        assert len(lines) == 1 and lines[0].startswith(f"trainer: took over {directory} from ")
        assert lines[0].endswith(reason)
    finally:
        held.release()


def test_an_unrenewed_bucket_lease_on_another_host_is_taken_after_watching(gcs, quick_renewals):
    directory = bucket_dir(gcs)
    plant(directory, host="another-host", pid=1)
    lines: list[str] = []
    began = time.monotonic()
    held = lease.acquire(directory, "trainer", report=lines.append)
    try:
        assert time.monotonic() - began >= lease.EXPIRY_RENEWALS * 0.25
        assert lines[-1].endswith("pid 1 on another-host, since t0), unrenewed for 1s")
    finally:
        held.release()


def test_a_holder_whose_bucket_lease_was_taken_over_writes_no_more(gcs, quick_renewals):
    from common import storage

    directory = bucket_dir(gcs)
    held = lease.acquire(directory, "trainer", report=pytest.fail)
    path = storage.join(directory, lease.NAME)
    # Another writer took it over (as after watching this one, paused, go unrenewed).
    _, generation = storage.read_versioned(path)
    record = {"stage": "trainer", "host": "h2", "pid": 7, "job_id": "", "since": "t1"}
    storage.write_if_generation(path, json.dumps(record).encode(), generation)
    with pytest.raises(lease.LeaseLostError, match="taken over by trainer \\(pid 7 on h2"):
        held.check()
    held.release()  # must not delete the new holder's lease
    assert json.loads(storage.read_versioned(path)[0])["pid"] == 7


def test_a_renewal_that_landed_but_was_reported_failed_is_still_ours(gcs, quick_renewals):
    from common import storage

    directory = bucket_dir(gcs)
    held = lease.acquire(directory, "trainer", report=pytest.fail)
    try:
        held._stop.set()  # renew by hand from here
        stale = held.generation
        # The write of renewal n+1 landed; the client saw a timeout, retried, and got 412.
        storage.write_if_generation(held.path, held.record(held.renewals + 1), stale)
        held._renew()
        assert held.lost_to is None and held.generation != stale
        held.check()
    finally:
        held.release()
