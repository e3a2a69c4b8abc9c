"""Cloud submission, the retraining build and the promotion gate, exercised without a cloud."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from common import storage
from tests import helpers
from tests.gcs import BUCKET

SUBSTITUTIONS = {
    "PROJECT_ID": "my-project",
    "COMMIT_SHA": "0123abc",
    "_BUCKET": "my-bucket",
    "_REGION": "europe-west4",
    "_REPOSITORY": "gan-pipeline",
    "_ACCELERATOR": "NVIDIA_L4:1",
    "_TPU": "",
    "_REPLICAS": "2",
    "_TRAIN_STEPS": "100",
}


def submit(*args: str):
    return helpers.run_module(
        "pipeline.submit", "--project=p", "--region=us-central1", "--bucket=b", "--run_id=r1", *args
    )


def dry_run_job(*args: str) -> dict:
    proc = submit("train", "--dry_run", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def parse_with_trainer_flags(args: list[str]) -> dict:
    """Parse container args with the trainer's own absl flags and config validation."""
    code = (
        "import dataclasses, json, sys\n"
        "from trainer import task\n"
        "task.FLAGS(['trainer', *sys.argv[1:]])\n"
        "print(json.dumps(dataclasses.asdict(task.config_from_flags(environ={"
        "'AIP_MODEL_DIR': 'gs://b/runs/r1/model'}))))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=helpers.REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("args", "pools", "strategy", "machine"),
    [
        ([], 1, "auto", {"machineType": "n1-standard-8"}),
        (
            ["--accelerator=NVIDIA_L4:1"],
            1,
            "auto",
            {"machineType": "g2-standard-4", "acceleratorType": "NVIDIA_L4", "acceleratorCount": 1},
        ),
        (["--accelerator=NVIDIA_TESLA_T4:2"], 1, "mirrored", {"acceleratorCount": 2}),
        (["--accelerator=NVIDIA_L4:1", "--replicas=3"], 2, "multi_worker", {}),
        (
            ["--tpu=v5litepod-8"],
            1,
            "tpu",
            {"machineType": "ct5lp-hightpu-8t", "tpuTopology": "2x4"},
        ),
    ],
    ids=["cpu", "gpu", "two-gpus", "multi-worker", "tpu"],
)
def test_custom_job_specs_validate_and_parse_as_trainer_flags(args, pools, strategy, machine):
    job = dry_run_job(*args, "--", "--train_steps=77", "--architecture=dense")
    spec = job["jobSpec"]
    assert len(spec["workerPoolSpecs"]) == pools
    if pools == 2:
        assert [p.get("replicaCount") for p in spec["workerPoolSpecs"]] == ["1", "2"]
    chief = spec["workerPoolSpecs"][0]
    for key, value in machine.items():
        assert chief["machineSpec"][key] == value
    assert spec["baseOutputDirectory"]["outputUriPrefix"] == "gs://b/runs/r1"
    assert spec["scheduling"]["restartJobOnWorkerRestart"] is True
    container = chief["containerSpec"]
    assert container["imageUri"] == "us-central1-docker.pkg.dev/p/gan-pipeline/gan-pipeline:latest"
    config = parse_with_trainer_flags(container["args"])
    assert config["strategy"] == strategy
    assert config["train_steps"] == 77 and config["architecture"] == "dense"
    assert config["data_dir"] == "gs://b/data"
    assert config["job_dir"] == "gs://b/runs/r1"  # from Vertex's AIP_MODEL_DIR


def test_service_account_and_tensorboard_reach_the_spec():
    job = dry_run_job(
        "--service_account=sa@p.iam.gserviceaccount.com",
        "--tensorboard=projects/p/locations/us-central1/tensorboards/7",
    )
    assert job["jobSpec"]["serviceAccount"] == "sa@p.iam.gserviceaccount.com"
    assert job["jobSpec"]["tensorboard"].endswith("/tensorboards/7")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tpu=v9-1"], "--tpu=v9-1: choose one of"),
        (
            ["--tpu=v5litepod-8", "--accelerator=NVIDIA_L4:1"],
            "--tpu and --accelerator are exclusive",
        ),
        (["--accelerator=NVIDIA_L4:x"], "expected TYPE:COUNT"),
    ],
)
def test_bad_submission_flags_fail_with_one_line(args, message):
    proc = submit("train", "--dry_run", *args)
    assert proc.returncode != 0
    assert message in helpers.error_line(proc)


def test_dataflow_options_are_valid_beam_options():
    from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

    proc = submit("preprocess", "--dry_run", "--image=img:1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    command = json.loads(proc.stdout)
    assert command["module"] == "preprocessing.run"
    job_args = [a for a in command["args"] if a.split("=")[0] in ("--source", "--output_dir")]
    assert job_args == ["--source=tfds", "--output_dir=gs://b/data"]
    beam_args = [a for a in command["args"] if a not in job_args]
    options = PipelineOptions(beam_args)
    assert set(options.get_all_options(retain_unknown_options=True)) == set(
        options.get_all_options()
    )
    cloud = options.view_as(GoogleCloudOptions)
    assert (cloud.project, cloud.region, cloud.temp_location) == ("p", "us-central1", "gs://b/tmp")
    assert options.get_all_options()["sdk_container_image"] == "img:1"
    assert options.get_all_options()["runner"] == "DataflowRunner"


# --- cloudbuild.yaml ----------------------------------------------------------------------------


def _substitute(value: str, subs: dict[str, str]) -> str:
    for _ in range(3):  # dynamic substitutions refer to each other
        value = re.sub(r"\$\{(\w+)\}", lambda m: subs.get(m.group(1), m.group(0)), value)
    return value


def test_cloudbuild_runs_every_stage_and_each_command_works_here():
    with open(os.path.join(helpers.REPO_ROOT, "cloudbuild.yaml")) as f:
        build = yaml.safe_load(f)
    subs = {**build["substitutions"], **SUBSTITUTIONS}
    subs = {k: _substitute(v, subs) for k, v in subs.items()}
    assert (
        subs["_IMAGE"] == "europe-west4-docker.pkg.dev/my-project/gan-pipeline/gan-pipeline:0123abc"
    )
    steps = {step["id"]: step for step in build["steps"]}
    assert list(steps) == ["build", "test", "push", "preprocess", "train", "export", "promote"]
    assert steps["build"]["args"][:2] == ["build", "--tag=${_IMAGE}"]
    assert steps["push"]["args"] == ["push", "${_IMAGE}"]
    assert steps["promote"]["allowExitCodes"] == [3]
    for step_id in ("preprocess", "train", "export", "promote"):
        step = steps[step_id]
        assert step["name"] == "${_IMAGE}" and step["entrypoint"] == "python"
        args = [_substitute(a, subs) for a in step["args"]]
        assert args[0] == "-m"
        if args[1] == "pipeline.submit":
            args = [*args[:3], "--dry_run", *(a for a in args[3:] if a != "--wait")]
        else:
            args = [*args[:2], "--help"]
        proc = helpers.run_module(args[1], *args[2:])
        if "--help" in args:  # absl prints usage and exits 1; the flags the step uses must be there
            used = {a.split("=")[0] for a in step["args"] if a.startswith("--")}
            assert used and all(flag in proc.stdout for flag in used), (step_id, proc.stdout)
            continue
        assert proc.returncode == 0, (step_id, proc.stderr[-3000:])
        if step_id == "train":
            spec = json.loads(proc.stdout)["jobSpec"]
            assert spec["baseOutputDirectory"]["outputUriPrefix"] == "gs://my-bucket/runs/0123abc"
            assert "--train_steps=100" in spec["workerPoolSpecs"][0]["containerSpec"]["args"]
    export_args = [_substitute(a, subs) for a in steps["export"]["args"]]
    assert "--job_dir=gs://my-bucket/runs/0123abc" in export_args
    promote_args = [_substitute(a, subs) for a in steps["promote"]["args"]]
    assert "--candidate=gs://my-bucket/runs/0123abc/export" in promote_args
    assert "--promoted=gs://my-bucket/models/promoted" in promote_args


# --- Dockerfile (static: no Docker engine here) ----------------------------------------------


def test_dockerfile_installs_from_the_lock_before_code_and_runs_as_non_root():
    with open(os.path.join(helpers.REPO_ROOT, "Dockerfile")) as f:
        lines = [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    text = "\n".join(lines)
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11", text, re.M)
    install = next(i for i, ln in enumerate(lines) if "pip install -r requirements.lock" in ln)
    first_code = next(i for i, ln in enumerate(lines) if ln.startswith("COPY trainer/"))
    assert lines.index("COPY requirements.lock ./") < install < first_code
    users = [ln for ln in lines if ln.startswith("USER ")]
    assert users and users[-1] not in ("USER root", "USER 0")
    assert lines.index(users[-1]) > first_code
    assert lines[-1] == 'ENTRYPOINT ["/usr/local/bin/gan-entrypoint"]'
    assert "COPY --from=beam /opt/apache/beam /opt/apache/beam" in lines
    with open(os.path.join(helpers.REPO_ROOT, ".dockerignore")) as f:
        ignored = {ln.strip() for ln in f if ln.strip() and not ln.startswith("#")}
    assert {".git", "runs"} <= ignored


def test_entrypoint_runs_the_trainer_or_hands_dataflow_to_beam_boot():
    script = os.path.join(helpers.REPO_ROOT, "docker", "entrypoint.sh")
    # The script runs `python` from PATH, as in the image: put this interpreter first.
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": path}
    trainer = subprocess.run(
        ["sh", script, "--help"],
        cwd=helpers.REPO_ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    assert "--architecture" in trainer.stdout and "--data_dir" in trainer.stdout
    beam = subprocess.run(
        ["sh", script, "--id=1-1", "--provision_endpoint=localhost:1"],
        cwd=helpers.REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert beam.returncode != 0 and "/opt/apache/beam/boot" in beam.stderr


# --- the promotion gate, against the GCS emulator ------------------------------------------


def _write_export(root: str, fd: float, score: float = 9.0, sha: str = "a", extra: str = "") -> str:
    metrics = {
        "weights_sha256": sha,
        "model": {
            "frechet_distance": fd,
            "classifier_score": score,
            "min_class_share": 0.09,
            "precision": 0.8,
            "recall": 0.7,
        },
    }
    storage.write_text(storage.join(root, "generator", "saved_model.pb"), f"model {sha}")
    if extra:
        storage.write_text(storage.join(root, extra), "x")
    storage.write_text(storage.join(root, "metrics.json"), json.dumps(metrics))
    return root


def gate(candidate: str, promoted: str):
    return helpers.run_module(
        "pipeline.promote", f"--candidate={candidate}", f"--promoted={promoted}"
    )


def test_promotion_gate_against_the_bucket(gcs):
    promoted = f"gs://{BUCKET}/models/promoted"
    first = _write_export(f"gs://{BUCKET}/runs/1/export", fd=10.0, sha="one", extra="old.png")
    proc = gate(first, promoted)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no promoted model yet" in proc.stdout
    assert json.loads(gcs.read("models/promoted/metrics.json"))["weights_sha256"] == "one"

    worse = _write_export(f"gs://{BUCKET}/runs/2/export", fd=12.0, sha="two")
    proc = gate(worse, promoted)
    assert proc.returncode == 3
    assert json.loads(gcs.read("models/promoted/metrics.json"))["weights_sha256"] == "one"
    decision = json.loads(gcs.read("runs/2/export/promotion.json"))
    assert decision["decision"] == "kept" and "not better" in decision["reasons"][0]

    regressing = _write_export(f"gs://{BUCKET}/runs/3/export", fd=5.0, score=7.0, sha="three")
    proc = gate(regressing, promoted)
    assert proc.returncode == 3
    assert "classifier_score 7.0000 < 9.0000" in proc.stdout

    better = _write_export(f"gs://{BUCKET}/runs/4/export", fd=8.0, sha="four")
    proc = gate(better, promoted)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(gcs.read("models/promoted/metrics.json"))["weights_sha256"] == "four"
    assert gcs.read("models/promoted/generator/saved_model.pb") == b"model four"
    assert "models/promoted/old.png" not in gcs.list("models/promoted/")
    assert json.loads(gcs.read("models/promoted/promotion.json"))["decision"] == "promoted"


def test_promotion_gate_rejects_corrupt_metrics(gcs):
    candidate = f"gs://{BUCKET}/runs/9/export"
    storage.write_text(storage.join(candidate, "metrics.json"), "{not json")
    proc = gate(candidate, f"gs://{BUCKET}/models/promoted")
    assert proc.returncode == 2
    line = helpers.error_line(proc)
    assert line.startswith(f"promote: error: {candidate}/metrics.json: corrupt metrics")
    assert gcs.list("models/promoted/") == []


def test_promotion_gate_works_on_local_paths(tmp_path):
    candidate = _write_export(str(tmp_path / "new"), fd=3.0)
    proc = gate(candidate, str(tmp_path / "promoted"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "promoted" / "metrics.json").exists()
