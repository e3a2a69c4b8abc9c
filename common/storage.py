"""Object storage behind one set of functions: local paths and ``gs://bucket/prefix``.

Every stage does its file I/O through this module. Local paths (including Vertex AI's
``/gcs/BUCKET/...`` FUSE mounts) use the OS; ``gs://`` goes through ``google-cloud-storage``,
which honours ``STORAGE_EMULATOR_HOST``, so the code the tests run against an emulator is the
code that runs against Cloud Storage. TensorFlow's own ``gs://`` filesystem is never used: it
cannot be pointed at an emulator.

Writes are atomic: a local file is written beside its target and renamed over it; a GCS object
upload is atomic by nature.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import stat
from collections.abc import Iterator

from common.cli import UserError, one_line

GCS_SCHEME = "gs://"
# How long transient GCS errors (429, 5xx, connection resets) are retried with exponential
# backoff before an operation fails; the client library's own retry policy does the retrying.
RETRY_SECONDS_ENV = "GAN_PIPELINE_GCS_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 120.0


class StorageError(UserError):
    """An object-storage operation failed; the message names the path and the operation."""


class PreconditionFailed(StorageError):
    """A conditional write found the object at another generation than the one it was given:
    another writer replaced it (or a retried write of ours had already landed)."""


def is_gcs(path: str) -> bool:
    return path.startswith(GCS_SCHEME)


def safe_relative(rel: str, root: str) -> str:
    """``rel`` if it names a path inside ``root``; one line otherwise.

    Object names and manifest entries come from outside: ``../x``, ``/etc/x`` or an empty
    component would otherwise escape the directory they are joined to.
    """
    parts = rel.replace("\\", "/").split("/")
    if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StorageError(f"{root}: refusing the unsafe name {rel!r} (it leaves its directory)")
    return rel


def overlaps(a: str, b: str) -> bool:
    """True if one of two directories (local or gs://) is the other or lies inside it."""

    def normal(path: str) -> str:
        return (path if is_gcs(path) else os.path.realpath(path)).rstrip("/") + "/"

    first, second = normal(a), normal(b)
    return first.startswith(second) or second.startswith(first)


def private_dir(path: str) -> str:
    """Create (or reuse) a local directory only this user can read, write and enter.

    Refuses one that another user owns or can write to: under a shared /tmp, a predictable
    name may have been created by someone else, who could plant files that are then uploaded
    or loaded as a model.
    """
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except (FileExistsError, NotADirectoryError, PermissionError) as e:
        raise StorageError(f"{path}: cannot be a directory here ({e.strerror})") from e
    info = os.lstat(path)
    if (
        not stat.S_ISDIR(info.st_mode)
        or info.st_uid != os.getuid()
        or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    ):
        raise StorageError(
            f"{path}: not a private directory (owner uid {info.st_uid}, mode "
            f"{stat.S_IMODE(info.st_mode):o}); refusing to use it"
        )
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def join(base: str, *parts: str) -> str:
    if is_gcs(base):
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
    return os.path.join(base, *parts)


def split_gcs(path: str) -> tuple[str, str]:
    """``gs://bucket/a/b`` → ``("bucket", "a/b")``."""
    rest = path[len(GCS_SCHEME) :]
    bucket, _, name = rest.partition("/")
    if not bucket:
        raise StorageError(f"{path}: not a gs://bucket/path URL")
    return bucket, name


@functools.cache
def _client():
    from google.cloud import storage

    return storage.Client()


def _retry():
    from google.cloud.storage.retry import DEFAULT_RETRY

    seconds = float(os.environ.get(RETRY_SECONDS_ENV, DEFAULT_RETRY_SECONDS))
    return DEFAULT_RETRY.with_timeout(seconds)


def _blob(path: str):
    bucket, name = split_gcs(path)
    return _client().bucket(bucket).blob(name)


def _gcs_call(path: str, operation: str, fn, *args, **kwargs):
    """Run one GCS operation with the retry policy; map failures to one-line errors."""
    from google.api_core import exceptions as gexc

    bucket = "gs://" + split_gcs(path)[0]
    try:
        return fn(*args, retry=_retry(), **kwargs)
    except gexc.NotFound as e:
        raise FileNotFoundError(f"{path}: not found ({operation})") from e
    except gexc.PreconditionFailed as e:
        raise PreconditionFailed(f"{path}: changed by another writer ({operation})") from e
    except gexc.Forbidden as e:
        if "quota" in str(e).lower():
            raise StorageError(
                f"{bucket}: quota exceeded to {operation} {path} ({one_line(e)})"
            ) from e
        raise StorageError(f"{bucket}: permission denied to {operation} {path}") from e
    except Exception as e:
        raise StorageError(
            f"{bucket}: {operation} {path} failed after retries ({one_line(e)})"
        ) from e


def check_bucket(path: str) -> None:
    """Fail fast, before any work, if a gs:// path's bucket is missing or not accessible."""
    if not is_gcs(path):
        return
    bucket = split_gcs(path)[0]
    try:
        _gcs_call(path, "get bucket of", _client().get_bucket, bucket)
    except FileNotFoundError as e:
        raise StorageError(f"gs://{bucket}: bucket does not exist (needed for {path})") from e


def exists(path: str) -> bool:
    if is_gcs(path):
        return bool(_gcs_call(path, "exists", _blob(path).exists))
    return os.path.exists(path)


def read_bytes(path: str) -> bytes:
    if is_gcs(path):
        return _gcs_call(path, "read", _blob(path).download_as_bytes)
    with open(path, "rb") as f:
        return f.read()


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: readers see the old or the new bytes, never a part."""
    if is_gcs(path):
        _gcs_call(path, "write", _blob(path).upload_from_string, data)
        return
    with _atomic_replace(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def _atomic_replace(path: str) -> Iterator[str]:
    """A temporary file beside ``path`` that replaces it on success and vanishes on failure."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    for _ in range(100):
        tmp = os.path.join(directory, f".tmp-{os.path.basename(path)}.{secrets.token_hex(6)}")
        try:
            # Created with 0666 minus the process's umask, as open() would: no process-wide
            # umask change (not thread-safe) and no mode copied from a temp-file default.
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


# --- Generations: conditional writes to gs:// objects (fencing between writers) ---------------


def read_versioned(path: str) -> tuple[bytes, int] | None:
    """A gs:// object's bytes and generation (the two of one version), or None when there is
    no object."""
    bucket, name = split_gcs(path)
    for _ in range(5):
        blob = _gcs_call(path, "stat", _client().bucket(bucket).get_blob, name)
        if blob is None:
            return None
        seen = int(blob.generation)
        try:
            data = _gcs_call(path, "read", blob.download_as_bytes, if_generation_match=seen)
        except (FileNotFoundError, PreconditionFailed):  # replaced between the two calls
            continue
        return data, seen
    raise StorageError(f"{path}: replaced faster than it could be read")


def generation(path: str) -> int:
    """A gs:// object's generation; 0 when there is none."""
    bucket, name = split_gcs(path)
    blob = _gcs_call(path, "stat", _client().bucket(bucket).get_blob, name)
    return int(blob.generation) if blob is not None else 0


def write_if_generation(path: str, data: bytes, expected: int) -> int:
    """Write a gs:// object only while its generation is ``expected`` (0: while there is none);
    return the new generation, or raise ``PreconditionFailed``. A retried write whose first try
    had landed comes back refused: the object is read, and if it holds ``data`` it is ours."""
    blob = _blob(path)
    try:
        _gcs_call(path, "write", blob.upload_from_string, data, if_generation_match=expected)
    except PreconditionFailed:
        current = read_versioned(path)
        if current is None or current[0] != data:
            raise
        return current[1]
    return int(blob.generation)


def delete_if_generation(path: str, expected: int) -> None:
    _gcs_call(path, "delete", _blob(path).delete, if_generation_match=expected)


def list_files(prefix_dir: str) -> list[str]:
    """Full paths of the files directly in ``prefix_dir`` (non-recursive), sorted."""
    if is_gcs(prefix_dir):
        bucket, name = split_gcs(prefix_dir)
        name = name.rstrip("/") + "/" if name else ""
        blobs = _gcs_call(
            prefix_dir,
            "list",
            lambda retry: list(
                _client().list_blobs(bucket, prefix=name, delimiter="/", retry=retry)
            ),
        )
        return sorted(f"{GCS_SCHEME}{bucket}/{b.name}" for b in blobs)
    if not os.path.isdir(prefix_dir):
        return []
    return sorted(
        os.path.join(prefix_dir, n)
        for n in os.listdir(prefix_dir)
        if os.path.isfile(os.path.join(prefix_dir, n))
    )


def list_tree(root: str) -> list[str]:
    """Every file below ``root`` (recursive), as sorted '/'-separated paths relative to it."""
    return sorted(list_tree_sizes(root))


def list_tree_sizes(root: str) -> dict[str, int]:
    """Every file below ``root`` (recursive) → its size in bytes, from one listing."""
    if not is_gcs(root):
        if not os.path.isdir(root):
            return {}
        return {
            rel.replace(os.sep, "/"): os.path.getsize(os.path.join(root, rel))
            for rel in walk_files(root)
        }
    return {rel: int(blob.size or 0) for rel, blob in _list_blobs(root).items()}


def list_tree_generations(root: str) -> dict[str, int]:
    """Every object below a gs:// ``root`` → its generation, from one listing."""
    return {rel: int(blob.generation) for rel, blob in _list_blobs(root).items()}


def _list_blobs(root: str) -> dict:
    bucket, name = split_gcs(root)
    prefix = name.rstrip("/") + "/" if name else ""
    blobs = _gcs_call(
        root, "list", lambda retry: list(_client().list_blobs(bucket, prefix=prefix, retry=retry))
    )
    return {b.name[len(prefix) :]: b for b in blobs}


def delete(path: str) -> None:
    """Delete a file or object; a missing one is not an error."""
    if is_gcs(path):
        with contextlib.suppress(FileNotFoundError):
            _gcs_call(path, "delete", _blob(path).delete)
        return
    if os.path.exists(path):
        os.unlink(path)


def makedirs(path: str) -> None:
    """Local directories are created; object stores have no directories."""
    if not is_gcs(path):
        os.makedirs(path, exist_ok=True)


def _crc32c_b64(local_path: str) -> str:
    import base64

    import google_crc32c

    checksum = google_crc32c.Checksum()
    with open(local_path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            checksum.update(block)
    return base64.b64encode(checksum.digest()).decode()


def upload_file(local_path: str, dst: str, if_generation_match: int | None = None) -> int:
    """Upload a local file to gs:// and verify size and crc32c of what the bucket holds; return
    the object's generation. With ``if_generation_match`` only over that generation (0: only
    where there is no object), else ``PreconditionFailed``, unless the object there is this
    file (a retried upload of ours that had landed)."""
    blob = _blob(dst)
    condition = {} if if_generation_match is None else {"if_generation_match": if_generation_match}
    try:
        _gcs_call(dst, "upload", blob.upload_from_filename, local_path, **condition)
    except PreconditionFailed:
        _gcs_call(dst, "verify", blob.reload)
        if not _holds(blob, local_path):
            raise
    _gcs_call(dst, "verify", blob.reload)
    if not _holds(blob, local_path):
        raise StorageError(
            f"{dst}: uploaded object does not match {local_path} "
            f"(size {blob.size} vs {os.path.getsize(local_path)}, crc32c {blob.crc32c})"
        )
    return int(blob.generation)


def _holds(blob, local_path: str) -> bool:
    """Whether a reloaded object has the local file's size and crc32c."""
    if blob.size != os.path.getsize(local_path):
        return False
    return not blob.crc32c or blob.crc32c == _crc32c_b64(local_path)


def download_file(src: str, local_path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(local_path)), exist_ok=True)
    if is_gcs(src):
        tmp = local_path + ".part"
        _gcs_call(src, "download", _blob(src).download_to_filename, tmp)
        os.replace(tmp, local_path)
    else:
        shutil.copyfile(src, local_path)


def put_file(local_path: str, dst: str) -> None:
    """Publish a finished local file at ``dst`` atomically, consuming ``local_path``."""
    if is_gcs(dst):
        upload_file(local_path, dst)
        os.unlink(local_path)
        return
    with _atomic_replace(dst) as tmp:
        shutil.move(local_path, tmp)


def copy_file(src: str, dst: str) -> None:
    """Copy one file between any two of local and gs://; uploads are verified."""
    if is_gcs(dst) and not is_gcs(src):
        upload_file(src, dst)
    elif is_gcs(src) and not is_gcs(dst):
        download_file(src, dst)
    elif is_gcs(src):
        write_bytes(dst, read_bytes(src))
    else:
        with _atomic_replace(dst) as tmp:
            shutil.copyfile(src, tmp)


def copy_tree(src: str, dst: str, last: str | None = None) -> list[str]:
    """Copy every file below ``src`` to ``dst`` (any mix of local and gs://); ``last`` goes last.
    A writer's lease (``LEASE_NAME``, common/lease.py) belongs to its directory: never copied.

    Writing a commit marker (``metrics.json``) last means a reader who sees it sees the rest.
    """
    files = [safe_relative(rel, src) for rel in list_tree(src) if not is_lease(rel)]
    ordered = [f for f in files if f != last] + ([last] if last in files else [])
    for rel in ordered:
        copy_file(join(src, *rel.split("/")), join(dst, *rel.split("/")))
    return ordered


# The file a directory's one writer holds (common/lease.py): part of no data set, export or run.
LEASE_NAME = ".lease.json"


def is_lease(rel: str) -> bool:
    return rel.rsplit("/", 1)[-1].rsplit(os.sep, 1)[-1] == LEASE_NAME


def walk_files(root: str) -> Iterator[str]:
    """Every file below a local directory, as paths relative to it."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            yield os.path.relpath(os.path.join(dirpath, name), root)


class Mirror:
    """A local working copy of a directory that may live in a bucket.

    Work happens in ``local``; ``push()`` uploads what changed since the last push. For a local
    target the working copy *is* the target and pushing does nothing.
    """

    def __init__(self, target: str, scratch: str):
        self.target = target
        self.remote = is_gcs(target)
        self.local = scratch if self.remote else target
        if self.remote:
            # A local target is made by its first write (the trainer's lease): a run refused
            # before it leaves no empty directory behind.
            os.makedirs(self.local, exist_ok=True)
        self._pushed: dict[str, tuple[int, int]] = {}
        # The generation of each object this copy pulled or pushed: a push replaces only that
        # version, so a writer whose lease was taken over cannot overwrite the new writer's.
        self._generations: dict[str, int] = {}

    def path(self, *parts: str) -> str:
        return os.path.join(self.local, *parts)

    def pull(self, exclude: tuple[str, ...] = ()) -> int:
        """Fetch the target's files into the working copy (resuming on a fresh machine)."""
        if not self.remote:
            return 0
        pulled = 0
        for rel, generation in sorted(list_tree_generations(self.target).items()):
            if rel.startswith(exclude) or is_lease(rel):
                continue
            local = os.path.join(self.local, *safe_relative(rel, self.target).split("/"))
            download_file(join(self.target, rel), local)
            stat = os.stat(local)
            self._pushed[rel.replace("/", os.sep)] = (stat.st_size, stat.st_mtime_ns)
            self._generations[rel.replace("/", os.sep)] = generation
            pulled += 1
        return pulled

    def push(self, exclude: tuple[str, ...] = ()) -> int:
        """Upload new or changed files (by size and mtime); return how many were uploaded."""
        if not self.remote:
            return 0
        uploaded = 0
        for rel in sorted(walk_files(self.local)):
            if (
                rel.startswith(exclude)
                or os.path.basename(rel).startswith(".tmp-")
                or is_lease(rel)
            ):
                continue
            stat = os.stat(os.path.join(self.local, rel))
            key = (stat.st_size, stat.st_mtime_ns)
            if self._pushed.get(rel) == key:
                continue
            self._generations[rel] = upload_file(
                os.path.join(self.local, rel),
                join(self.target, rel.replace(os.sep, "/")),
                if_generation_match=self._generations.get(rel, 0),
            )
            self._pushed[rel] = key
            uploaded += 1
        return uploaded
