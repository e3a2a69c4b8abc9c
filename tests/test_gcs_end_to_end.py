"""Every stage against a real GCS server (gcp-storage-emulator on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from common import storage
from tests import helpers
from tests.gcs import BUCKET
from tests.trainer.test_task import SMALL, final_fingerprint, start, train

TRAIN_ARGS = ["--train_steps=24", "--checkpoint_every=4", "--deterministic", "--steps_per_call=1"]


@pytest.fixture
def bucket_data(gcs, tmp_path) -> str:
    """Tiny MNIST IDX files uploaded to the bucket, preprocessed bucket to bucket."""
    source = helpers.tiny_mnist(str(tmp_path / "idx"), n_train=256, n_test=64)
    for name in os.listdir(source):
        storage.put_file(os.path.join(source, name), f"gs://{BUCKET}/idx/{name}")
    out = f"gs://{BUCKET}/data"
    proc = helpers.run_module(
        "preprocessing.run", f"--source=gs://{BUCKET}/idx", f"--output_dir={out}", "--num_shards=2"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def remote_latest(gcs, job: str) -> int:
    return gcs.committed_step(f"{job}/checkpoints")


def assert_committed_checkpoint_complete(gcs, job: str) -> int:
    step = remote_latest(gcs, job)
    names = gcs.list(f"{job}/checkpoints/ckpt-{step}.")
    assert f"{job}/checkpoints/ckpt-{step}.index" in names
    assert any(".data-" in n for n in names)
    return step


def test_preprocessing_reads_and_writes_the_bucket(gcs, bucket_data):
    manifest = json.loads(gcs.read("data/manifest.json"))
    assert manifest["splits"]["train"]["num_examples"] == 256
    files = manifest["splits"]["train"]["files"] + manifest["splits"]["test"]["files"]
    assert sorted([*(f"data/{f}" for f in files), "data/manifest.json"]) == gcs.list("data/")
    assert manifest["source"] == f"gs://{BUCKET}/idx"


def test_training_in_the_bucket_survives_sigkill_and_resumes_on_a_fresh_machine(
    gcs, bucket_data, tmp_path
):
    reference = train(
        bucket_data, f"gs://{BUCKET}/reference", *TRAIN_ARGS, f"--scratch_dir={tmp_path / 's0'}"
    )
    assert reference.returncode == 0, reference.stderr[-3000:]

    job = f"gs://{BUCKET}/job"
    proc = start(bucket_data, job, *TRAIN_ARGS, f"--scratch_dir={tmp_path / 's1'}")
    deadline = time.monotonic() + 300
    while remote_latest(gcs, "job") < 8 and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = assert_committed_checkpoint_complete(gcs, "job")
    assert 8 <= killed_at < 24
    # A fresh machine: a new, empty scratch directory; everything comes from the bucket.
    resumed = train(bucket_data, job, *TRAIN_ARGS, f"--scratch_dir={tmp_path / 'fresh'}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # The killed run's lease object is still there; its pid is gone on this host: taken at once.
    assert f"trainer: took over {job} from trainer (pid {proc.pid} on " in resumed.stdout
    assert final_fingerprint(resumed.stdout) == final_fingerprint(reference.stdout)
    assert remote_latest(gcs, "job") == 24
    assert gcs.kept_checkpoints("job/checkpoints") == {"ckpt-16", "ckpt-20", "ckpt-24"}
    steps = [
        json.loads(line)["step"] for line in gcs.read("job/metrics.jsonl").decode().splitlines()
    ]
    assert steps == list(range(2, 25, 2))
    assert "job/flags.txt" in gcs.list("job/")
    assert any(n.startswith("job/logs/events.out.tfevents") for n in gcs.list("job/logs/"))


def test_resume_on_a_fresh_machine_keeps_the_buckets_older_checkpoints(gcs, bucket_data, tmp_path):
    """A restarted job's checkpoint manager starts empty; retention still counts the bucket's."""
    job = f"gs://{BUCKET}/job"
    args = ["--checkpoint_every=4", "--keep_checkpoints=3", "--steps_per_call=4"]
    first = train(bucket_data, job, *args, "--train_steps=12", f"--scratch_dir={tmp_path / 'a'}")
    assert first.returncode == 0, first.stderr[-3000:]
    assert gcs.kept_checkpoints("job/checkpoints") == {"ckpt-4", "ckpt-8", "ckpt-12"}
    resumed = train(bucket_data, job, *args, "--train_steps=16", f"--scratch_dir={tmp_path / 'b'}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert gcs.kept_checkpoints("job/checkpoints") == {"ckpt-8", "ckpt-12", "ckpt-16"}
    state = gcs.read("job/checkpoints/checkpoint").decode()
    assert state.count("all_model_checkpoint_paths") == 3 and '"ckpt-16"' in state


def test_outage_during_upload_keeps_the_last_commit_and_resumes_after(gcs, bucket_data, tmp_path):
    job = f"gs://{BUCKET}/job"
    args = [*TRAIN_ARGS, "--train_steps=400", "--checkpoint_every=2"]
    proc = start(bucket_data, job, *args, f"--scratch_dir={tmp_path / 's'}")
    deadline = time.monotonic() + 300
    while remote_latest(gcs, "job") < 4 and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    gcs.stop()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode != 0
    line = [ln for ln in err.splitlines() if ln.strip()][-1]
    assert line.startswith(f"trainer: error: gs://{BUCKET}: "), err[-3000:]
    assert "failed after retries" in line
    gcs.start()
    committed = assert_committed_checkpoint_complete(gcs, "job")
    assert committed >= 4
    local = tmp_path / "s" / "checkpoints"
    assert any(n.startswith("ckpt-") for n in os.listdir(local))  # the local copy is kept
    resumed = train(bucket_data, job, *args, "--train_steps=12", f"--scratch_dir={tmp_path / 'f'}")
    if committed >= 12:
        assert "(already_complete)" in resumed.stdout
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert remote_latest(gcs, "job") >= 12


def test_unknown_bucket_fails_fast_with_one_line(gcs, bucket_data, tmp_path):
    proc = train(bucket_data, "gs://no-such-bucket/job", "--train_steps=2")
    assert proc.returncode != 0
    assert helpers.error_line(proc) == (
        "trainer: error: gs://no-such-bucket: bucket does not exist "
        "(needed for gs://no-such-bucket/job)"
    )
    pre = helpers.run_module(
        "preprocessing.run", f"--source={helpers.BUNDLED_MNIST}", "--output_dir=gs://nope/data"
    )
    assert pre.returncode != 0
    assert helpers.error_line(pre).endswith(
        "gs://nope: bucket does not exist (needed for gs://nope/data)"
    )


def test_vertex_environment_sets_the_output_directories(gcs, bucket_data, tmp_path):
    env = {
        "AIP_MODEL_DIR": f"gs://{BUCKET}/vertex/model/",
        "AIP_CHECKPOINT_DIR": f"gs://{BUCKET}/vertex/checkpoints/",
        "AIP_TENSORBOARD_LOG_DIR": f"gs://{BUCKET}/tb/run1/",
    }
    proc = helpers.run_module(
        "trainer.task",
        f"--data_dir={bucket_data}",
        *SMALL,
        "--train_steps=2",
        "--checkpoint_every=2",
        f"--scratch_dir={tmp_path / 's'}",
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "vertex/checkpoints/ckpt-2.index" in gcs.list("vertex/checkpoints/")
    assert "vertex/metrics.jsonl" in gcs.list("vertex/")
    assert any(n.startswith("tb/run1/events.out.tfevents") for n in gcs.list("tb/run1/"))


def test_gcs_fuse_paths_are_plain_local_paths(tiny_data_dir, tmp_path):
    """Vertex mounts buckets at /gcs/BUCKET; such paths go through the local code path."""
    assert not storage.is_gcs("/gcs/bucket/job")
    mirror = storage.Mirror("/gcs-like/job", str(tmp_path))
    assert mirror.local == "/gcs-like/job" and not mirror.remote
    np.testing.assert_equal(storage.join("/gcs/b", "x"), "/gcs/b/x")


# --- One writer per job dir in a bucket (common/lease.py) -------------------------------------

QUICK_LEASE = {"GAN_PIPELINE_LEASE_RENEW_SECONDS": "0.5"}  # watched for 2 s before a takeover


def wait_for_commit(gcs, proc, job: str, step: int) -> None:
    deadline = time.monotonic() + 300
    while remote_latest(gcs, job) < step:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "timed out waiting for a commit"
        time.sleep(0.05)


def generation(gcs, name: str) -> int:
    return int(gcs.client().bucket(BUCKET).get_blob(name).generation)


def test_a_second_trainer_on_a_bucket_job_dir_is_refused_and_writes_nothing(
    gcs, bucket_data, tmp_path
):
    job = f"gs://{BUCKET}/job"
    args = ["--train_steps=100000", "--checkpoint_every=4"]
    first = start(bucket_data, job, *args, f"--scratch_dir={tmp_path / 'a'}", env=QUICK_LEASE)
    try:
        wait_for_commit(gcs, first, "job", 4)
        written = {name: generation(gcs, name) for name in ("job/flags.txt", "job/data.json")}
        second = train(bucket_data, job, *args, f"--scratch_dir={tmp_path / 'b'}", env=QUICK_LEASE)
        helpers.assert_one_line_error(
            second, "trainer", f"{job}: trainer (pid {first.pid} on ", "is writing it"
        )
        assert "watching 2s for a renewal" in second.stdout
        assert {name: generation(gcs, name) for name in written} == written
        assert json.loads(gcs.read("job/.lease.json"))["pid"] == first.pid
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    assert first.returncode == 0
    assert "job/.lease.json" not in gcs.list("job/")  # released at the clean exit


def test_a_paused_trainer_whose_lease_was_taken_over_commits_nothing_after(
    gcs, bucket_data, tmp_path
):
    """A zombie: paused (SIGSTOP) long enough for a second trainer to take the job over and
    finish it, then woken (SIGCONT). It must stop with one line, and the bucket's committed
    checkpoints stay the second trainer's."""
    reference = train(
        bucket_data, f"gs://{BUCKET}/reference", *TRAIN_ARGS, f"--scratch_dir={tmp_path / 'r'}"
    )
    assert reference.returncode == 0, reference.stderr[-3000:]
    job = f"gs://{BUCKET}/job"
    zombie = start(
        bucket_data, job, *TRAIN_ARGS, f"--scratch_dir={tmp_path / 'z'}", env=QUICK_LEASE
    )
    wait_for_commit(gcs, zombie, "job", 8)
    zombie.send_signal(signal.SIGSTOP)
    try:
        paused_at = remote_latest(gcs, "job")
        live = train(
            bucket_data, job, *TRAIN_ARGS, f"--scratch_dir={tmp_path / 'l'}", env=QUICK_LEASE
        )
        assert live.returncode == 0, live.stderr[-3000:]
        assert f"from trainer (pid {zombie.pid} on " in live.stdout
        assert "unrenewed for 2s" in live.stdout
        assert f"resuming at step {paused_at}" in live.stdout
        assert final_fingerprint(live.stdout) == final_fingerprint(reference.stdout)
        committed = (generation(gcs, "job/checkpoints/checkpoint"), gcs.list("job/checkpoints/"))
        metrics = gcs.read("job/metrics.jsonl")
    finally:
        zombie.send_signal(signal.SIGCONT)
    out, err = zombie.communicate(timeout=300)
    assert zombie.returncode == 2, err[-3000:]
    assert "trainer: stopped" not in out
    helpers.assert_one_line_error(
        subprocess_result(zombie, out, err), "trainer", "lease taken over by "
    )
    assert (generation(gcs, "job/checkpoints/checkpoint"), gcs.list("job/checkpoints/")) == (
        committed
    )
    assert gcs.read("job/metrics.jsonl") == metrics
    assert remote_latest(gcs, "job") == 24


def subprocess_result(proc, out: str, err: str):
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
