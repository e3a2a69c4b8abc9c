"""A bucket checkpoint commit replaces only the state version its writer last saw; a write
refused so names who took the lease over."""

from __future__ import annotations

import os

import pytest

from tests.gcs import BUCKET


def store(target: str, scratch: str, value: float):
    import tensorflow as tf

    from trainer.checkpoint import CheckpointStore

    return CheckpointStore(target, {"v": tf.Variable(value)}, keep=3, scratch=scratch)


def test_a_writer_that_missed_another_writers_commit_cannot_commit(gcs, tmp_path):
    from trainer.checkpoint import CommitFencedError

    target = f"gs://{BUCKET}/job/checkpoints"
    first = store(target, str(tmp_path / "a"), 1.0)
    assert first.restore_latest() is None
    first.save(1)
    second = store(target, str(tmp_path / "b"), 0.0)  # a new writer, on a fresh machine
    assert second.restore_latest() == f"{target}/ckpt-1"
    second.save(2)
    with pytest.raises(CommitFencedError, match="another writer committed"):
        first.save(3)  # the first writer, woken: its last-seen state is gone
    assert '"ckpt-2"' in gcs.read("job/checkpoints/checkpoint").decode().splitlines()[0]
    second.save(4)  # the live writer goes on
    assert second.latest == f"{target}/ckpt-4"


def take_over(directory: str, pid: int) -> None:
    """Another trainer takes ``directory``'s bucket lease over (as after watching it unrenewed)."""
    import json

    from common import lease, storage

    path = storage.join(directory, lease.NAME)
    _, generation = storage.read_versioned(path)
    record = {"stage": "trainer", "host": "h2", "pid": pid, "job_id": "", "since": "t1"}
    storage.write_if_generation(path, json.dumps(record).encode(), generation)


def paused_writer(job: str, tmp_path, held, pid: int, successor):
    """The lease holder's checkpoint store and its pause: after ``pause()``, each save's lease
    check passes just before another trainer (``pid``) takes the lease over and runs
    ``successor`` (as a SIGSTOP falling right after the check)."""
    paused = []

    def check_then_pause():
        held.check()
        if paused:
            take_over(job, pid=pid)
            successor()

    writer = store(f"{job}/checkpoints", str(tmp_path / "a"), 1.0)
    writer.fence = check_then_pause
    return writer, lambda: paused.append(True)


def test_a_writer_paused_between_its_lease_check_and_commit_names_who_took_over(gcs, tmp_path):
    """The commit is refused, and the error names the lease's new holder, not only the object
    that changed."""
    from common import lease

    job = f"gs://{BUCKET}/job"
    with lease.acquire(job, "trainer", report=pytest.fail) as held:
        successor = store(f"{job}/checkpoints", str(tmp_path / "b"), 0.0)
        first, pause = paused_writer(job, tmp_path, held, 7, lambda: successor.save(2))
        first.save(1)
        pause()
        with pytest.raises(lease.LeaseLostError, match="taken over by trainer \\(pid 7 on h2"):
            first.save(3)
        assert '"ckpt-2"' in gcs.read("job/checkpoints/checkpoint").decode().splitlines()[0]


def test_a_refused_save_takes_back_the_files_it_uploaded(gcs, tmp_path):
    """Woken after its successor's last commit, a paused writer's save of a new step uploads
    its files (no object had their names), then its commit is refused: the bucket must hold
    what the successor left, not the refused checkpoint's files beside it."""
    from common import lease

    job = f"gs://{BUCKET}/job"
    with lease.acquire(job, "trainer", report=pytest.fail) as held:
        successor = store(f"{job}/checkpoints", str(tmp_path / "b"), 0.0)
        first, pause = paused_writer(job, tmp_path, held, 7, lambda: successor.save(2))
        first.save(1)
        left = gcs.list("job/checkpoints/")
        pause()
        with pytest.raises(lease.LeaseLostError, match="taken over by trainer"):
            first.save(3)
    after = gcs.list("job/checkpoints/")
    assert not [name for name in after if "ckpt-3" in name]
    assert sorted(after) == sorted({*left, *[n for n in after if "ckpt-2" in n]})


def test_a_paused_writer_leaves_its_successors_same_step_checkpoint_alone(gcs, tmp_path):
    """The successor resumed from an earlier checkpoint and committed one of the same step: the
    paused writer's save of that step must not replace its files before its commit fails (its
    commit text is the successor's, so the commit alone would not tell)."""
    from common import lease

    job = f"gs://{BUCKET}/job"
    successor = store(f"{job}/checkpoints", str(tmp_path / "b"), 7.0)

    def resume_and_save():
        successor.restore_latest()  # ckpt-1: 1.0
        successor.objects["v"].assign(7.0)
        successor.save(2)

    with lease.acquire(job, "trainer", report=pytest.fail) as held:
        first, pause = paused_writer(job, tmp_path, held, 9, resume_and_save)
        first.save(1)
        pause()
        first.objects["v"].assign(3.0)
        with pytest.raises(lease.LeaseLostError, match="taken over by trainer \\(pid 9 on h2"):
            first.save(2)
    reader = store(f"{job}/checkpoints", str(tmp_path / "c"), 0.0)
    assert reader.restore_latest() == f"{job}/checkpoints/ckpt-2"
    assert float(reader.objects["v"].numpy()) == 7.0  # the successor's, not the paused one's


def test_a_crashed_saves_leftover_files_are_replaced_by_the_next_save(gcs, tmp_path):
    from common import storage

    target = f"gs://{BUCKET}/job/checkpoints"
    crashed = store(target, str(tmp_path / "a"), 1.0)
    local = crashed.manager.save(checkpoint_number=1)  # its files, never uploaded or committed
    for name in os.listdir(tmp_path / "a"):
        if name.startswith("ckpt-1."):
            storage.upload_file(str(tmp_path / "a" / name), f"{target}/{name}")
    assert local and crashed.latest is None
    rerun = store(target, str(tmp_path / "b"), 2.0)
    assert rerun.restore_latest() is None
    rerun.save(1)
    reader = store(target, str(tmp_path / "c"), 0.0)
    assert reader.restore_latest() == f"{target}/ckpt-1"
    assert float(reader.objects["v"].numpy()) == 2.0


def test_a_job_dir_push_paused_after_its_lease_check_names_who_took_over(gcs, tmp_path):
    from common import lease, storage
    from trainer.settings import TrainConfig
    from trainer.workspace import Workspace

    job = f"gs://{BUCKET}/job"
    workspace = Workspace(TrainConfig(data_dir="", job_dir=job, scratch_dir=str(tmp_path)))
    with workspace.leased(chief=True):
        os.makedirs(workspace.job.local, exist_ok=True)
        metrics = os.path.join(workspace.job.local, "metrics.jsonl")
        with open(metrics, "w") as f:
            f.write("{}\n")
        workspace.push()
        lease_check = workspace.lease.check

        def check_then_pause():
            lease_check()
            take_over(job, pid=8)
            storage.write_text(f"{job}/metrics.jsonl", '{"step": 8}\n')  # the new writer's

        workspace.lease.check = check_then_pause
        with open(metrics, "a") as f:
            f.write("{}\n")
        with pytest.raises(lease.LeaseLostError, match="taken over by trainer \\(pid 8 on h2"):
            workspace.push()
    assert gcs.read("job/metrics.jsonl") == b'{"step": 8}\n'
