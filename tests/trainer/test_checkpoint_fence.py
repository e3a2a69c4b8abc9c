"""A bucket checkpoint commit replaces only the state version its writer last saw."""

from __future__ import annotations

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
