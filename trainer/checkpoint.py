"""Checkpoints: save every N steps, keep the last K, restore the newest committed one.

A checkpoint is "latest" only once committed. Locally, ``tf.train.CheckpointManager`` writes the
data and index files first and the ``checkpoint`` state file last. For a gs:// target the
manager writes into a local scratch directory and the store publishes: every file of the new
checkpoint is uploaded and verified (size and crc32c), then the remote ``checkpoint`` state file
is replaced (the commit), and only then are checkpoints beyond ``keep`` deleted from the bucket.
An upload that fails leaves the previous commit untouched. Restoring from a bucket downloads the
committed checkpoint into an empty scratch directory, so a fresh machine resumes.

In multi-worker training every worker takes part in a save (the variables are collective), but
only the chief writes into the target; the others write to a private directory that is removed.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
from collections.abc import Callable

import tensorflow as tf
from absl import logging as absl_logging

from common import disk, lease, storage
from common.cli import UserError

CHECKPOINT_NAME = "ckpt"
STATE_FILE = "checkpoint"


def _state_text(latest: str, kept: list[str]) -> str:
    """The ``checkpoint`` state file TF writes, with names relative to its directory."""
    lines = [f'model_checkpoint_path: "{latest}"']
    lines += [f'all_model_checkpoint_paths: "{name}"' for name in kept]
    return "\n".join(lines) + "\n"


def _latest_in_state(text: str) -> str | None:
    match = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', text, re.MULTILINE)
    return os.path.basename(match.group(1)) if match else None


def _all_in_state(text: str) -> list[str]:
    """Every kept checkpoint the state file lists, oldest first."""
    found = re.findall(r'^all_model_checkpoint_paths:\s*"([^"]+)"', text, re.MULTILINE)
    return [os.path.basename(name) for name in found]


def retained(committed: list[str], new: str, keep: int) -> list[str]:
    """The checkpoints to keep after committing ``new``: the newest ``keep``, oldest first.

    ``committed`` comes from the target's own state file, not from the local manager, which on a
    fresh machine (an empty scratch dir) knows only the checkpoints it wrote itself.
    """
    return ([name for name in committed if name != new] + [new])[-keep:]


class CheckpointMismatchError(UserError, ValueError):
    """A checkpoint does not fit the model built from the flags (another architecture or size),
    or its files are damaged."""


def _first_line(error: BaseException) -> str:
    # TF logs every unmatched value when the failed restore is garbage-collected; the one-line
    # error made from this says it all.
    absl_logging.set_verbosity(absl_logging.ERROR)
    return str(error).strip().splitlines()[0][:160]


class CommitFencedError(UserError, RuntimeError):
    """Another writer committed to the checkpoint target: this one must not."""


class CheckpointStore:
    def __init__(
        self,
        target: str,
        objects: dict,
        keep: int,
        is_chief: bool = True,
        worker_id: int = 0,
        scratch: str | None = None,
        fence: Callable[[], None] = lambda: None,
    ):
        self.target = target
        # Raises when this process may no longer write the target (its lease was taken over).
        self.fence = fence
        # The state object's generation this writer last saw (restored from or committed):
        # a bucket commit replaces only that version, so a zombie's commit fails.
        self._state_generation: int | None = None
        self.keep = keep
        self.remote = storage.is_gcs(target)
        self.is_chief = is_chief
        self.local_dir = scratch if self.remote else target
        if not is_chief:
            self.local_dir = os.path.join(scratch or target, f".worker-{worker_id}-tmp")
        self.objects = objects
        self.checkpoint = tf.train.Checkpoint(**objects)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self.local_dir, max_to_keep=keep, checkpoint_name=CHECKPOINT_NAME
        )

    @property
    def latest(self) -> str | None:
        """The newest committed checkpoint in the target, as a path or gs:// URL prefix."""
        if not self.remote:
            return tf.train.latest_checkpoint(self.target)
        state = storage.join(self.target, STATE_FILE)
        found = storage.read_versioned(state)
        if self._state_generation is None:
            self._state_generation = found[1] if found else 0
        if found is None:
            return None
        name = _latest_in_state(found[0].decode())
        if name and not re.fullmatch(rf"{CHECKPOINT_NAME}-\d+", name):
            raise storage.StorageError(f"{state}: names {name[:80]!r}, not a checkpoint of ours")
        return storage.join(self.target, name) if name else None

    def restore_latest(self) -> str | None:
        """Restore the newest committed checkpoint, if any; return its path."""
        latest = self.latest
        if latest is None:
            return None
        local = latest
        if self.remote:
            name = latest.rsplit("/", 1)[1]
            local_dir = self.local_dir
            for remote_file in storage.list_files(self.target):
                file_name = remote_file.rsplit("/", 1)[1]
                if file_name.startswith(name + "."):
                    storage.download_file(remote_file, os.path.join(local_dir, file_name))
            local = os.path.join(local_dir, name)
        try:
            self.checkpoint.restore(local).assert_existing_objects_matched()
        except (IndexError, tf.errors.DataLossError) as e:  # the reader ran out of bytes
            raise CheckpointMismatchError(
                f"{latest}: damaged, its files cannot be read ({_first_line(e)}); move it aside "
                "to resume from an earlier checkpoint"
            ) from e
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            raise CheckpointMismatchError(
                f"{latest}: does not match the model built from the flags, or was written by "
                f"another version of the networks ({_first_line(e)})"
            ) from e
        return latest

    def save(self, step: int) -> str:
        if self.is_chief:
            # Before the first byte (a /gcs/ FUSE target is written through the file system,
            # its lease through the bucket): a writer that lost its lease writes nothing.
            self.fence()
        try:
            path = self.manager.save(checkpoint_number=step)
        except (OSError, tf.errors.OpError) as e:
            if not disk.is_full(e):
                raise
            self._remove_uncommitted(step)
            raise disk.full_error(self.local_dir, self.size_estimate(), f"checkpoint {step}") from e
        if not self.is_chief:
            shutil.rmtree(self.local_dir, ignore_errors=True)
            return path
        if self.remote:
            return self._publish(path)
        return path

    def _commit_state(self, state: str, text: bytes) -> None:
        """Replace the state object: the commit, fenced by the generation last seen."""
        self._state_generation = self._refused_as_fenced(
            state,
            "another writer committed since this run's last commit",
            lambda: storage.write_if_generation(state, text, self._state_generation),
        )

    def _refused_as_fenced(self, path: str, why: str, write: Callable[[], int]) -> int:
        """``write``, a conditional write of ``path``; refused, the error names who took the
        lease over (``fence``), when that is why, else says ``why``."""
        try:
            return write()
        except storage.PreconditionFailed as e:
            self.fence()
            raise CommitFencedError(
                f"{path}: {why}; this run stops without committing (its lease was taken over)"
            ) from e

    def _upload_own(self, local: str, remote: str) -> int | None:
        """Upload one file of this run's save without replacing another writer's: only where
        there is no object, or over one already there (an uncommitted save's leftover, or
        this checkpoint saved again after a resume) while this run holds the lease, and only
        over the version it saw. A writer paused past its lease check cannot overwrite the
        files of the checkpoint its successor committed under the same name. Returns the
        generation of an object this upload created (None: it replaced one)."""
        try:
            return storage.upload_file(local, remote, if_generation_match=0)
        except storage.PreconditionFailed:
            seen = storage.generation(remote)
        self.fence()
        self._refused_as_fenced(
            remote,
            "replaced by another writer while this run wrote it",
            lambda: storage.upload_file(local, remote, if_generation_match=seen),
        )
        return None

    @staticmethod
    def _withdraw(created: dict[str, int]) -> None:
        """Delete the objects an uncommitted save created, each only at the generation it
        made: no committed state names them (a successor's checkpoint of the same name would
        have existed first), so a writer woken after its lease was taken over leaves the
        bucket as its successor left it. Best effort, under the error that stopped the save.
        (A save stopped by a failed upload leaves its files for the next commit's retention
        sweep: deleting them from an unreachable bucket would only wait out its retries.)"""
        for remote, made in created.items():
            with contextlib.suppress(Exception):
                storage.delete_if_generation(remote, made)

    def size_estimate(self) -> int:
        """Bytes of the variables a checkpoint holds: about what one needs on disk."""
        variables = {}
        for obj in self.objects.values():
            for v in [obj] if isinstance(obj, tf.Variable) else getattr(obj, "variables", []):
                variables[id(v)] = v
        # Keras variables give a tuple shape and a dtype name; tf.Variables TensorShape, DType.
        return sum(
            math.prod(tuple(v.shape)) * tf.as_dtype(v.dtype).size for v in variables.values()
        )

    def _remove_uncommitted(self, step: int) -> None:
        """A save that failed leaves partial files of its own; the committed ones stay."""
        prefix = f"{CHECKPOINT_NAME}-{step}"
        for name in os.listdir(self.local_dir):
            if name.startswith((prefix + ".", prefix + "_temp")):
                path = os.path.join(self.local_dir, name)
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.remove(path)

    def _publish(self, local_path: str) -> str:
        name = os.path.basename(local_path)
        created: dict[str, int] = {}
        try:
            for file_name in sorted(os.listdir(self.local_dir)):
                if file_name.startswith(name + "."):
                    remote = storage.join(self.target, file_name)
                    made = self._upload_own(os.path.join(self.local_dir, file_name), remote)
                    if made is not None:
                        created[remote] = made
            state = storage.join(self.target, STATE_FILE)
            found = storage.read_versioned(state)
            if self._state_generation is None:  # no restore before: what the bucket holds now
                self._state_generation = found[1] if found else 0
            committed = _all_in_state(found[0].decode()) if found else []
            kept = retained(committed, name, self.keep)
            self._commit_state(state, _state_text(name, kept).encode())
        # Raised only after a write's precondition refused it or the lease check failed: then
        # nothing of this save was committed (a commit failing otherwise may have landed).
        except (CommitFencedError, lease.LeaseLostError):
            self._withdraw(created)
            raise
        for remote_file in storage.list_files(self.target):
            file_name = remote_file.rsplit("/", 1)[1]
            prefix = file_name.split(".", 1)[0]
            if prefix.startswith(CHECKPOINT_NAME + "-") and prefix not in kept:
                storage.delete(remote_file)
        return storage.join(self.target, name)
