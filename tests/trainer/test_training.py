"""The trainer, in process: every architecture × loss trains; options change what they should."""

from __future__ import annotations

import dataclasses
import json
import math
import os

import numpy as np
import pytest

from trainer import config as config_lib
from trainer import loop, losses, models


def tiny_config(data_dir: str, job_dir: str, **overrides) -> config_lib.TrainConfig:
    base = config_lib.TrainConfig(
        data_dir=data_dir,
        job_dir=job_dir,
        model_width=8,
        latent_dim=16,
        batch_size=16,
        train_steps=3,
        log_every=3,
        sample_every=3,
        checkpoint_every=3,
        strategy="default",
    )
    return config_lib.validate(dataclasses.replace(base, **overrides))


def one_step(gan, train_steps, images: np.ndarray, labels: np.ndarray) -> tuple:
    """One step of ``train_steps`` (a ``Gan.make_train_function()``) on this batch: (metrics,
    finite)."""
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensors((images, labels)).repeat()
    iterator = iter(gan.strategy.experimental_distribute_dataset(dataset))
    return train_steps(iterator, tf.constant(1, tf.int64))


@pytest.mark.parametrize("loss", sorted(losses.LOSSES))
@pytest.mark.parametrize("architecture", sorted(models.ARCHITECTURES))
def test_every_architecture_and_loss_trains_with_finite_losses(
    architecture, loss, tiny_data_dir, tmp_path
):
    result = loop.train(
        tiny_config(tiny_data_dir, str(tmp_path), architecture=architecture, loss=loss)
    )
    assert result.step == 3 and result.stopped_by == "steps"
    for key in ("d_loss", "g_loss", "d_real", "d_fake"):
        assert math.isfinite(result.last_metrics[key]), (key, result.last_metrics)
    for key in ("d_grad_norm", "g_grad_norm"):  # logged beside the losses (and to TensorBoard)
        assert 0 < result.last_metrics[key] < math.inf, (key, result.last_metrics)
    if losses.LOSSES[loss].gp_weight:
        assert result.last_metrics["grad_penalty"] > 0
    assert os.path.exists(os.path.join(tmp_path, "checkpoints", "ckpt-3.index"))


@pytest.mark.parametrize("loss", sorted(losses.LOSSES))
def test_every_loss_trains_with_every_penalty(loss, tiny_data_dir, tmp_path):
    """R1 + R2 + WGAN-GP at once (they add up), lazily every 2nd step: steps 0 and 2 carry them."""
    penalties = {"r1_gamma": 0.5, "r2_gamma": 0.5, "gp_weight": 1.0, "penalty_every": 2}
    config = tiny_config(tiny_data_dir, str(tmp_path), loss=loss, conditional=True, **penalties)
    result = loop.train(config)
    assert result.step == 3
    assert all(math.isfinite(v) for k, v in result.last_metrics.items() if isinstance(v, float))
    assert result.last_metrics["grad_penalty"] > 0


@pytest.mark.parametrize(
    "options",
    [
        {"conditional": True},
        {"conditional": True, "spectral_norm": True, "loss": "hinge", "architecture": "upsample"},
        {"training_ratio": 3, "loss": "wasserstein_gp", "beta1": 0.0, "beta2": 0.9},
        {"label_smoothing": 0.1, "ema_kimg": 0.0, "architecture": "dense"},
        {"mixed_precision": "bf16"},
        {"xla": True, "conditional": True},  # dropout masks, fused BN and CBN under XLA (TPU)
    ],
    ids=[
        "conditional",
        "cond-sn-hinge-upsample",
        "wgan-gp-ratio3",
        "smoothing-no-ema",
        "bf16",
        "xla-conditional",
    ],
)
def test_options_train_with_finite_losses(options, tiny_data_dir, tmp_path):
    try:
        result = loop.train(tiny_config(tiny_data_dir, str(tmp_path), **options))
    finally:
        import keras

        keras.mixed_precision.set_global_policy("float32")
    assert result.step == 3
    assert all(math.isfinite(v) for k, v in result.last_metrics.items() if isinstance(v, float))


def test_progress_reports_metrics_samples_and_tensorboard(tiny_data_dir, tmp_path):
    loop.train(
        tiny_config(tiny_data_dir, str(tmp_path), train_steps=4, log_every=2, sample_every=2)
    )
    with open(tmp_path / "metrics.jsonl") as f:
        records = [json.loads(line) for line in f]
    assert [r["step"] for r in records] == [2, 4]
    for record in records:
        assert {"kimg", "images_per_s", "d_loss", "g_loss", "d_real", "d_fake"} <= set(record)
    assert records[-1]["kimg"] == pytest.approx(4 * 16 / 1000)
    assert sorted(os.listdir(tmp_path / "samples")) == ["step-00000002.png", "step-00000004.png"]
    from PIL import Image

    grid = Image.open(tmp_path / "samples" / "step-00000004.png")
    assert grid.size == (10 * 28 * 2, 10 * 28 * 2)
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path / "logs"))
    import tensorflow as tf

    tags = set()
    for name in os.listdir(tmp_path / "logs"):
        for event in tf.compat.v1.train.summary_iterator(str(tmp_path / "logs" / name)):
            tags |= {v.tag for v in event.summary.value}
    assert {"d_loss", "g_loss", "samples"} <= tags


def test_conditional_samples_follow_their_labels(tiny_data_dir, tmp_path):
    """After training, a conditional generator's output depends on the label it is given.

    (Class-conditional batch norm starts with the same scale and offset for every class, so an
    untrained generator ignores the label by construction; three updates separate the classes.)
    """
    import tensorflow as tf

    from trainer import data
    from trainer.gan import Gan

    config = tiny_config(tiny_data_dir, str(tmp_path), conditional=True, ema_kimg=0.0)
    strategy = tf.distribute.get_strategy()
    gan = Gan(config, data.read_manifest(tiny_data_dir).spec, strategy)
    manifest = data.read_manifest(tiny_data_dir)
    dataset = strategy.distribute_datasets_from_function(
        data.make_dataset_fn(tiny_data_dir, manifest, config.batch_size, 1, 0, start_step=0)
    )
    gan.make_train_function()(iter(dataset), tf.constant(3, tf.int64))
    z = np.zeros((2, config.latent_dim), np.float32)
    images = gan.sample(z, np.array([0, 7], np.int32))
    assert images.shape == (2, 28, 28, 1)
    assert np.abs(images[0] - images[1]).max() > 1e-4


def test_input_pipelines_run_without_the_autotuning_thread(tiny_data_dir):
    """tf.data's autotuning thread sleeps up to 60 s between rounds, and deleting the trainer's
    iterator waited that sleep out: the trainer sat silent for up to a minute after its last
    step. The trainer's and the evaluator's pipelines run without it, and still in a fixed
    order."""
    import tensorflow as tf

    from trainer import data

    manifest = data.read_manifest(tiny_data_dir)
    training = data.make_dataset_fn(tiny_data_dir, manifest, 16, 1, 0, start_step=0)(
        tf.distribute.InputContext()
    )
    evaluation = data.split_dataset(tiny_data_dir, manifest, "test", 64)
    sampled = data.split_dataset(tiny_data_dir, manifest, "train", 64, seed=0)
    for dataset in (training, evaluation, sampled):
        assert dataset.options().autotune.enabled is False
        assert dataset.options().deterministic is True
    first = next(iter(training))[0].numpy()
    again = next(iter(training))[0].numpy()
    np.testing.assert_array_equal(first, again)


def test_the_first_examples_are_read_from_their_shards_and_a_changed_shard_is_checked_again(
    tiny_data_dir, tmp_path
):
    """Loading a split's first N examples reads (and checks) only the shards that hold them;
    a shard this process has checked is checked again once its file changes."""
    import shutil

    from trainer import data

    copy = str(tmp_path / "data")
    shutil.copytree(tiny_data_dir, copy)
    manifest = data.read_manifest(copy)
    first, second = manifest.splits["train"].files
    held = manifest.splits["train"].file_examples[first]
    whole = data.load_examples(copy, manifest, "train").images
    with open(os.path.join(copy, second), "r+b") as f:  # the second shard, damaged
        f.truncate(os.path.getsize(f.name) // 2)
    head = data.load_examples(copy, manifest, "train", held).images
    np.testing.assert_array_equal(head, whole[:held])
    with pytest.raises(data.DataError, match=f"{second}: a record does not parse"):
        data.load_examples(copy, manifest, "train", held + 1)


def test_restart_of_a_finished_run_does_nothing(tiny_data_dir, tmp_path):
    config = tiny_config(tiny_data_dir, str(tmp_path))
    first = loop.train(config)
    again = loop.train(config)
    assert again.stopped_by == "already_complete"
    assert again.weights_sha256 == first.weights_sha256


BAD_CONFIGS = {
    "label smoothing with hinge": (
        {"loss": "hinge", "label_smoothing": 0.1},
        "--label_smoothing applies to cross-entropy losses, not --loss=hinge",
    ),
    "unknown loss": ({"loss": "nope"}, "--loss=nope: choose one of"),
    "zero ratio": ({"training_ratio": 0}, "--training_ratio must be >= 1"),
    "negative ema": ({"ema_kimg": -1.0}, "--ema_kimg=-1.0: must be >= 0"),
    "infinite ema ramp-up": ({"ema_rampup": float("inf")}, "--ema_rampup=inf: must be >= 0"),
    "negative r1": ({"r1_gamma": -1.0}, "--r1_gamma=-1.0: must be >= 0"),
    "nan r2": ({"r2_gamma": float("nan")}, "--r2_gamma=nan: must be >= 0"),
    "lazy interval 0": ({"penalty_every": 0}, "--penalty_every must be >= 1"),
    "cpu replicas without mirrored": (
        {"cpu_replicas": 2},
        "--cpu_replicas needs --strategy=mirrored",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_combinations_are_rejected_with_one_line(case, tmp_path):
    overrides, message = BAD_CONFIGS[case]
    with pytest.raises(config_lib.ConfigError) as error:
        tiny_config("d", str(tmp_path), **overrides)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_non_finite_weights_are_never_committed(tiny_data_dir, tmp_path, monkeypatch):
    """Losses can stay finite while a weight is not (the EMA copy never enters a loss)."""
    from trainer.gan import Gan

    make = Gan.make_train_function

    def corrupting(gan):
        train_steps = make(gan)

        def run(iterator, n):
            result = train_steps(iterator, n)
            if int(gan.step.numpy()) > 3:
                weight = gan.ema_generator.weights[0]
                weight.assign(np.full(weight.shape, np.inf, weight.dtype))
            return result

        return run

    job = str(tmp_path / "job")
    loop.train(tiny_config(tiny_data_dir, job))
    monkeypatch.setattr(Gan, "make_train_function", corrupting)
    with pytest.raises(loop.NonFiniteLossError, match=r"non-finite weights at step 6 \("):
        loop.train(tiny_config(tiny_data_dir, job, train_steps=6))
    assert sorted(n for n in os.listdir(os.path.join(job, "checkpoints")) if ".index" in n) == [
        "ckpt-3.index"
    ]


def test_the_nan_guard_sees_the_extra_discriminator_steps(tiny_data_dir, tmp_path, monkeypatch):
    """With --training_ratio=2 the first D update has its own loss; a NaN there stops the run
    even when the joint step's numbers stay finite."""
    import tensorflow as tf

    from trainer import data
    from trainer.gan import Gan

    config = tiny_config(tiny_data_dir, str(tmp_path), training_ratio=2, batch_size=8)
    gan = Gan(config, data.read_manifest(tiny_data_dir).spec, tf.distribute.get_strategy())
    zeros = {k: tf.constant(0.0) for k in gan.metric_names}
    monkeypatch.setattr(gan, "_joint_step", lambda real, labels, step: zeros)
    images = np.zeros((16, 28, 28, 1), np.float32)
    labels = np.zeros(16, np.int32)
    train_steps = gan.make_train_function()

    def finite_with(batch: np.ndarray) -> bool:
        return bool(one_step(gan, train_steps, batch, labels)[1])

    assert finite_with(images)
    poisoned = images.copy()
    poisoned[:8] = np.nan  # only the first, discriminator-only, sub-step sees these
    assert not finite_with(poisoned)


def test_a_slow_checkpoint_is_maintenance_not_a_slower_step(tiny_data_dir, tmp_path, monkeypatch):
    import time

    from trainer import progress
    from trainer.checkpoint import CheckpointStore

    save = CheckpointStore.save

    def slow_save(store, step):
        time.sleep(1.0)
        return save(store, step)

    monkeypatch.setattr(CheckpointStore, "save", slow_save)
    job = str(tmp_path / "job")
    loop.train(tiny_config(tiny_data_dir, job, train_steps=8, log_every=4, checkpoint_every=4))
    with open(os.path.join(job, "metrics.jsonl")) as f:
        first, second = (json.loads(line) for line in f)
    assert second["maintenance_s"] >= 1.0  # the save after step 4 belongs to the next report
    assert second["train_s"] < 1.0
    assert second["images_per_s"] == pytest.approx(4 * 16 / second["train_s"])
    assert first["time_left_s"] >= 0 and second["time_left_s"] == 0
    assert [progress.duration(s) for s in (None, 5.4, 185, 3725)] == ["?", "5s", "3m05s", "1h02m"]
