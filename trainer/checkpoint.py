"""Checkpoints: save every N steps, keep the last K, restore the newest committed one.

``tf.train.CheckpointManager`` writes the data and index files first and the ``checkpoint``
state file last: that state file is the commit marker. A checkpoint that was being written when
the process died is never "latest". In multi-worker training every worker takes part in the save
(the variables are collective), but only the chief writes into the job directory; the others
write to a private temporary directory that is removed.
"""

from __future__ import annotations

import os
import shutil

import tensorflow as tf

CHECKPOINT_NAME = "ckpt"


class CheckpointStore:
    def __init__(
        self, directory: str, objects: dict, keep: int, is_chief: bool, worker_id: int = 0
    ):
        self.directory = directory
        self.is_chief = is_chief
        self.checkpoint = tf.train.Checkpoint(**objects)
        write_dir = directory if is_chief else os.path.join(directory, f".worker-{worker_id}-tmp")
        self._write_dir = write_dir
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, write_dir, max_to_keep=keep, checkpoint_name=CHECKPOINT_NAME
        )

    @property
    def latest(self) -> str | None:
        return tf.train.latest_checkpoint(self.directory)

    def restore_latest(self) -> str | None:
        """Restore the newest committed checkpoint, if any; return its path."""
        path = self.latest
        if path:
            self.checkpoint.restore(path).assert_existing_objects_matched()
        return path

    def save(self, step: int) -> str:
        path = self.manager.save(checkpoint_number=step)
        if not self.is_chief:
            shutil.rmtree(self._write_dir, ignore_errors=True)
        return path
