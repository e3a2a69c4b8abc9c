"""One writer per output directory: a stage takes a lease on the directory it writes, first.

**Local directories**: an OS lock (``flock``) on the directory itself, held while the stage
runs; ``DIR/.lease.json`` names the holder (stage, host, pid, job id, since when) so that a second
writer can say whom it met, and goes when the lease is released. The OS drops the lock when its
process dies, however it dies, so a killed run's successor takes the lease at once and, finding
the holder's file, says whose it was.

**Buckets** (``gs://``, and ``/gcs/BUCKET/…``, Vertex AI's Cloud Storage FUSE mount, which
``flock`` cannot lock): the object ``DIR/.lease.json``, created only if absent and renewed every
``renew_seconds`` by a background thread, each write conditional on the generation the holder
last wrote. A contender takes over a lease at once when its holder is provably gone (the same
host, its pid gone) or is the same job restarting (Vertex AI's ``CLOUD_ML_JOB_ID``); otherwise
only after watching it go unrenewed for ``EXPIRY_RENEWALS`` intervals of its own clock (no clocks
compared). A holder whose lease was taken over finds out at its next renewal or ``check()`` and
writes no more: ``LeaseLostError``. Released, the object is deleted.

A lease is held as a context, ``with acquire(directory, stage): ...``, and released at its end
(and, as a last resort, at process exit).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import datetime
import fcntl
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable

from common import storage
from common.cli import UserError

NAME = storage.LEASE_NAME
FUSE_ROOT = "/gcs/"
RENEW_SECONDS_ENV = "GAN_PIPELINE_LEASE_RENEW_SECONDS"
DEFAULT_RENEW_SECONDS = 15.0
EXPIRY_RENEWALS = 4  # unrenewed for this many intervals, as a contender watches: gone


class LeaseHeldError(UserError, RuntimeError):
    """Another live process writes the directory."""


class LeaseLostError(UserError, RuntimeError):
    """This process's lease was taken over: the directory is another writer's now."""


@dataclasses.dataclass(frozen=True)
class Holder:
    stage: str
    host: str
    pid: int
    job_id: str
    since: str

    @classmethod
    def this_process(cls, stage: str) -> Holder:
        return cls(
            stage=stage,
            host=socket.gethostname(),
            pid=os.getpid(),
            job_id=os.environ.get("CLOUD_ML_JOB_ID", ""),
            since=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        )

    def describe(self) -> str:
        job = f", job {self.job_id}" if self.job_id else ""
        return f"{self.stage} (pid {self.pid} on {self.host}{job}, since {self.since})"

    def gone_reason(self, contender: Holder) -> str | None:
        """Why ``contender`` may take this holder's lease at once, or None if it may not."""
        if self.job_id and self.job_id == contender.job_id:
            return "the same job, restarted"
        if self.host == contender.host and not _process_alive(self.pid):
            return "which is gone"
        return None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _holder(record: dict | None) -> Holder | None:
    """The holder a lease record names; None for no record or one that names nobody."""
    try:
        return Holder(**{f.name: record[f.name] for f in dataclasses.fields(Holder)})
    except (KeyError, TypeError):
        return None


def _parse(text: bytes | str) -> dict | None:
    """A lease record, if ``text`` is one (it names a holder)."""
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if _holder(record) is not None else None


def _taker(record: dict | None) -> str:
    """Who holds a lease this process lost: the record's holder, or one that came and went."""
    holder = _holder(record)
    return holder.describe() if holder else "another writer, which has since released it"


def bucket_path(path: str) -> str:
    """``/gcs/BUCKET/dir`` (Vertex AI's Cloud Storage FUSE mount) as ``gs://BUCKET/dir``."""
    return "gs://" + path[len(FUSE_ROOT) :] if path.startswith(FUSE_ROOT) else path


def renew_seconds() -> float:
    return float(os.environ.get(RENEW_SECONDS_ENV, DEFAULT_RENEW_SECONDS))


class Lease:
    """A held lease: a context; released at its end, or at process exit."""

    def __init__(self, directory: str, holder: Holder):
        self.directory = directory
        self.holder = holder

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def check(self) -> None:
        """Raise ``LeaseLostError`` if another writer has taken the directory over."""

    def release(self) -> None:
        raise NotImplementedError


class LocalLease(Lease):
    def __init__(self, directory: str, holder: Holder, fd: int, made_directory: bool):
        self._fd: int | None = fd
        self._made_directory = made_directory
        super().__init__(directory, holder)

    def release(self) -> None:
        if self._fd is None:
            return
        # A clean end leaves no trace of the lease: the next writer has nobody to take over from.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.directory, NAME))
        if self._made_directory:  # made for a stage that then wrote nothing (bad input)
            with contextlib.suppress(OSError):  # not empty, or already gone
                os.rmdir(self.directory)
        os.close(self._fd)  # closing drops the flock
        self._fd = None


class BucketLease(Lease):
    def __init__(self, path: str, holder: Holder, generation: int, interval: float):
        self.path = path
        self.token = secrets.token_hex(8)
        self.interval = interval
        self.generation = generation
        self.renewals = 0
        self.lost_to: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        super().__init__(path.rsplit("/", 1)[0], holder)

    def record(self, renewals: int) -> bytes:
        fields = {
            **dataclasses.asdict(self.holder),
            "token": self.token,
            "renewals": renewals,
            "renew_seconds": self.interval,
        }
        return json.dumps(fields, indent=2).encode()

    def start_renewing(self) -> None:
        threading.Thread(target=self._renew_until_stopped, daemon=True, name="lease").start()

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(storage.StorageError):  # an outage: try again next time
                self._renew()
            if self.lost_to:
                return

    def _renew(self) -> None:
        with self._lock:
            if self.lost_to:
                return
            attempt = self.renewals + 1
            try:
                self.generation = storage.write_if_generation(
                    self.path, self.record(attempt), self.generation
                )
                self.renewals = attempt
            except storage.PreconditionFailed:  # not a retry of ours that landed: taken
                current = storage.read_versioned(self.path)
                self.lost_to = _taker(_parse(current[0]) if current else None)

    def check(self) -> None:
        with self._lock:
            if not self.lost_to:
                current = storage.read_versioned(self.path)
                record = _parse(current[0]) if current else None
                if record is None or record.get("token") != self.token:
                    self.lost_to = _taker(record)
                else:
                    self.generation = current[1]
        if self.lost_to:
            raise LeaseLostError(
                f"{self.directory}: lease taken over by {self.lost_to}; this "
                f"{self.holder.stage} stops without writing more"
            )

    def release(self) -> None:
        self._stop.set()
        with self._lock:
            if self.lost_to is None:
                with contextlib.suppress(storage.StorageError, FileNotFoundError):
                    storage.delete_if_generation(self.path, self.generation)
            self.lost_to = self.lost_to or "nobody (released)"


def acquire(directory: str, stage: str, report: Callable[[str], None] = print) -> Lease:
    """Take the lease on ``directory`` for this process, or raise ``LeaseHeldError`` naming its
    holder, having written nothing. ``report`` gets the line saying whose lease was taken over
    (and, for a bucket, that a holder is being watched)."""
    holder = Holder.this_process(stage)
    directory = bucket_path(directory)
    if storage.is_gcs(directory):
        return _acquire_bucket(directory, holder, report)
    return _acquire_local(directory, holder, report)


def _acquire_local(directory: str, holder: Holder, report: Callable[[str], None]) -> Lease:
    made_directory = not os.path.isdir(directory)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, NAME)
    # The lock is on the directory: taking it writes nothing, so a refused writer wrote nothing.
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LeaseHeldError(_held_line(directory, _read_local_holder(path), path)) from None
    previous = _read_local_holder(path)
    if previous is not None:
        report(f"{holder.stage}: took over {directory} from {previous.describe()}, which is gone")
    lease = LocalLease(directory, holder, fd, made_directory)
    atexit.register(lease.release)
    storage.write_text(path, json.dumps(dataclasses.asdict(holder), indent=2) + "\n")
    return lease


def _read_local_holder(path: str) -> Holder | None:
    try:
        with open(path, "rb") as f:
            return _holder(_parse(f.read()))
    except OSError:
        return None


def _held_line(directory: str, holder: Holder | None, path: str) -> str:
    who = holder.describe() if holder else "another process"
    return (
        f"{directory}: {who} is writing it; wait for it to end or stop it "
        f"(one writer per directory: {path})"
    )


def _acquire_bucket(directory: str, holder: Holder, report: Callable[[str], None]) -> Lease:
    path = storage.join(directory, NAME)
    interval = renew_seconds()
    lease = BucketLease(path, holder, 0, interval)
    taken_from: tuple[Holder | None, str] | None = None
    for _ in range(3):  # a holder may release or be replaced while we look
        try:
            lease.generation = storage.write_if_generation(path, lease.record(0), lease.generation)
            break
        except storage.PreconditionFailed:
            pass
        current = storage.read_versioned(path)
        if current is None:
            lease.generation = 0
            continue
        previous = _holder(_parse(current[0]))
        reason = previous.gone_reason(holder) if previous else None
        if reason is None:
            reason = _watch(path, current[1], previous, holder, interval, report)
            if reason is None:  # released while watched: free
                lease.generation, taken_from = 0, None
                continue
        lease.generation, taken_from = current[1], (previous, reason)
    else:
        raise LeaseHeldError(f"{directory}: other writers keep taking its lease ({path})")
    if taken_from is not None:
        previous, reason = taken_from
        who = previous.describe() if previous else "an unreadable lease"
        report(f"{holder.stage}: took over {directory} from {who}, {reason}")
    atexit.register(lease.release)
    lease.start_renewing()
    return lease


def _watch(
    path: str,
    seen: int,
    holder: Holder | None,
    contender: Holder,
    interval: float,
    report: Callable[[str], None],
) -> str | None:
    """Watch a lease for a renewal: a live holder renews every ``interval`` (refuse); one that
    does not for ``EXPIRY_RENEWALS`` intervals is gone (return the reason); None: released."""
    window = EXPIRY_RENEWALS * interval
    who = holder.describe() if holder else "an unreadable lease"
    report(f"{contender.stage}: {path} is held by {who}; watching {window:.0f}s for a renewal")
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        time.sleep(min(1.0, interval / 4))
        now = storage.generation(path)
        if now == 0:
            return None
        if now != seen:
            raise LeaseHeldError(_held_line(path.rsplit("/", 1)[0], holder, path))
    return f"unrenewed for {window:.0f}s"
