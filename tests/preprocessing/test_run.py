"""The Beam preprocessing job, run for real on the DirectRunner over real files."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from common import layout, schema, settings
from preprocessing import idx, run, sources
from preprocessing.config import PreprocessConfig
from tests import helpers

CANONICAL_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
CANONICAL_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def preprocess(source: str, output_dir: str, *extra: str):
    return helpers.run_module(
        "preprocessing.run", f"--source={source}", f"--output_dir={output_dir}", *extra
    )


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory) -> str:
    return helpers.tiny_mnist(str(tmp_path_factory.mktemp("idx")))


@pytest.fixture(scope="module")
def tiny_config(tiny_source, tmp_path_factory) -> PreprocessConfig:
    return PreprocessConfig(
        source=tiny_source, output_dir=str(tmp_path_factory.mktemp("data")), num_shards=2
    )


@pytest.fixture(scope="module")
def tiny_output(tiny_config) -> str:
    """The stage run in this process, as a function of its configuration."""
    manifest_path = run.run(tiny_config)
    assert manifest_path == os.path.join(tiny_config.output_dir, "manifest.json")
    return tiny_config.output_dir


@pytest.mark.each_python
def test_records_hold_normalized_pixels_and_labels(tiny_source, tiny_output):
    pixels, labels, _ = sources.load_split(
        os.path.join(tiny_source, "train-images-idx3-ubyte.gz"),
        os.path.join(tiny_source, "train-labels-idx1-ubyte.gz"),
    )
    images, got_labels = helpers.read_records(tiny_output, "train")
    expected = pixels.astype(np.float32) / 127.5 - 1.0
    assert images.shape == (300, 784)
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert helpers.sorted_records(images, got_labels) == helpers.sorted_records(expected, labels)


def test_manifest_describes_the_output(tiny_source, tiny_config, tiny_output):
    manifest = helpers.read_manifest(tiny_output)
    assert manifest["config"] == json.loads(settings.to_json(tiny_config))
    schema.validate_manifest(manifest, "test")
    assert manifest["schema_version"] == schema.SCHEMA_VERSION
    assert manifest["image_shape"] == [28, 28, 1]
    assert manifest["value_range"] == [-1.0, 1.0]
    train = manifest["splits"]["train"]
    _, labels, checksums = sources.load_split(
        os.path.join(tiny_source, "train-images-idx3-ubyte.gz"),
        os.path.join(tiny_source, "train-labels-idx1-ubyte.gz"),
    )
    assert train["num_examples"] == 300
    assert train["class_counts"] == np.bincount(labels, minlength=10).tolist()
    assert train["files"] == [
        "train-00000-of-00002.tfrecord.gz",
        "train-00001-of-00002.tfrecord.gz",
    ]
    for name in train["files"] + manifest["splits"]["test"]["files"]:
        assert os.path.exists(os.path.join(tiny_output, name))
    images, _ = helpers.read_records(tiny_output, "train")
    assert train["pixel_mean"] == pytest.approx([images.mean(dtype=np.float64)], abs=1e-6)
    assert train["pixel_std"] == pytest.approx([images.std(dtype=np.float64)], abs=1e-6)
    for name, digest in checksums.items():
        assert manifest["source_sha256"][name] == digest
    assert sorted(os.listdir(tiny_output)) == sorted(
        train["files"] + manifest["splits"]["test"]["files"] + ["manifest.json"]
    )


def test_rerun_over_complete_output_is_idempotent(tiny_source, tiny_output):
    before = {n: os.stat(os.path.join(tiny_output, n)).st_mtime_ns for n in os.listdir(tiny_output)}
    proc = preprocess(tiny_source, tiny_output, "--num_shards=2")
    assert proc.returncode == 0, proc.stderr
    after = {n: os.stat(os.path.join(tiny_output, n)).st_mtime_ns for n in os.listdir(tiny_output)}
    assert after == before


def test_output_dir_holding_another_data_set_is_refused(tiny_source, tiny_output):
    manifest_before = helpers.read_manifest(tiny_output)
    proc = preprocess(tiny_source, tiny_output, "--num_shards=2", "--digits=0")
    assert proc.returncode != 0
    assert "holds a different data set" in helpers.error_line(proc)
    assert tiny_output in helpers.error_line(proc)
    assert helpers.read_manifest(tiny_output) == manifest_before


def test_digits_keeps_only_those_classes(tiny_source, tmp_path):
    out = str(tmp_path / "zeros-threes")
    proc = preprocess(tiny_source, out, "--digits=0,3", "--num_shards=1", "--compression=none")
    assert proc.returncode == 0, proc.stderr
    _, labels = helpers.read_records(out, "train")
    assert set(labels.tolist()) == {0, 3}
    manifest = helpers.read_manifest(out)
    assert manifest["kept_classes"] == [0, 3]
    # Against the source, not the job's own records: a job that dropped examples would agree
    # with itself.
    _, source_labels, _ = sources.load_split(
        os.path.join(tiny_source, "train-images-idx3-ubyte.gz"),
        os.path.join(tiny_source, "train-labels-idx1-ubyte.gz"),
    )
    expected = np.bincount(source_labels, minlength=10)
    expected[[1, 2, 4, 5, 6, 7, 8, 9]] = 0
    assert manifest["splits"]["train"]["class_counts"] == expected.tolist()
    assert np.bincount(labels, minlength=10).tolist() == expected.tolist()
    assert manifest["splits"]["train"]["files"] == ["train-00000-of-00001.tfrecord"]


def test_train_examples_keeps_the_first_n_and_names_the_full_data_set(
    tiny_source, tiny_output, tmp_path
):
    out = str(tmp_path / "first-50")
    proc = preprocess(tiny_source, out, "--num_shards=2", "--train_examples=50")
    assert proc.returncode == 0, proc.stderr
    pixels, labels, _ = sources.load_split(
        os.path.join(tiny_source, "train-images-idx3-ubyte.gz"),
        os.path.join(tiny_source, "train-labels-idx1-ubyte.gz"),
    )
    images, got_labels = helpers.read_records(out, "train")
    assert helpers.sorted_records(images, got_labels) == helpers.sorted_records(
        schema.normalize(pixels[:50].reshape(50, -1)), labels[:50]
    )
    test_images, _ = helpers.read_records(out, "test")
    assert len(test_images) == len(helpers.read_records(tiny_output, "test")[0])
    manifest, full = helpers.read_manifest(out), helpers.read_manifest(tiny_output)
    assert manifest["splits"]["train"]["num_examples"] == 50
    assert manifest["preprocess"]["train_examples"] == 50
    assert manifest["preprocess"]["subset_of"] == full["fingerprint"]
    assert "train_examples" not in full["preprocess"]  # a full data set's fingerprint stays


def test_raw_idx_files_match_tfds_parsing_of_the_same_files(tmp_path):
    """Records from our IDX reader equal those built from tfds's own MNIST example generator."""
    import tensorflow_datasets as tfds

    source = helpers.tiny_mnist(str(tmp_path / "raw"), n_train=400, n_test=50, gz=False)
    out = str(tmp_path / "data")
    proc = preprocess(source, out, "--num_shards=1")
    assert proc.returncode == 0, proc.stderr
    builder = tfds.image_classification.MNIST(data_dir=str(tmp_path / "tfds"))
    for split, n in (("train", 400), ("test", 50)):
        images_name, labels_name = sources.STANDARD_FILES[split]
        tfds_examples = list(
            builder._generate_examples(
                n, os.path.join(source, images_name), os.path.join(source, labels_name)
            )
        )
        expected_images = np.stack([ex["image"].reshape(784) for _, ex in tfds_examples])
        expected_labels = np.array([ex["label"] for _, ex in tfds_examples])
        images, labels = helpers.read_records(out, split)
        assert helpers.sorted_records(images, labels) == helpers.sorted_records(
            schema.normalize(expected_images), expected_labels
        )


def test_full_bundled_mnist_has_canonical_counts(tmp_path):
    out = str(tmp_path / "mnist")
    proc = preprocess(helpers.BUNDLED_MNIST, out)
    assert proc.returncode == 0, proc.stderr
    manifest = helpers.read_manifest(out)
    assert manifest["splits"]["train"]["num_examples"] == 60000
    assert manifest["splits"]["test"]["num_examples"] == 10000
    assert manifest["splits"]["train"]["class_counts"] == CANONICAL_TRAIN_COUNTS
    assert manifest["splits"]["test"]["class_counts"] == CANONICAL_TEST_COUNTS
    # The data set README's checks, of 255: mean 0.13066, std 0.30811.
    (mean,), (std,) = (
        manifest["splits"]["train"]["pixel_mean"],
        manifest["splits"]["train"]["pixel_std"],
    )
    assert (mean + 1) / 2 == pytest.approx(0.13066, abs=1e-5)
    assert std / 2 == pytest.approx(0.30811, abs=1e-5)
    assert len(manifest["splits"]["train"]["files"]) == 4
    # The main command's data: the project ships its evaluation classifier, keyed by this
    # fingerprint (a preprocessing change that moves it must re-key data/classifiers/).
    bundled = os.path.join(helpers.REPO_ROOT, "data", "classifiers", manifest["fingerprint"][:16])
    assert os.path.exists(os.path.join(bundled, "classifier.json"))
    # It ships the real-data floors make run's evaluations use, and they are today's: the
    # trainer's (2,000 samples) recomputed equals the shipped one, to the last few bits that
    # hosts differ in (oneDNN's AVX2 and AVX-512 kernels sum in other orders).
    from trainer import data, evaluation, real_cache

    typed = data.read_manifest(out)
    scorer = evaluation.make_evaluator(out, typed, str(tmp_path / "cache"), 2_000)
    train = data.load_examples(out, typed, "train", 2_000).images
    key = scorer._floor_key(len(train))
    assert key is not None and key.held_images == 0
    shipped = real_cache.load_floor(scorer.classifier, scorer.cache_root, key)
    assert shipped == pytest.approx(scorer._compute_floor(train), rel=1e-7)
    assert len(os.listdir(os.path.join(bundled, real_cache.FLOORS_DIR))) == 2  # and the export's


# --- bad input: one line naming the file and the problem, nothing written ---------------------


def _corrupt(source: str, name: str, mutate) -> str:
    path = os.path.join(source, name)
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(mutate(data))
    return path


def _regzip(transform):
    return lambda data: gzip.compress(transform(gzip.decompress(data)))


BAD_INPUTS = {
    "missing file": (
        lambda src: (
            os.remove(os.path.join(src, "t10k-labels-idx1-ubyte.gz"))
            or os.path.join(src, "t10k-labels-idx1-ubyte")
        ),
        "file not found",
    ),
    "truncated gzip": (
        lambda src: _corrupt(src, "train-images-idx3-ubyte.gz", lambda d: d[: len(d) // 2]),
        "corrupt or truncated gzip",
    ),
    "corrupt gzip": (
        lambda src: _corrupt(
            src, "train-images-idx3-ubyte.gz", lambda d: d[:40] + bytes(64) + d[104:]
        ),
        "corrupt or truncated gzip",
    ),
    "wrong magic": (
        lambda src: _corrupt(
            src, "train-labels-idx1-ubyte.gz", _regzip(lambda d: b"\x00\x00\x08\x03" + d[4:])
        ),
        "IDX magic",
    ),
    "truncated idx data": (
        lambda src: _corrupt(src, "t10k-images-idx3-ubyte.gz", _regzip(lambda d: d[:-100])),
        "truncated or corrupt",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_with_one_line_and_writes_nothing(case, tiny_source, tmp_path):
    source = str(tmp_path / "src")
    shutil.copytree(tiny_source, source)
    make_bad, message = BAD_INPUTS[case]
    bad_path = make_bad(source)
    out = str(tmp_path / "out")
    proc = preprocess(source, out)
    assert proc.returncode != 0
    line = helpers.error_line(proc)
    assert line.startswith("preprocessing: error: ")
    assert message in line and os.path.basename(bad_path) in line
    helpers.assert_one_line_error(proc, "preprocessing", message)
    assert not os.path.exists(out)  # nothing at all was written


def _write_split(source: str, split: str, pixels: np.ndarray, labels: np.ndarray) -> None:
    images_name, labels_name = sources.STANDARD_FILES[split]
    for name, array in ((images_name, pixels), (labels_name, labels)):
        with open(os.path.join(source, name + ".gz"), "wb") as f:
            f.write(gzip.compress(idx.encode(array)))


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("count mismatch", "100 images but"),
        ("sizes differ", "images are 32x32, the training images 28x28"),
    ],
)
def test_inconsistent_idx_contents_fail_with_one_line(case, message, tiny_source, tmp_path):
    source = str(tmp_path / "src")
    shutil.copytree(tiny_source, source)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (100, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 100, dtype=np.uint8)
    if case == "count mismatch":
        labels = labels[:90]
    else:
        pixels = rng.integers(0, 256, (100, 32, 32), dtype=np.uint8)
    _write_split(source, "test", pixels, labels)
    out = str(tmp_path / "out")
    proc = preprocess(source, out)
    helpers.assert_one_line_error(proc, "preprocessing", message)
    assert not os.path.exists(out)


def test_checksum_mismatch_against_shipped_sums_is_reported(tiny_source, tmp_path):
    source = str(tmp_path / "src")
    shutil.copytree(tiny_source, source)
    with open(os.path.join(source, sources.CHECKSUMS_NAME), "w") as f:
        f.write("0" * 64 + "  train-labels-idx1-ubyte\n")
    proc = preprocess(source, str(tmp_path / "out"))
    assert proc.returncode != 0
    assert "train-labels-idx1-ubyte: sha256" in helpers.error_line(proc)


def test_bad_input_leaves_an_earlier_complete_output_intact(tiny_source, tiny_output, tmp_path):
    source = str(tmp_path / "src")
    shutil.copytree(tiny_source, source)
    _corrupt(source, "train-images-idx3-ubyte.gz", lambda d: d[:100])
    before = helpers.snapshot(tiny_output)
    proc = preprocess(source, tiny_output, "--num_shards=2")
    assert proc.returncode != 0
    assert helpers.snapshot(tiny_output) == before


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--digits=0,11", "--classes=0,11: '11' is not one of 0, 1, 2"),
        ("--no_such_flag=3", "unknown flag(s): --no_such_flag"),
        ("--num_shards=0", "flag --num_shards=0: 0 is not a positive integer"),
        ("--compression=bz2", "flag --compression=bz2: value should be one of <gzip|none>"),
        ("--background=paper", "--background=paper: not a colour"),
        ("--train_examples=301", "--train_examples=301: "),
    ],
)
def test_bad_flags_fail_with_one_line(flag, message, tiny_source, tmp_path):
    proc = preprocess(tiny_source, str(tmp_path / "out"), flag)
    helpers.assert_one_line_error(proc, "preprocessing", message)
    assert not os.path.exists(tmp_path / "out")


def test_missing_output_dir_is_one_line(tiny_source):
    proc = helpers.run_module("preprocessing.run", f"--source={tiny_source}")
    helpers.assert_one_line_error(proc, "preprocessing", "--output_dir", "must have a value")


def test_tfds_source_fails_fast_offline(tmp_path):
    """Online this downloads MNIST through tfds; here the network is closed: a clear error."""
    proc = preprocess("tfds", str(tmp_path / "out"), f"--tfds_data_dir={tmp_path / 'tfds'}")
    assert proc.returncode != 0
    line = helpers.error_line(proc)
    assert line.startswith("preprocessing: error: tfds:"), proc.stderr[-2000:]
    assert not os.path.exists(tmp_path / "out" / layout.MANIFEST)


# --- ownership: the job deletes and overwrites only what it wrote ---------------------------


def test_output_into_the_source_directory_is_refused_and_changes_nothing(tiny_source, tmp_path):
    source = str(tmp_path / "mnist")
    shutil.copytree(tiny_source, source)
    before = helpers.snapshot(source)
    for output in (source, os.path.join(source, "records")):
        proc = preprocess(source, output)
        helpers.assert_one_line_error(
            proc, "preprocessing", f"--output_dir={output} overlaps --source={source}"
        )
        assert helpers.snapshot(source) == before


def test_a_users_file_with_a_shard_name_is_never_overwritten(tiny_source, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "train-00000-of-00002.tfrecord.gz").write_bytes(b"the user's own file")
    before = helpers.snapshot(str(out))
    proc = preprocess(tiny_source, str(out), "--num_shards=2")
    helpers.assert_one_line_error(
        proc, "preprocessing", "train-00000-of-00002.tfrecord.gz: exists and was not written"
    )
    assert helpers.snapshot(str(out)) == before


def test_stale_shards_of_a_crashed_run_go_and_the_users_files_stay(tiny_source, tmp_path):
    out = str(tmp_path / "out")
    assert preprocess(tiny_source, out, "--num_shards=3").returncode == 0
    # As if that run had crashed before its commit: shards and its marker, no manifest.
    manifest = helpers.read_manifest(out)
    os.remove(os.path.join(out, layout.MANIFEST))
    written = sorted(f for split in manifest["splits"].values() for f in split["files"])
    with open(os.path.join(out, ".preprocessing-in-progress.json"), "w") as f:
        json.dump({"files": written}, f)
    users = {"train-notes.txt": b"mine", "test-00000-of-00009.tfrecord.gz": b"also mine"}
    for name, data in users.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    proc = preprocess(tiny_source, out, "--num_shards=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = set(os.listdir(out))
    listed = {f for split in helpers.read_manifest(out)["splits"].values() for f in split["files"]}
    assert files == listed | set(users) | {layout.MANIFEST}  # marker and 3-shard files gone
    for name, data in users.items():
        with open(os.path.join(out, name), "rb") as f:
            assert f.read() == data


def test_a_failed_shard_write_leaves_no_temporary_file(tiny_source, tmp_path, monkeypatch):
    import tempfile

    from preprocessing import transforms

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    source = sources.IdxSource(tiny_source)
    (chunk,) = source.chunks("test", 1)
    layout = transforms.Layout((28, 28, 1), False, 10, tuple(range(10)), "gzip")
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(OSError):
        list(transforms.write_shard(chunk, source, str(not_a_dir), layout))
    assert os.listdir(scratch) == []


def test_a_malformed_checksum_line_is_one_line_naming_it(tiny_source, tmp_path):
    source = str(tmp_path / "src")
    shutil.copytree(tiny_source, source)
    with open(os.path.join(source, sources.CHECKSUMS_NAME), "w") as f:
        f.write("# sums\nnot-a-digest train-labels-idx1-ubyte extra\n")
    proc = preprocess(source, str(tmp_path / "out"))
    helpers.assert_one_line_error(
        proc, "preprocessing", f"{sources.CHECKSUMS_NAME}:2: expected 'SHA256  FILE'"
    )
    assert not os.path.exists(tmp_path / "out")


def test_a_complete_looking_output_with_missing_shards_is_written_again(tiny_source, tmp_path):
    out = str(tmp_path / "out")
    assert preprocess(tiny_source, out, "--num_shards=2").returncode == 0
    before = helpers.snapshot(out)
    os.remove(os.path.join(out, "train-00001-of-00002.tfrecord.gz"))
    proc = preprocess(tiny_source, out, "--num_shards=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = helpers.snapshot(out)
    assert set(after) == set(before)
    assert after["train-00001-of-00002.tfrecord.gz"] == before["train-00001-of-00002.tfrecord.gz"]


def test_a_second_job_on_an_output_dir_is_refused_and_writes_nothing(tmp_path):
    out = str(tmp_path / "data")
    first = subprocess.Popen(
        [sys.executable, "-m", "preprocessing.run", f"--output_dir={out}"],  # the whole MNIST
        cwd=helpers.REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while helpers.lease_holder_pid(out) != first.pid:
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    first.send_signal(signal.SIGSTOP)
    try:
        before = helpers.tree_state(out)
        second = preprocess(helpers.BUNDLED_MNIST, out)
        helpers.assert_one_line_error(
            second, "preprocessing", f"{out}: preprocessing (pid {first.pid} on ", "is writing it"
        )
        assert helpers.tree_state(out) == before
    finally:
        first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-3000:]
    assert helpers.read_manifest(out)["fingerprint"] == helpers.BUNDLED_MNIST_FINGERPRINT


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_is_one_line_naming_the_output_the_space_and_the_need(tiny_source, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        out = str(disk / "data")
        proc = preprocess(tiny_source, out, "--compression=none")
        line = helpers.assert_one_line_error(
            proc,
            "preprocessing",
            f"{out}: no space left on device (",
            "writing the records needs ~1.2 MiB",
        )
        assert "free" in line
        assert not os.path.exists(os.path.join(out, layout.MANIFEST))
    finally:
        subprocess.run(["umount", str(disk)])


def test_a_folder_of_transparent_pngs_is_stored_over_the_background_it_names(tmp_path):
    from PIL import Image

    folder = tmp_path / "emoji"
    for label in ("faces", "hearts"):
        (folder / label).mkdir(parents=True)
        for i in range(6):
            rgba = np.zeros((4, 4, 4), np.uint8)
            rgba[..., 0] = 255  # red bled under every pixel
            rgba[1:3, 1:3, 3] = 255  # an opaque red square on a transparent page
            Image.fromarray(rgba, "RGBA").save(folder / label / f"{i}.png")
    out = str(tmp_path / "data")
    proc = preprocess(str(folder), out, "--background=#000000", "--test_percent=20")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("Warning") == 0
    manifest = helpers.read_manifest(out)
    assert manifest["preprocess"]["background"] == "#000000"
    stored, _ = helpers.read_records(out, "train")
    pixels = schema.denormalize(stored.reshape(-1, 4, 4, 3))
    assert (pixels[:, 0, 0] == [0, 0, 0]).all()  # the page, black as asked
    assert (pixels[:, 1, 1] == [255, 0, 0]).all()  # the square
    white = str(tmp_path / "white")
    assert preprocess(str(folder), white, "--test_percent=20").returncode == 0
    # Another background is other data: another fingerprint (a classifier cache keys on it).
    assert helpers.read_manifest(white)["fingerprint"] != manifest["fingerprint"]
