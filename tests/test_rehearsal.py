"""The retraining build rehearsed end to end: cloudbuild.yaml's steps, Dataflow and Vertex AI
played here against the GCS emulator (see ``tests/rehearsal.py`` for what is played and how)."""

from __future__ import annotations

import json
import os

import pytest

from common import storage
from tests import helpers
from tests.gcs import BUCKET
from tests.rehearsal import Build, VertexJob, run_dataflow_locally

SUBSTITUTIONS = {
    "PROJECT_ID": "rehearsal-project",
    "_BUCKET": BUCKET,
    "_REGION": "us-central1",
    "_ACCELERATOR": "",  # CPU machines
    "_TPU": "",
    "_PRESET": "smoke",  # small shapes: the rehearsal proves the path, not the model
    "_BATCH_SIZE": "16",
}
PREEMPT_AFTER_STEP = 8
# Long enough for the smoke model to beat a 4-step one in a feature space worth the name (60
# steps did not, against the classifier trained with shifts for 30 epochs).
FIRST_BUILD_STEPS = 200
pytestmark = pytest.mark.rehearsal


@pytest.fixture
def bucket_source(gcs, tmp_path) -> str:
    """Tiny MNIST IDX files in the bucket: the build's --source."""
    source = helpers.tiny_mnist(str(tmp_path / "idx"), n_train=256, n_test=64)
    for name in os.listdir(source):
        storage.put_file(os.path.join(source, name), f"gs://{BUCKET}/idx/{name}")
    return f"gs://{BUCKET}/idx"


def play_build(
    gcs, source: str, machines: str, commit: str, replicas: int, steps: int, preempt: bool
):
    """Every step after the image build and push, as Cloud Build runs them."""
    build = Build(
        {
            **SUBSTITUTIONS,
            "COMMIT_SHA": commit,
            "_SOURCE": source,
            "_REPLICAS": str(replicas),
            "_TRAIN_STEPS": str(steps),
        }
    )
    env = gcs.env()
    run_dataflow_locally(build.dry_run("preprocess", env), env)

    job = VertexJob(build.dry_run("train", env), env, machines)
    assert len(job.replicas()) == replicas
    checkpoints = f"runs/{commit}/checkpoints"
    job.start()
    if preempt:
        job.wait_until(lambda: gcs.committed_step(checkpoints) >= PREEMPT_AFTER_STEP)
        job.preempt()
        stopped = gcs.committed_step(checkpoints)
        assert PREEMPT_AFTER_STEP <= stopped < steps, stopped
        job.start()  # restartJobOnWorkerRestart: fresh machines, the bucket holds the state
    outputs = job.finish()
    assert gcs.committed_step(checkpoints) == steps
    fingerprints = {out.strip().splitlines()[-1].rsplit(" ", 1)[1] for out in outputs}
    assert len(fingerprints) == 1, outputs  # every replica holds the same weights

    build.run("export", env)
    return build.run("promote", env)


def _flags(gcs, commit: str) -> list[str]:
    return gcs.read(f"runs/{commit}/flags.txt").decode().splitlines()


@pytest.mark.parametrize("replicas", [1, 2], ids=["one-replica", "two-replicas"])
def test_two_builds_in_a_row_promote_the_first_model_and_keep_out_a_worse_one(
    gcs, bucket_source, tmp_path, replicas
):
    promote = play_build(
        gcs, bucket_source, str(tmp_path), "build1", replicas, FIRST_BUILD_STEPS, preempt=True
    )
    assert promote.returncode == 0, promote.stdout
    run = f"gs://{BUCKET}/runs/build1"
    # flags.txt holds the resolved configuration, the directories Vertex gave it included, so
    # the export step (which gets only --job_dir) rebuilds the model that was trained.
    flags = _flags(gcs, "build1")
    assert f"--job_dir={run}" in flags and f"--checkpoint_dir={run}/checkpoints" in flags
    assert "--preset=smoke" in flags and "--batch_size=16" in flags
    assert f"--train_steps={FIRST_BUILD_STEPS}" in flags
    # Preempted and restarted on empty disks, the job still keeps --keep_checkpoints of them.
    last = FIRST_BUILD_STEPS
    assert gcs.kept_checkpoints("runs/build1/checkpoints") == {
        f"ckpt-{last - 8}",
        f"ckpt-{last - 4}",
        f"ckpt-{last}",
    }
    steps = [
        json.loads(line)["step"] for line in gcs.read("runs/build1/metrics.jsonl").splitlines()
    ]
    assert steps == list(range(4, last + 1, 4))
    assert any(
        n.startswith("runs/build1/logs/events.out.tfevents") for n in gcs.list("runs/build1/")
    )
    pointer = json.loads(gcs.read("models/gan/promotion.json"))
    assert pointer["decision"] == "promoted" and pointer["commit"] == "build1"
    model_dir = pointer["model_dir"]
    assert model_dir == f"gs://{BUCKET}/models/gan/versions/{pointer['version']}"
    exported = gcs.list("runs/build1/export/")
    promoted = gcs.list(model_dir.split(f"{BUCKET}/", 1)[1] + "/")
    assert {n.split("/export/", 1)[1] for n in exported} - {"promotion.json"} <= {
        n.split(pointer["version"] + "/", 1)[1] for n in promoted
    }

    if replicas > 1:
        return  # the second build's gate is the same command; one replica count shows it
    promote = play_build(gcs, bucket_source, str(tmp_path), "build2", 1, steps=4, preempt=False)
    assert promote.returncode == 3, promote.stdout  # kept: allowed by the build, not a failure
    decision = json.loads(gcs.read("runs/build2/export/promotion.json"))
    assert decision["decision"] == "kept" and decision["commit"] == "build2"
    assert decision["champion"]["model_dir"] == model_dir
    fd = decision["metrics"]["frechet_distance"]
    assert fd["direction"] == "lower" and fd["champion"] is not None
    assert decision["reasons"]
    assert json.loads(gcs.read("models/gan/promotion.json"))["model_dir"] == model_dir
