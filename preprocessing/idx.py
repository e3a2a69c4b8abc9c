"""The IDX file format of the MNIST distribution: parse, validate, write.

An IDX file is a 4-byte magic (two zero bytes, a type code, the number of dimensions), one
big-endian uint32 per dimension, then the data. MNIST uses type 0x08 (uint8): images are
3-dimensional (magic 2051), labels 1-dimensional (magic 2049). Files may be gzip-compressed.
"""

from __future__ import annotations

import gzip
import struct
import zlib

import numpy as np

from common import storage
from common.cli import UserError

UBYTE = 0x08
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
GZIP_MAGIC = b"\x1f\x8b"


class IdxError(UserError, ValueError):
    """A file is not a valid IDX file; the message names the file and the problem."""


def decompress(raw: bytes, path: str) -> bytes:
    """The uncompressed bytes of a (possibly gzip-compressed) file."""
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise IdxError(f"{path}: corrupt or truncated gzip data ({e})") from e


def parse(data: bytes, path: str, expected_magic: int) -> np.ndarray:
    """Parse uncompressed IDX bytes into a uint8 array, checking magic and length."""
    if len(data) < 4:
        raise IdxError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    (magic,) = struct.unpack(">I", data[:4])
    if magic != expected_magic:
        raise IdxError(f"{path}: IDX magic 0x{magic:08x}, expected 0x{expected_magic:08x}")
    ndim = magic & 0xFF
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise IdxError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    expected = int(np.prod(dims, dtype=np.int64))
    actual = len(data) - header_len
    if actual != expected:
        raise IdxError(
            f"{path}: header declares {'x'.join(map(str, dims))} = {expected} bytes of data, "
            f"file holds {actual} (truncated or corrupt)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims)


def read(path: str, expected_magic: int) -> tuple[np.ndarray, bytes]:
    """Read an IDX file (local or gs://); return the array and its uncompressed bytes."""
    try:
        raw = storage.read_bytes(path)
    except FileNotFoundError as e:
        raise IdxError(f"{path}: file not found") from e
    data = decompress(raw, path)
    return parse(data, path, expected_magic), data


def encode(array: np.ndarray) -> bytes:
    """IDX bytes (uncompressed) of a uint8 array; the inverse of ``parse``."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = (UBYTE << 8) | array.ndim
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    return header + array.tobytes()
