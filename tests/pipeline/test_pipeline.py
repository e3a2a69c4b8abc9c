"""The whole pipeline end to end on small real data, the exported model, metrics and gallery."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

from tests import browser, helpers

ARTIFACTS_DIR = os.environ.get(
    "TEST_ARTIFACTS_DIR", os.path.join(helpers.REPO_ROOT, "runs", "test-artifacts")
)
TINY_TRAINING = [
    "--train_steps=12",
    "--batch_size=16",
    "--model_width=8",
    "--latent_dim=16",
    "--log_every=4",
    "--sample_every=4",
    "--checkpoint_every=4",
    "--eval_every=6",
    "--eval_samples=200",
]


def _tiny_pipeline_run(out: str, root: str) -> subprocess.CompletedProcess:
    """``pipeline.run`` of the tiny MNIST under ``root`` into ``out``, with ``root``'s
    evaluation cache."""
    return helpers.run_module(
        "pipeline.run",
        f"--output_dir={out}",
        f"--source={os.path.join(root, 'idx')}",
        "--num_shards=2",
        "--conditional",
        f"--classifier_dir={os.path.join(root, 'classifiers')}",
        *TINY_TRAINING,
    )


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("pipeline")
    helpers.tiny_mnist(str(root / "idx"), n_train=512, n_test=128)
    out = str(root / "run")
    proc = _tiny_pipeline_run(out, str(root))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "pipeline: done" in proc.stdout
    assert "classifier: test accuracy" in proc.stdout  # this data set's, trained once
    with open(str(root / "terminal.txt"), "w") as f:
        f.write(proc.stdout + proc.stderr)
    return out


# What a user may see by default: progress, a result, or an error; nothing else.
PROGRESS = r"(step +\d+/\d+ .*|eval +\d+ .*|classifier: .*)"
RESULT = r"(preprocessing|trainer|export|pipeline|promote|submit): .*"


def test_every_line_on_the_terminal_is_progress_a_result_or_an_error(pipeline_run):
    """pipeline.run runs preprocessing.run, trainer.task and pipeline.export as its stages."""
    with open(os.path.join(os.path.dirname(pipeline_run), "terminal.txt")) as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    others = [ln for ln in lines if not re.fullmatch(f"{PROGRESS}|{RESULT}", ln)]
    assert others == [], others[:10]
    for stage in ("preprocessing: wrote", "trainer: stopped", "export: ", "pipeline: done"):
        assert any(line.startswith(stage) for line in lines), stage
    # 512 digits are not MNIST's 60,000: the recipe for limited data, and the reason, said.
    assert (
        "trainer: --preset=auto → limited: 28×28×1, 512 labelled training images: fewer than "
        "20,000 images, the limited-data recipe" in lines
    ), [ln for ln in lines if "auto" in ln]


@pytest.mark.each_python
def test_pipeline_writes_every_artifact(pipeline_run):
    export = os.path.join(pipeline_run, "export")
    for rel in [
        "data/manifest.json",
        "job/flags.txt",
        "job/train_config.json",
        "job/metrics.jsonl",
        "job/checkpoints/ckpt-12.index",
        "export/generator/saved_model.pb",
        "export/metrics.json",
        "export/flags.txt",
        "export/manifest.json",
        "export/README.md",
        "export/gallery/index.html",
        "export/gallery/samples.png",
        "export/gallery/reals.png",
        "export/gallery/nearest.png",
        "export/gallery/curves.png",
        "export/gallery/interpolation.png",
        "export/gallery/progress/step-00000012.png",
    ]:
        assert os.path.exists(os.path.join(pipeline_run, rel)), rel
    with open(os.path.join(export, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["step"] == 12 and metrics["generator"] == "ema"
    for key in (
        "frechet_distance",
        "kernel_distance",
        "memorization_share",
        "classifier_score",
        "class_entropy",
        "min_class_share",
        "precision",
        "recall",
        "label_accuracy",
    ):
        assert np.isfinite(metrics["model"][key]), key
    assert metrics["real_floor"]["frechet_distance"] < metrics["model"]["frechet_distance"]
    # The feature space is named by the classifier file's sha256: equal names, comparable FDs.
    classifiers = os.path.join(os.path.dirname(pipeline_run), "classifiers")
    (info_path,) = glob.glob(os.path.join(classifiers, "*", "classifier.json"))
    with open(info_path) as f:
        classifier_sha256 = json.load(f)["model_sha256"]
    assert f"classifier {classifier_sha256[:12]} (" in metrics["feature_space"]
    with open(os.path.join(pipeline_run, "job", "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    assert [r["step"] for r in records if "eval_frechet_distance" in r] == [6, 12]
    # The evaluation line puts real images' FD at the same sample count beside the sampler's.
    with open(os.path.join(os.path.dirname(pipeline_run), "terminal.txt")) as f:
        evals = [ln for ln in f.read().splitlines() if re.match(r"eval +\d+ +\d+s ", ln)]
    assert len(evals) == 2 and all(re.search(r"FD [\d.]+ \(real [\d.]+\)", ln) for ln in evals)
    with open(os.path.join(export, "README.md")) as f:
        card = f.read()
    assert 'signatures["serving_default"]' in card and "label" in card
    # Each stage writes the resolved configuration it ran beside its output.
    with open(os.path.join(export, "export_config.json")) as f:
        assert json.load(f)["job_dir"] == os.path.join(pipeline_run, "job")
    with open(os.path.join(pipeline_run, "job", "train_config.json")) as f:
        assert json.load(f)["data_dir"] == os.path.join(pipeline_run, "data")
    assert helpers.read_manifest(os.path.join(pipeline_run, "data"))["config"]["output_dir"] == (
        os.path.join(pipeline_run, "data")
    )


def test_rerun_skips_complete_stages(pipeline_run):
    before = helpers.snapshot(os.path.join(pipeline_run, "export"))
    proc = _tiny_pipeline_run(pipeline_run, os.path.dirname(pipeline_run))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "already holds this data set; nothing to do" in proc.stdout
    assert "(already_complete)" in proc.stdout
    assert helpers.snapshot(os.path.join(pipeline_run, "export")) == before


def test_a_second_run_on_the_same_data_reuses_the_classifier_and_real_features(
    pipeline_run, tmp_path
):
    """The cache outlives an output directory: a run into a new one trains no classifier and
    embeds no real image again, and scores in the same feature space."""
    classifiers = os.path.join(os.path.dirname(pipeline_run), "classifiers")
    (embeddings,) = glob.glob(os.path.join(classifiers, "*", "embeddings"))
    cached = helpers.snapshot(embeddings)
    out = str(tmp_path / "second")
    proc = _tiny_pipeline_run(out, os.path.dirname(pipeline_run))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "classifier:" not in proc.stdout + proc.stderr
    assert helpers.snapshot(embeddings) == cached  # every real image's features were cached
    assert not os.path.exists(os.path.join(out, "classifier"))

    def feature_space(run_dir: str) -> str:
        with open(os.path.join(run_dir, "export", "metrics.json")) as f:
            return json.load(f)["feature_space"]

    assert feature_space(out) == feature_space(pipeline_run)


def test_both_evaluating_stages_get_the_classifier_cache_the_user_names():
    from pipeline.run import stage_args

    given = stage_args("/r", ["--classifier_dir=/c", "--digits=3"])
    assert "--classifier_dir=/c" in given["train"] and "--classifier_dir=/c" in given["export"]
    assert given["preprocess"] == ["--output_dir=/r/data", "--digits=3"]
    # Unnamed, both use their own default: the same shared cache.
    default = stage_args("/r", [])
    assert not any("classifier_dir" in arg for arg in default["train"] + default["export"])


def test_saved_model_loads_in_a_fresh_process_without_project_code(pipeline_run, tmp_path):
    model_dir = os.path.join(pipeline_run, "export", "generator")
    script = textwrap.dedent(
        f"""
        import json, sys
        try:
            import trainer
            sys.exit("project code is importable")
        except ImportError:
            pass
        import tensorflow as tf
        serve = tf.saved_model.load({model_dir!r}).signatures["serving_default"]
        out = serve(z=tf.random.normal([4, 16]), label=tf.constant([0, 1, 2, 9], tf.int32))
        images = out["images"].numpy()
        print(json.dumps({{"shape": list(images.shape), "dtype": str(images.dtype),
                          "min": float(images.min()), "max": float(images.max())}}))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["shape"] == [4, 28, 28, 1] and result["dtype"] == "float32"
    assert -1.0 <= result["min"] <= result["max"] <= 1.0


@pytest.mark.skipif(browser.chromium_path() is None, reason="Debian's chromium is not installed")
def test_gallery_renders_in_headless_chromium(pipeline_run):
    index = os.path.join(pipeline_run, "export", "gallery", "index.html")
    report = browser.inspect_page(f"file://{index}")
    assert report.errors == []
    sources = {image["src"] for image in report.images}
    assert {"samples.png", "reals.png", "nearest.png", "curves.png", "interpolation.png"} <= sources
    assert any(src.startswith("progress/") for src in sources)
    assert all(image["complete"] and image["width"] > 0 for image in report.images), report.images
    # Says what it shows: the model in the title, the numbers of metrics.json, no sideways scroll.
    assert report.title.startswith("GAN gallery: class-conditional dcgan GAN, relativistic loss")
    assert report.viewport_width == 1300 and report.scroll_width <= report.viewport_width
    with open(os.path.join(pipeline_run, "export", "metrics.json")) as f:
        metrics = json.load(f)
    for key in ("frechet_distance", "classifier_score", "precision", "recall"):
        assert f"{metrics['model'][key]:.4f}" in report.text, key
    os.makedirs(ARTIFACTS_DIR, exist_ok=True)
    with open(os.path.join(ARTIFACTS_DIR, "gallery.png"), "wb") as f:
        f.write(report.screenshot)
    assert report.screenshot.startswith(b"\x89PNG")


def _export(job_dir: str, export_dir: str):
    return helpers.run_module(
        "pipeline.export",
        f"--job_dir={job_dir}",
        f"--export_dir={export_dir}",
        "--eval_samples=200",
    )


def test_export_of_a_job_without_checkpoint_fails_with_one_line(pipeline_run, tmp_path):
    job = str(tmp_path / "job")
    os.makedirs(job)
    shutil.copy(os.path.join(pipeline_run, "job", "flags.txt"), job)
    with open(os.path.join(job, "flags.txt")) as f:
        text = f.read()
    with open(os.path.join(job, "flags.txt"), "w") as f:
        f.write(text.replace(os.path.join(pipeline_run, "job"), job))
    proc = _export(job, str(tmp_path / "export"))
    assert proc.returncode != 0
    assert (
        helpers.error_line(proc) == f"export: error: {job}/checkpoints: no checkpoint; train first"
    )
    assert not os.path.exists(tmp_path / "export")


def test_checkpoint_of_another_architecture_is_reported(pipeline_run, tmp_path):
    job = str(tmp_path / "job")
    shutil.copytree(os.path.join(pipeline_run, "job"), job)
    with open(os.path.join(job, "flags.txt")) as f:
        text = f.read()
    with open(os.path.join(job, "flags.txt"), "w") as f:
        f.write(text.replace("--architecture=dcgan", "--architecture=dense"))
    proc = _export(job, str(tmp_path / "export"))
    assert proc.returncode != 0
    line = helpers.error_line(proc)
    assert line.startswith("export: error: ") and "does not match --architecture=dense" in line
    assert not os.path.exists(tmp_path / "export")


def test_export_dir_holding_another_model_is_not_overwritten(pipeline_run, tmp_path):
    export = os.path.join(pipeline_run, "export")
    before = helpers.snapshot(export)
    job = str(tmp_path / "job")
    shutil.copytree(os.path.join(pipeline_run, "job"), job)
    with open(os.path.join(job, "flags.txt")) as f:
        text = f.read().replace(os.path.join(pipeline_run, "job"), job)
    with open(os.path.join(job, "flags.txt"), "w") as f:
        f.write(text.replace("--train_steps=12", "--train_steps=14"))
    trained = helpers.run_module("trainer.task", f"--flagfile={os.path.join(job, 'flags.txt')}")
    assert trained.returncode == 0, trained.stderr[-3000:]
    proc = _export(job, export)
    assert proc.returncode != 0
    assert "already holds another model (step 12" in helpers.error_line(proc)
    assert helpers.snapshot(export) == before


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"notes.md": "the user's"}, "holds files that are not an export of this pipeline"),
        ({"metrics.json": "{torn"}, "metrics.json: unreadable (JSONDecodeError)"),
    ],
    ids=["foreign-files", "corrupt-metrics"],
)
def test_export_dir_that_is_not_an_export_of_ours_is_refused(
    pipeline_run, tmp_path, files, message
):
    export = tmp_path / "export"
    export.mkdir()
    for name, text in files.items():
        (export / name).write_text(text)
    before = helpers.snapshot(str(export))
    proc = _export(os.path.join(pipeline_run, "job"), str(export))
    helpers.assert_one_line_error(proc, "export", message)
    assert helpers.snapshot(str(export)) == before


def test_metrics_put_real_data_near_the_floor_and_noise_far_from_it(tmp_path):
    from trainer import classifier as classifier_lib
    from trainer import data, evaluation

    # 2,048 images: a classifier on 512 reaches only 66-74% (by training order) and its features
    # are too blunt to test the metrics with.
    tiny_data_dir = str(tmp_path / "data")
    source = helpers.tiny_mnist(str(tmp_path / "idx"), n_train=2048, n_test=512)
    proc = helpers.run_module(
        "preprocessing.run", f"--source={source}", f"--output_dir={tiny_data_dir}"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]

    manifest = data.read_manifest(tiny_data_dir)
    classifier = classifier_lib.load_or_train(str(tmp_path / "cls"), tiny_data_dir, manifest)
    train = data.load_examples(tiny_data_dir, manifest, "train").images
    test = data.load_examples(tiny_data_dir, manifest, "test").images
    real = evaluation.compare(classifier, test, train)
    rng = np.random.default_rng(0)
    noise = rng.uniform(-1, 1, train.shape).astype(np.float32)
    fake = evaluation.compare(classifier, test, noise)
    assert real["frechet_distance"] * 10 < fake["frechet_distance"]
    # Noise collapses to a corner of feature space that the k-NN ball of some real outlier
    # covers, so its *precision* is high (the outlier weakness Naeem et al. 2020 describe); its
    # recall shows it: no real image lies near the noise.
    assert real["precision"] > 0.5
    assert real["recall"] > 0.5 and fake["recall"] < real["recall"] / 3
    assert real["classifier_score"] > 2 * fake["classifier_score"]
    assert real["min_class_share"] > 0.03
    again = evaluation.compare(classifier, test, train)
    assert again == real  # reproducible
    # An evaluator embeds its real images once, whatever it scores against them, and a
    # conditional generator's samples once for all their metrics, label accuracy included.
    embedded = []
    counting = types.SimpleNamespace(
        features_and_probs=lambda images: (
            embedded.append(len(images)) or classifier.features_and_probs(images)
        )
    )
    evaluator = evaluation.Evaluator(manifest.spec, test, counting, len(test))
    assert evaluator.score(train) == real and evaluator.score(noise) == fake
    labels = data.load_examples(tiny_data_dir, manifest, "train").labels
    scored = evaluator.score(train, labels=labels)
    assert scored.pop("label_accuracy") > 0.9 and scored == real
    assert sorted(embedded) == sorted([len(test), len(train), len(noise), len(train)])
    cached = classifier_lib.load_or_train(str(tmp_path / "cls"), tiny_data_dir, manifest)
    assert evaluation.compare(cached, test, train) == pytest.approx(real)
    # Copies of training images read as memorized; fresh test images and noise do not.
    checking = evaluation.Evaluator(manifest.spec, test, classifier, len(test))
    assert "memorization_share" not in checking.score(train[:500])  # no training images held
    checking.hold_training_images(train)
    assert checking.real_floor(train)["memorization_share"] < 0.1  # the test images: fresh
    assert checking.score(train[:500])["memorization_share"] == 1.0
    assert checking.score(noise[:500])["memorization_share"] < 0.05
    # Each training image's nearest training image is itself (the gallery's panel shows these).
    assert checking.nearest_training(train[:5], k=2)[:, 0].tolist() == [0, 1, 2, 3, 4]


def test_route_sends_flags_to_their_stage_and_user_flags_win_over_defaults():
    from pipeline.run import route

    preprocess, trainer = route(["--digits=3", "--runner=DirectRunner", "--batch_size=32"])
    assert preprocess == ["--digits=3", "--runner=DirectRunner"]
    assert trainer == ["--preset=auto", "--batch_size=32"]  # the measured default, then

    _, trainer = route(["--noconditional", "--preset=tutorial"])
    assert trainer == ["--noconditional", "--preset=tutorial"]


def test_the_gallery_shows_only_the_grids_the_trainer_wrote(pipeline_run, tmp_path):
    job = str(tmp_path / "job")
    shutil.copytree(os.path.join(pipeline_run, "job"), job)
    with open(os.path.join(job, "flags.txt")) as f:
        text = f.read().replace(os.path.join(pipeline_run, "job"), job)
    with open(os.path.join(job, "flags.txt"), "w") as f:
        f.write(text)
    for name in ("notes.txt", "step-final.png", "step-00000004 (copy).png"):
        with open(os.path.join(job, "samples", name), "w") as f:
            f.write("not a grid")
    with open(os.path.join(job, "metrics.jsonl"), "a") as f:
        f.write('{"step": 99, "d_lo')  # a torn last line
    proc = _export(job, str(tmp_path / "export"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    progress = sorted(os.listdir(tmp_path / "export" / "gallery" / "progress"))
    assert progress and all(re.fullmatch(r"step-\d{8}\.png", n) for n in progress)


def test_a_tampered_classifier_cache_is_not_loaded(tiny_data_dir, tmp_path):
    from trainer import classifier as classifier_lib
    from trainer import data

    manifest = data.read_manifest(tiny_data_dir)
    fingerprint = manifest.fingerprint
    root = str(tmp_path / "cache")
    classifier_lib.load_or_train(root, tiny_data_dir, manifest)
    (model,) = glob.glob(os.path.join(classifier_lib.cache_dir(root, fingerprint), "*.keras"))
    with open(model, "ab") as f:
        f.write(b"planted")
    with pytest.raises(classifier_lib.ClassifierError, match="does not match the sha256 recorded"):
        classifier_lib.load_or_train(root, tiny_data_dir, manifest)


def test_two_runs_training_one_classifier_at_once_leave_a_loadable_entry(tiny_data_dir, tmp_path):
    """Two runs sharing a cache train the same data set's classifier at once: each uploads its
    model, then commits its info file; whichever commits last, the entry loads (their files
    differ: the Keras file records when it was saved, and training may differ by host)."""
    import keras

    from trainer import classifier as classifier_lib
    from trainer import data

    manifest = data.read_manifest(tiny_data_dir)
    root = str(tmp_path / "cache")
    directory = classifier_lib.cache_dir(root, manifest.fingerprint)
    first = classifier_lib.load_or_train(root, tiny_data_dir, manifest)
    second = classifier_lib.Classifier(keras.models.clone_model(first.model), 0.5)
    # The second run uploads its model, the first commits, then the second commits.
    second_info = classifier_lib.put_model(directory, second)
    first_info = classifier_lib.put_model(directory, first)
    classifier_lib.commit_entry(directory, first_info, manifest.fingerprint)
    classifier_lib.commit_entry(directory, second_info, manifest.fingerprint)
    loaded = classifier_lib.load_or_train(root, tiny_data_dir, manifest)
    assert loaded.sha256 == second.sha256 != first.sha256


def test_the_bundled_mnist_classifier_is_loaded_not_trained(tmp_path):
    from trainer import classifier as classifier_lib

    fingerprint = helpers.BUNDLED_MNIST_FINGERPRINT
    manifest = helpers.mnist_manifest(fingerprint)
    root = str(tmp_path / "cache")
    # No data to train on: a classifier can only come from data/classifiers/.
    classifier = classifier_lib.load_or_train(root, str(tmp_path / "no-data"), manifest)
    assert classifier.test_accuracy == pytest.approx(0.9927, abs=1e-4)
    bundled = classifier_lib.cache_dir(classifier_lib.BUNDLED, fingerprint)
    with open(os.path.join(bundled, classifier_lib.INFO_FILE)) as f:
        assert classifier.sha256 == json.load(f)["model_sha256"]
    features, probs = classifier.features_and_probs(np.zeros((2, 28, 28, 1), np.float32))
    assert features.shape[0] == 2 and probs.shape == (2, 10)
    assert not os.path.exists(root)  # nothing cached: the user's cache is not touched


def test_a_tampered_bundled_classifier_is_not_loaded(tmp_path, monkeypatch):
    from trainer import classifier as classifier_lib

    fingerprint = helpers.BUNDLED_MNIST_FINGERPRINT
    manifest = helpers.mnist_manifest(fingerprint)
    bundled = str(tmp_path / "bundled")
    shutil.copytree(classifier_lib.BUNDLED, bundled)
    monkeypatch.setattr(classifier_lib, "BUNDLED", bundled)
    with open(
        os.path.join(classifier_lib.cache_dir(bundled, fingerprint), "classifier.keras"), "ab"
    ) as f:
        f.write(b"planted")
    with pytest.raises(
        classifier_lib.ClassifierError, match="restore it from the project's source"
    ):
        classifier_lib.load_or_train(str(tmp_path / "cache"), str(tmp_path / "no-data"), manifest)


def test_secrets_in_pass_through_options_are_masked_in_the_log():
    from pipeline.run import masked

    args = [
        "--dataflow_kms_key=projects/p/keys/k",
        "--hdfs_password=hunter2",
        "--api_token=abc",
        "--AWS_SECRET_ACCESS_KEY=xyz",
        "--runner=DirectRunner",
        "--num_shards=2",
    ]
    shown = " ".join(masked(args))
    for secret in ("projects/p/keys/k", "hunter2", "abc", "xyz"):
        assert secret not in shown
    assert "--runner=DirectRunner" in shown and "--hdfs_password=***" in shown


def test_pipeline_help_lists_the_flags_of_every_stage():
    proc = helpers.run_module("pipeline.run", "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    for flag in ("--output_dir", "--source", "--num_shards", "--architecture", "--preset"):
        assert f"  {flag}:" in proc.stdout, flag


def test_the_reals_grid_lays_training_images_out_as_the_samples_are():
    from pipeline import gallery

    # 1×1 images whose value says their class; class 2 has only 3 images.
    labels = np.array([0] * 12 + [1] * 12 + [2] * 3, np.int32)
    images = (labels / 10.0).astype(np.float32).reshape(-1, 1, 1, 1)
    grid = gallery.reals_grid(images, labels, classes=[1, 2, 0], by_class=True)
    assert grid.shape == (3, 10, 1)
    expected = {k: round((k / 10.0 + 1) * 127.5) for k in (0, 1, 2)}
    assert (grid[0, :, 0] == expected[1]).all() and (grid[2, :, 0] == expected[0]).all()
    assert grid[1, :3, 0].tolist() == [expected[2]] * 3 and (grid[1, 3:, 0] == 0).all()
    flat = gallery.reals_grid(images, labels, classes=[], by_class=False)
    assert flat.shape == (10, 10, 1) and flat[0, 0, 0] == expected[0] and flat[9, 9, 0] == 0


def test_the_nearest_grid_puts_each_sample_before_its_nearest_training_images():
    from pipeline import gallery

    samples = np.array([0.5, -0.5], np.float32).reshape(2, 1, 1, 1)
    train = np.array([-1.0, 0.0, 1.0], np.float32).reshape(3, 1, 1, 1)
    grid = gallery.nearest_grid(samples, train, np.array([[2, 1], [0, 1]]))
    assert grid.shape == (2, 3, 1)
    assert grid[:, :, 0].tolist() == [[191, 255, 128], [64, 0, 128]]


def _npz_key(path: str) -> str:
    with np.load(path) as record:
        return str(record["key"])


def test_a_real_data_floor_is_computed_once_per_classifier_data_and_sample_count(
    tiny_data_dir, tmp_path
):
    """The floor is cached beside the classifier and served from there (a planted value comes
    back); another classifier, other data, another sample count or other held training images
    make another key, and the floor is computed afresh."""
    from trainer import data, evaluation

    manifest = data.read_manifest(tiny_data_dir)
    root = str(tmp_path / "cache")
    train = data.load_examples(tiny_data_dir, manifest, "train").images

    def evaluator(num_samples: int = 64, hold: bool = True) -> evaluation.Evaluator:
        made = evaluation.make_evaluator(tiny_data_dir, manifest, root, num_samples)
        if hold:
            made.hold_training_images(train)
        return made

    scorer = evaluator()
    fresh = scorer.real_floor(train)
    (path,) = glob.glob(os.path.join(root, "*", "floors", "*.json"))
    with open(path) as f:
        record = json.load(f)
    assert record["floor"] == fresh
    assert record["key"]["held_images"] == len(train)
    record["floor"]["frechet_distance"] = 123.0
    with open(path, "w") as f:
        json.dump(record, f)
    assert evaluator().real_floor(train)["frechet_distance"] == 123.0

    scorer.classifier.sha256 = "0" * 64
    assert scorer.real_floor(train) == fresh
    scorer.data_fingerprint = "f" * 64
    assert scorer.real_floor(train) == fresh
    assert evaluator(num_samples=32).real_floor(train)["frechet_distance"] != 123.0
    assert evaluator(hold=False).real_floor(train)["frechet_distance"] != 123.0
    assert len(glob.glob(os.path.join(root, "*", "floors", "*.json"))) == 5


def test_the_real_images_embedding_is_computed_once_per_classifier_data_split_and_count(
    tiny_data_dir, tmp_path
):
    """Every export embeds the test split and the held training images; the embedding is cached
    beside the classifier and served from there (planted features come back), equal to a fresh
    one to the bit; another classifier, other data or another count make another key, and a
    damaged file is recomputed."""
    from trainer import data, evaluation

    manifest = data.read_manifest(tiny_data_dir)
    root = str(tmp_path / "cache")
    train = data.load_examples(tiny_data_dir, manifest, "train").images
    samples = train[:32, :, ::-1]  # mirrored digits: neither real set holds them

    def scored(num_samples: int = 64, tamper=None) -> dict[str, float]:
        made = evaluation.make_evaluator(tiny_data_dir, manifest, root, num_samples)
        if tamper:
            tamper(made)
        made.hold_training_images(train)
        return made.score(samples)

    def cached_files() -> list[str]:
        return sorted(glob.glob(os.path.join(root, "*", "embeddings", "*.npz")))

    fresh = scored()
    assert len(cached_files()) == 2  # the test split's and the training images'
    assert scored() == fresh

    # Planted features (the test split's, moved) are what the next evaluator reads.
    (test_file,) = [p for p in cached_files() if '"split": "test"' in _npz_key(p)]
    with np.load(test_file) as record:
        planted = {name: record[name] for name in record.files}
    planted["features"] = planted["features"] + 1.0
    np.savez(test_file, **planted)
    assert scored()["frechet_distance"] > fresh["frechet_distance"] + 1.0

    def other_classifier(made):
        made.classifier.sha256 = "0" * 64

    def other_data(made):
        made.data_fingerprint = "f" * 64

    assert scored(tamper=other_classifier) == fresh
    assert scored(tamper=other_data) == fresh
    assert scored(num_samples=32)["frechet_distance"] != fresh["frechet_distance"]
    assert len(cached_files()) == 2 + 2 + 2 + 1  # the training images' count is unchanged

    with open(test_file, "wb") as f:
        f.write(b"PK\x03\x04 not a zip")
    assert scored() == fresh
