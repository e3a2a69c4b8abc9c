"""TFRecord files written without TensorFlow: TensorFlow's bytes, and TensorFlow reads them."""

from __future__ import annotations

import gzip

import pytest

from common import tfrecord

# Empty, one byte, and records of every byte value, up to 10 KB.
RECORDS = [b"", b"\x00", b"a" * 127, b"b" * 128, bytes(range(256)) * 40]


def test_uncompressed_files_equal_tensorflows_byte_for_byte(tmp_path):
    import tensorflow as tf

    ours, theirs = tmp_path / "ours.tfrecord", tmp_path / "theirs.tfrecord"
    with tfrecord.writer(str(ours), "none") as write:
        for record in RECORDS:
            write(record)
    with tf.io.TFRecordWriter(str(theirs)) as writer:
        for record in RECORDS:
            writer.write(record)
    assert ours.read_bytes() == theirs.read_bytes()


def test_the_checksum_is_tfrecords_masked_crc32c():
    """Hand-checked: CRC-32C("123456789") is 0xE3069283 (the standard check value); masked,
    ((c >> 15) | (c << 17)) + 0xA282EAD8 mod 2**32."""
    crc = 0xE3069283
    rotated = ((crc >> 15) | (crc << 17)) & 0xFFFFFFFF
    assert tfrecord.masked_crc32c(b"123456789") == (rotated + 0xA282EAD8) & 0xFFFFFFFF


def test_gzip_files_read_back_in_tensorflow_and_repeat_their_bytes(tmp_path):
    import tensorflow as tf

    paths = [tmp_path / "a.tfrecord.gz", tmp_path / "b.tfrecord.gz"]
    for path in paths:
        with tfrecord.writer(str(path), "gzip") as write:
            for record in RECORDS:
                write(record)
    read = [r.numpy() for r in tf.data.TFRecordDataset(str(paths[0]), compression_type="GZIP")]
    assert read == RECORDS
    # No file name or time in the header: a rewritten shard is the same file.
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes()[4:8] == bytes(4)  # the header's MTIME field
    assert gzip.decompress(paths[0].read_bytes()) == b"".join(map(tfrecord.frame, RECORDS))


def test_an_unknown_compression_is_refused_before_a_file_is_made(tmp_path):
    with pytest.raises(ValueError, match="zstd"), tfrecord.writer(str(tmp_path / "x"), "zstd"):
        pass
    assert not (tmp_path / "x").exists()
