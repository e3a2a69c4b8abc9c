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
import shutil
import tempfile
from collections.abc import Iterator

GCS_SCHEME = "gs://"


class StorageError(Exception):
    """An object-storage operation failed; the message names the path and the operation."""


def is_gcs(path: str) -> bool:
    return path.startswith(GCS_SCHEME)


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


def _blob(path: str):
    bucket, name = split_gcs(path)
    return _client().bucket(bucket).blob(name)


def _gcs_call(path: str, operation: str, fn, *args, **kwargs):
    from google.api_core import exceptions as gexc

    try:
        return fn(*args, **kwargs)
    except gexc.NotFound as e:
        raise FileNotFoundError(f"{path}: not found ({operation})") from e
    except (gexc.GoogleAPIError, OSError) as e:
        raise StorageError(f"{path}: {operation} failed: {type(e).__name__}: {e}") from e


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
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-" + os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def list_files(prefix_dir: str) -> list[str]:
    """Full paths of the files directly in ``prefix_dir`` (non-recursive), sorted."""
    if is_gcs(prefix_dir):
        bucket, name = split_gcs(prefix_dir)
        name = name.rstrip("/") + "/" if name else ""
        blobs = _gcs_call(
            prefix_dir,
            "list",
            lambda: list(_client().list_blobs(bucket, prefix=name, delimiter="/")),
        )
        return sorted(f"{GCS_SCHEME}{bucket}/{b.name}" for b in blobs)
    if not os.path.isdir(prefix_dir):
        return []
    return sorted(
        os.path.join(prefix_dir, n)
        for n in os.listdir(prefix_dir)
        if os.path.isfile(os.path.join(prefix_dir, n))
    )


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


def put_file(local_path: str, dst: str) -> None:
    """Publish a finished local file at ``dst`` atomically, consuming ``local_path``."""
    if is_gcs(dst):
        _gcs_call(dst, "upload", _blob(dst).upload_from_filename, local_path)
        os.unlink(local_path)
        return
    directory = os.path.dirname(os.path.abspath(dst))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-" + os.path.basename(dst))
    os.close(fd)
    try:
        shutil.move(local_path, tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def copy_file(src: str, dst: str) -> None:
    if not is_gcs(src) and not is_gcs(dst):
        os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
        shutil.copyfile(src, dst)
        return
    write_bytes(dst, read_bytes(src))


def walk_files(root: str) -> Iterator[str]:
    """Every file below a local directory, as paths relative to it."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            yield os.path.relpath(os.path.join(dirpath, name), root)
