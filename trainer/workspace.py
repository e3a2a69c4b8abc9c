"""Where a run writes: local working copies of its output directories, mirrored to their targets.

The trainer always writes to local disk (TensorFlow's own gs:// filesystem cannot be pointed at
an emulator, and local writes never block on the network); for gs:// targets the working copies
live in a scratch directory and are pushed at every checkpoint. Vertex AI's ``AIP_CHECKPOINT_DIR``
and ``AIP_TENSORBOARD_LOG_DIR`` arrive here as the checkpoint and TensorBoard targets.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator

from common import layout, lease, storage
from trainer.config import TrainConfig

CHECKPOINTS, LOGS = layout.JobDir.CHECKPOINTS, layout.JobDir.LOGS


def default_scratch(job_dir: str) -> str:
    """A private per-job directory under the temp dir (refused if someone else made it)."""
    digest = hashlib.sha256(job_dir.encode()).hexdigest()[:12]
    base = storage.private_dir(os.path.join(tempfile.gettempdir(), f"gan-pipeline-{os.getuid()}"))
    return storage.private_dir(os.path.join(base, "scratch", digest))


class Workspace:
    def __init__(self, config: TrainConfig, worker_id: int = 0):
        scratch = (
            storage.private_dir(config.scratch_dir)
            if config.scratch_dir
            else default_scratch(config.job_dir)  # already private
        )
        if worker_id:
            scratch = os.path.join(scratch, f"worker-{worker_id}")
        self.data_dir = config.data_dir
        self.job = storage.Mirror(config.job_dir, os.path.join(scratch, "job"))
        self.checkpoint_target = config.checkpoint_dir or storage.join(config.job_dir, CHECKPOINTS)
        self.checkpoint_scratch = os.path.join(scratch, CHECKPOINTS)
        self.logs = (
            storage.Mirror(config.tensorboard_dir, os.path.join(scratch, LOGS))
            if config.tensorboard_dir
            else None
        )
        self.lease: lease.Lease | None = None  # the chief's, once taken

    @property
    def logs_dir(self) -> str:
        return self.logs.local if self.logs else self.job.path(LOGS)

    def targets(self) -> list[str]:
        targets = [self.data_dir, self.job.target, self.checkpoint_target]
        return targets + ([self.logs.target] if self.logs else [])

    @contextlib.contextmanager
    def leased(self, chief: bool) -> Iterator[None]:
        """The chief as the job dir's one writer (common/lease.py) while the run lasts; other
        workers write nothing into it."""
        if not chief:
            yield
            return
        with lease.acquire(self.job.target, "trainer") as held:
            self.lease = held
            try:
                yield
            finally:
                self.lease = None

    def check_lease(self) -> None:
        """Raise ``LeaseLostError`` once another writer has taken the job dir over."""
        if self.lease is not None:
            self.lease.check()

    def check_access(self) -> None:
        """Missing buckets or permissions fail here, before any training."""
        for target in self.targets():
            storage.check_bucket(target)

    def pull(self) -> None:
        """Bring back a remote run's metrics, samples and logs (resuming on a fresh machine)."""
        self.job.pull(exclude=(CHECKPOINTS + "/",))
        if self.logs:
            self.logs.pull()

    def push(self) -> None:
        self.check_lease()
        try:
            self.job.push(exclude=(CHECKPOINTS + os.sep,))
            if self.logs:
                self.logs.push()
        except storage.PreconditionFailed:
            # Paused between the check and the upload, a zombie meets the new writer's objects
            # first: the lease names who took over, which says more than the object does.
            self.check_lease()
            raise
