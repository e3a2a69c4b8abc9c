"""Bring your own images: every source, through preprocessing, training, export and the gallery.

Tiny data sets made here, one per source: IDX of another size, a labelled RGB folder (32×32,
two classes), an unlabelled folder (64×64), Stacked MNIST from tiny IDX, and tfds data sets
through ``tfds.testing.mock_data``. Each trains a few steps and exports a SavedModel whose
signature has the data's shape and which loads in a fresh process without project code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from common import layout, schema
from tests import browser, helpers

FEW_STEPS = [
    "--preset=smoke",
    "--train_steps=4",
    "--eval_every=4",
    "--eval_samples=100",
    "--checkpoint_every=4",
    "--sample_every=4",
    "--log_every=4",
]


def preprocess(source: str, out: str, *args: str) -> dict:
    proc = helpers.run_module(
        "preprocessing.run", f"--source={source}", f"--output_dir={out}", *args
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return helpers.read_manifest(out)


def write_folder(root: str, classes: list[str], per_class: int, size: tuple[int, int], seed=0):
    """PNG and JPEG images; class k has a bright channel k, so classes differ visibly."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k, name in enumerate(classes or [""]):
        directory = os.path.join(root, name)
        os.makedirs(directory, exist_ok=True)
        for i in range(per_class):
            pixels = (rng.random((*size, 3)) * 120).astype(np.uint8)
            pixels[..., k % 3] = 230
            suffix = "png" if i % 2 else "jpg"
            Image.fromarray(pixels).save(
                os.path.join(directory, f"{name or 'img'}{i:03d}.{suffix}")
            )
    return root


def train_and_export(data_dir: str, root: str, *args: str) -> str:
    job, export = os.path.join(root, "job"), os.path.join(root, "export")
    proc = helpers.run_module(
        "trainer.task", f"--data_dir={data_dir}", f"--job_dir={job}", *FEW_STEPS, *args
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = helpers.run_module(
        "pipeline.export", f"--job_dir={job}", f"--export_dir={export}", "--eval_samples=100"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return export


def served_shape(export: str, latent_dim: int, labels: list[int] | None, cwd: str) -> list[int]:
    """The images' shape from the SavedModel, loaded in a fresh process without project code."""
    label_arg = f", label=tf.constant({labels}, tf.int32)" if labels else ""
    script = textwrap.dedent(
        f"""
        import json
        import tensorflow as tf
        serve = tf.saved_model.load({os.path.join(export, "generator")!r}).signatures[
            "serving_default"]
        images = serve(z=tf.random.normal([{len(labels or [0, 0])}, {latent_dim}]){label_arg})
        images = images["images"].numpy()
        assert -1.0 <= images.min() <= images.max() <= 1.0
        print(json.dumps(list(images.shape)))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_gallery_renders(export: str, *texts: str) -> None:
    """The gallery loads in headless Chromium: no errors, every image, no sideways scroll."""
    if browser.chromium_path() is None:
        pytest.skip("Debian's chromium is not installed")
    report = browser.inspect_page(f"file://{os.path.join(export, 'gallery', 'index.html')}")
    assert report.errors == []
    assert all(image["complete"] and image["width"] > 0 for image in report.images)
    assert report.scroll_width <= report.viewport_width
    for text in texts:
        assert text in report.title + report.text, text


def test_idx_of_another_size_and_class_count(tmp_path):
    rng = np.random.default_rng(0)
    pixels = {
        s: (rng.random((n, 32, 32)) * 255).astype(np.uint8)
        for s, n in [("train", 96), ("test", 24)]
    }
    labels = {s: (np.arange(len(p)) % 3).astype(np.uint8) for s, p in pixels.items()}
    source = helpers.write_idx_dir(str(tmp_path / "idx"), pixels, labels)
    manifest = preprocess(source, str(tmp_path / "data"))
    assert manifest["image_shape"] == [32, 32, 1]
    assert manifest["class_names"] == ["0", "1", "2"] and manifest["kept_classes"] == [0, 1, 2]
    assert manifest["splits"]["train"]["class_counts"] == [32, 32, 32]
    images, stored_labels = helpers.read_records(str(tmp_path / "data"), "train")
    assert helpers.sorted_records(images, stored_labels) == helpers.sorted_records(
        schema.normalize(pixels["train"]).reshape(96, -1), labels["train"]
    )
    export = train_and_export(str(tmp_path / "data"), str(tmp_path), "--conditional")
    assert served_shape(export, 16, [0, 2], str(tmp_path)) == [2, 32, 32, 1]
    assert_gallery_renders(export, "idx (32×32×1, 3 classes)", "rows are the classes 0, 1, 2")


def test_labelled_rgb_folder_trains_exports_and_renders(tmp_path):
    source = write_folder(str(tmp_path / "pets"), ["cats", "dogs"], 24, (40, 36))
    manifest = preprocess(source, str(tmp_path / "data"), "--image_size=32", "--test_percent=20")
    assert manifest["image_shape"] == [32, 32, 3] and manifest["name"] == "pets"
    assert manifest["class_names"] == ["cats", "dogs"]
    splits = manifest["splits"]
    assert splits["train"]["num_examples"] + splits["test"]["num_examples"] == 48
    assert len(splits["train"]["pixel_mean"]) == 3
    # The class colour survives resize and crop: cats are bright in red, dogs in green.
    images, labels = helpers.read_records(str(tmp_path / "data"), "train")
    images = images.reshape(-1, 32, 32, 3)
    assert images[labels == 0][..., 0].mean() > 0.7 and images[labels == 1][..., 1].mean() > 0.7
    export = train_and_export(str(tmp_path / "data"), str(tmp_path), "--conditional")
    assert served_shape(export, 16, [0, 1, 1], str(tmp_path)) == [3, 32, 32, 3]
    with open(os.path.join(export, "README.md")) as f:
        card = f.read()
    assert "# pets GAN generator" in card and "digit" not in card and "[batch, 32, 32, 3]" in card
    assert_gallery_renders(export, "pets (32×32×3, 2 classes)", "rows are the classes cats, dogs")


@pytest.mark.parametrize("size", [32, 64, 128])
def test_the_resnet_trains_and_exports_at_each_rgb_size(size, tmp_path):
    source = write_folder(str(tmp_path / "art"), ["ink", "oil"], 10, (size, size))
    preprocess(source, str(tmp_path / "data"), "--test_percent=20")
    narrow = ["--architecture=resnet", "--model_width=4", "--augment=ada", "--augment_p=0.5"]
    for conditional, labels in (("--conditional", [0, 1, 1]), ("--noconditional", None)):
        export = train_and_export(
            str(tmp_path / "data"), str(tmp_path / conditional), *narrow, conditional
        )
        assert served_shape(export, 16, labels, str(tmp_path)) == [
            len(labels or [0, 0]),
            size,
            size,
            3,
        ]


def test_unlabelled_folder_is_scored_by_sliced_wasserstein(tmp_path):
    source = write_folder(str(tmp_path / "faces"), [], 30, (64, 64))
    manifest = preprocess(source, str(tmp_path / "data"))
    assert manifest["image_shape"] == [64, 64, 3] and manifest["class_names"] == []
    assert manifest["splits"]["train"]["class_counts"] == []
    proc = helpers.run_module(
        "trainer.task",
        f"--data_dir={tmp_path / 'data'}",
        f"--job_dir={tmp_path / 'cjob'}",
        *FEW_STEPS,
        "--conditional",
    )
    helpers.assert_one_line_error(proc, "trainer", "--conditional: faces is unlabelled")
    # Self-conditioned on 3 clusters of its images; the exported generator still takes z alone.
    export = train_and_export(
        str(tmp_path / "data"), str(tmp_path), "--noconditional", "--clusters=3"
    )
    with open(os.path.join(export, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["classifier_test_accuracy"] is None
    assert {"sliced_wasserstein", "swd_64", "swd_32", "swd_16"} <= set(metrics["model"])
    assert "frechet_distance" not in metrics["model"]
    # Real images are closer to real images than four steps of training are.
    assert metrics["real_floor"]["sliced_wasserstein"] < metrics["model"]["sliced_wasserstein"]
    assert served_shape(export, 16, None, str(tmp_path)) == [2, 64, 64, 3]
    assert_gallery_renders(export, "faces (64×64×3, unlabelled)", "sliced Wasserstein")


def test_stacked_mnist_stacks_three_digits_and_keeps_them(tmp_path):
    source = helpers.tiny_mnist(str(tmp_path / "idx"), n_train=300, n_test=100)
    manifest = preprocess(
        source, str(tmp_path / "data"), "--stacked_mnist", "--stacked_examples=200"
    )
    assert manifest["image_shape"] == [28, 28, 3] and manifest["stacked_mnist"] is True
    assert len(manifest["class_names"]) == 1000 and manifest["class_names"][123] == "123"
    assert manifest["splits"]["train"]["num_examples"] == 200
    assert manifest["splits"]["test"]["num_examples"] == 20
    images, labels = helpers.read_records(str(tmp_path / "data"), "train")
    from preprocessing import sources

    mnist = {}
    for pixels, label in zip(
        *sources.load_split(
            os.path.join(source, sources.STANDARD_FILES["train"][0] + ".gz"),
            os.path.join(source, sources.STANDARD_FILES["train"][1] + ".gz"),
        )[:2],
        strict=True,
    ):
        mnist.setdefault(pixels.tobytes(), set()).add(int(label))
    for image, label in zip(images.reshape(-1, 28, 28, 3)[:20], labels[:20], strict=True):
        for channel, digit in enumerate((label // 100, label // 10 % 10, label % 10)):
            pixels = schema.denormalize(image[..., channel]).tobytes()
            assert digit in mnist[pixels]  # each channel is an MNIST image of the label's digit


def test_stacked_mnist_classifier_trains_on_digits_per_epoch_not_stacks(
    tmp_path, monkeypatch, capsys
):
    """The digit classifier reads each channel as a digit and stops an epoch after
    DIGITS_PER_EPOCH digits: an epoch over all 128,000 stacks would be six MNIST epochs."""
    from trainer import classifier, data

    source = helpers.tiny_mnist(str(tmp_path / "idx"), n_train=300, n_test=100)
    data_dir = str(tmp_path / "data")
    preprocess(source, data_dir, "--stacked_mnist", "--stacked_examples=300")
    # One batch of 128 stacks is 384 digits; all 300 stacks would be 3 batches an epoch.
    monkeypatch.setattr(classifier, "DIGITS_PER_EPOCH", 3 * classifier.BATCH)
    # Trained in float32, the returned scorer is the trained model itself, optimizer included.
    monkeypatch.setattr(classifier, "training_dtype", lambda cpu_flags: "float32")
    trained = classifier.train(data_dir, data.read_manifest(data_dir), epochs=2)
    assert int(trained.model.optimizer.iterations) == 2
    assert "on 384 digits (128 " in capsys.readouterr().out  # its progress line counts digits
    assert trained.model.input_shape == (None, 28, 28, 1)
    assert trained.model.output_shape == (None, 10)


@pytest.mark.parametrize(
    ("name", "shape", "classes", "train"),
    [("mnist", [28, 28, 1], 10, False), ("cifar10", [32, 32, 3], 10, True)],
)
def test_tfds_data_sets_through_their_real_builders(name, shape, classes, train, tmp_path):
    out = str(tmp_path / "data")
    proc = helpers.run_module(
        "tests.tfds_mocked",
        "40",
        "preprocessing.run",
        f"--source=tfds:{name}",
        f"--output_dir={out}",
        "--num_shards=2",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = helpers.read_manifest(out)
    assert manifest["image_shape"] == shape and len(manifest["class_names"]) == classes
    assert manifest["name"] == name and manifest["source_sha256"]["tfds"].startswith(name)
    assert manifest["splits"]["train"]["num_examples"] == 40
    if not train:  # training on a second tfds data set proves nothing new and costs a minute
        return
    export = train_and_export(out, str(tmp_path), "--conditional")
    assert served_shape(export, 16, [1, 2], str(tmp_path)) == [2, *shape]
    assert_gallery_renders(export, f"{name} ({shape[0]}×{shape[1]}×{shape[2]}, 10 classes)")


def test_bad_images_are_counted_named_and_fail_over_the_limit(tmp_path):
    source = write_folder(str(tmp_path / "pets"), ["cats", "dogs"], 12, (32, 32))
    with open(os.path.join(source, "dogs", "broken.png"), "wb") as f:
        f.write(b"\x89PNG not really")
    proc = helpers.run_module(
        "preprocessing.run", f"--source={source}", f"--output_dir={tmp_path / 'strict'}"
    )
    helpers.assert_one_line_error(
        proc, "preprocessing", os.path.join(source, "dogs", "broken.png"), "--max_bad_images=0"
    )
    assert not os.path.exists(tmp_path / "strict" / layout.MANIFEST)
    manifest = preprocess(source, str(tmp_path / "lenient"), "--max_bad_images=1")
    bad = [b for split in manifest["splits"].values() for b in split["bad_images"]["listed"]]
    assert [b[0] for b in bad] == ["dogs/broken.png"] and "does not decode" in bad[0][1]
    assert not os.path.exists(tmp_path / "lenient" / "bad-images.json")


@pytest.mark.parametrize(
    ("version", "message"),
    [(1, "schema_version 1 (28×28 MNIST only)"), (99, "schema_version 99, this code reads")],
)
def test_a_manifest_of_another_version_is_one_line(version, message, tiny_data_dir, tmp_path):
    import shutil

    data = str(tmp_path / "data")
    shutil.copytree(tiny_data_dir, data)
    manifest = helpers.read_manifest(data)
    manifest["schema_version"] = version
    with open(os.path.join(data, layout.MANIFEST), "w") as f:
        json.dump(manifest, f)
    proc = helpers.run_module(
        "trainer.task", f"--data_dir={data}", f"--job_dir={tmp_path / 'job'}", *FEW_STEPS
    )
    helpers.assert_one_line_error(proc, "trainer", message)


def test_stacked_mnist_trains_and_is_scored_by_modes(tmp_path):
    source = helpers.tiny_mnist(str(tmp_path / "idx"), n_train=300, n_test=100)
    data = str(tmp_path / "data")
    preprocess(source, data, "--stacked_mnist", "--stacked_examples=300")
    # Scored once, at export: 26,000 samples per evaluation is the protocol and the cost.
    # The unconditional preset end to end (RpGAN with lazy R1/R2, applied at step 0 of 16), at
    # the smoke preset's size: 26,000 samples of the full-width generator cost minutes. Its
    # clusters per channel, as the benchmark's row: the export draws three per sample from z.
    export = train_and_export(
        data,
        str(tmp_path),
        "--preset=unconditional",
        "--clusters=10",
        "--clusters_per_channel",
        "--model_width=8",
        "--batch_size=16",
        "--latent_dim=16",
        "--eval_every=0",
    )
    with open(os.path.join(export, "metrics.json")) as f:
        metrics = json.load(f)
    model, floor = metrics["model"], metrics["real_floor"]
    assert {"modes_covered", "mode_kl", "sliced_wasserstein"} <= set(model)
    assert 1 <= model["modes_covered"] <= 1000 and model["mode_kl"] >= 0
    # The floor scores 100 real stacks: at most 100 modes, KL to uniform at least log(1000/100).
    assert floor["modes_covered"] <= 100 and floor["mode_kl"] >= np.log(10) - 1e-9
    assert served_shape(export, 16, None, str(tmp_path)) == [2, 28, 28, 3]
    assert_gallery_renders(export, "stacked_idx (28×28×3, 1000 classes)", "modes")


def test_inception_features_offline_are_one_line(tiny_data_dir, tmp_path):
    """Online, --feature_extractor=inception_v3 downloads Keras' ImageNet weights once; offline
    and without a cached copy the trainer stops at once with one line."""
    proc = helpers.run_module(
        "trainer.task",
        f"--data_dir={tiny_data_dir}",
        f"--job_dir={tmp_path / 'job'}",
        *FEW_STEPS,
        "--feature_extractor=inception_v3",
        env={"KERAS_HOME": str(tmp_path / "keras")},
    )
    helpers.assert_one_line_error(
        proc, "trainer", "--feature_extractor=inception_v3: the ImageNet weights are not in"
    )


def test_an_image_folder_in_a_bucket_trains_from_the_bucket(gcs, tmp_path):
    """gs:// alike: a folder of PNG/JPEG objects → shards in the bucket → training reads them
    through its local window; the records equal those of the same folder on disk."""
    from common import storage
    from tests.gcs import BUCKET

    local = write_folder(str(tmp_path / "pets"), ["cats", "dogs"], 10, (32, 32))
    for rel in storage.list_tree(local):
        storage.copy_file(os.path.join(local, *rel.split("/")), f"gs://{BUCKET}/pets/{rel}")
    out = f"gs://{BUCKET}/pets-data"
    proc = helpers.run_module(
        "preprocessing.run", f"--source=gs://{BUCKET}/pets", f"--output_dir={out}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    in_bucket = json.loads(gcs.read("pets-data/manifest.json"))
    on_disk = preprocess(local, str(tmp_path / "disk-data"))
    assert in_bucket["class_names"] == on_disk["class_names"] == ["cats", "dogs"]
    for split in ("train", "test"):
        assert (
            in_bucket["splits"][split]["source_content_sha256"]
            == (on_disk["splits"][split]["source_content_sha256"])
        )
    proc = helpers.run_module(
        "trainer.task",
        f"--data_dir={out}",
        f"--job_dir={tmp_path / 'job'}",
        *FEW_STEPS,
        "--conditional",
        f"--scratch_dir={tmp_path / 'scratch'}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "step       4/4" in proc.stdout
