"""Cloud submission, the retraining build and the promotion gate, exercised without a cloud."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys

import pytest

from common import storage
from tests import helpers
from tests.gcs import BUCKET
from tests.rehearsal import Build

PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"  # this launcher's, as in the image
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
    from trainer import command_line

    config = command_line.parse(args, {"AIP_MODEL_DIR": "gs://b/runs/r1/model"})
    return dataclasses.asdict(config)


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
    assert container["imageUri"] == (
        f"us-central1-docker.pkg.dev/p/gan-pipeline/gan-pipeline:latest-py{PYTHON}"
    )
    config = parse_with_trainer_flags(container["args"])
    assert config["strategy"] == strategy
    assert config["train_steps"] == 77 and config["architecture"] == "dense"
    assert config["data_dir"] == "gs://b/data"
    assert config["job_dir"] == "gs://b/runs/r1"  # from Vertex's AIP_MODEL_DIR
    # The measured model (trainer/presets.py), not the trainer's bare defaults.
    assert config["preset"] == "pipeline" and config["conditional"] is True
    assert (config["model_width"], config["d_width"]) == (16, 32) and config["eval_every"] > 0
    assert config["mixed_precision"] == "auto" and config["classifier_dir"] == "gs://b/classifier"


def test_a_preset_given_to_the_job_replaces_the_default_one():
    job = dry_run_job("--", "--preset=tutorial")
    args = job["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["args"]
    assert [a for a in args if a.startswith("--preset")] == ["--preset=tutorial"]
    config = parse_with_trainer_flags(args)
    assert config["conditional"] is False and config["model_width"] == 64


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


@pytest.mark.parametrize(
    ("trainer_args", "message"),
    [
        (["--train_steps=abc"], "flag --train_steps=abc: invalid literal"),
        (["--batch_size=-3"], "--batch_size must be >= 1"),
        (["--loss=hinge2"], "flag --loss=hinge2: value should be one of"),
        (["--ema_decay=0.999"], "--ema_decay was replaced by --ema_kimg"),
        (["stray"], "unexpected arguments stray"),
    ],
)
def test_bad_trainer_flags_are_refused_before_a_job_is_built(trainer_args, message):
    proc = submit("train", "--dry_run", "--", *trainer_args)
    helpers.assert_one_line_error(proc, "submit", message)
    assert proc.stdout == ""  # no job printed, none submitted


def test_dataflow_options_are_valid_beam_options():
    from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

    proc = submit("preprocess", "--dry_run", f"--image=img:1-py{PYTHON}")
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
    assert cloud.staging_location == "gs://b/staging"
    assert options.get_all_options()["sdk_container_image"] == f"img:1-py{PYTHON}"
    assert options.get_all_options()["runner"] == "DataflowRunner"


# --- cloudbuild.yaml (its steps run for real in tests/test_rehearsal.py) ----------------------


def test_cloudbuild_steps_in_order_with_the_image_and_the_gates_exit_codes():
    build = Build(SUBSTITUTIONS)
    assert (
        build.subs["_IMAGE"]
        == f"europe-west4-docker.pkg.dev/my-project/gan-pipeline/gan-pipeline:0123abc-py{PYTHON}"
    )
    assert list(build.steps) == [
        "build",
        "test",
        "push",
        "preprocess",
        "train",
        "export",
        "promote",
    ]
    assert build.steps["build"]["args"][:2] == ["build", "--tag=${_IMAGE}"]
    assert build.steps["push"]["args"] == ["push", "${_IMAGE}"]
    assert build.allowed_exit_codes("promote") == {0, 3}
    for step_id in ("test", "preprocess", "train", "export", "promote"):
        assert build.steps[step_id]["name"] == "${_IMAGE}"
    _, promote = build.module_args("promote")
    assert "--promoted=gs://my-bucket/models/gan" in promote and "--commit=0123abc" in promote
    _, train = build.module_args("train")
    assert train[train.index("--") + 1 :] == [
        "--preset=auto",
        "--batch_size=64",
        "--train_steps=100",
    ]


# --- Dockerfile (static: no Docker engine here) ----------------------------------------------


def test_dockerfile_installs_from_the_lock_before_code_and_runs_as_non_root():
    with open(os.path.join(helpers.REPO_ROOT, "Dockerfile")) as f:
        lines = [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    text = "\n".join(lines)
    assert re.search(r"^FROM python:\$\{PYTHON_VERSION\}-slim", text, re.M)
    install = next(
        i
        for i, ln in enumerate(lines)
        if "pip install --require-hashes --no-deps -r requirements.lock" in ln
    )
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

PROMOTED = f"gs://{BUCKET}/models/gan"


def _write_export(
    root: str, fd: float, score: float = 9.0, sha: str = "a", recall: float = 0.7
) -> str:
    metrics = {
        "weights_sha256": sha,
        "model": {
            "frechet_distance": fd,
            "classifier_score": score,
            "min_class_share": 0.09,
            "precision": 0.8,
            "recall": recall,
        },
    }
    storage.write_text(storage.join(root, "generator", "saved_model.pb"), f"model {sha}")
    storage.write_text(storage.join(root, "manifest.json"), json.dumps({"fingerprint": "data1"}))
    storage.write_text(storage.join(root, "metrics.json"), json.dumps(metrics))
    return root


def gate(candidate: str, promoted: str = PROMOTED, *args: str):
    return helpers.run_module(
        "pipeline.promote", f"--candidate={candidate}", f"--promoted={promoted}", *args
    )


def pointer(gcs) -> dict:
    return json.loads(gcs.read("models/gan/promotion.json"))


def test_promotion_gate_against_the_bucket(gcs):
    first = _write_export(f"gs://{BUCKET}/runs/1/export", fd=10.0, sha="one")
    proc = gate(first, PROMOTED, "--commit=c1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no promoted model yet" in proc.stdout
    record = pointer(gcs)
    assert record["model_dir"] == f"{PROMOTED}/versions/one" and record["commit"] == "c1"
    assert record["data_fingerprint"] == "data1"
    assert gcs.read("models/gan/versions/one/generator/saved_model.pb") == b"model one"

    worse = _write_export(f"gs://{BUCKET}/runs/2/export", fd=12.0, sha="two")
    proc = gate(worse)
    assert proc.returncode == 3
    assert pointer(gcs)["model_dir"] == f"{PROMOTED}/versions/one"
    decision = json.loads(gcs.read("runs/2/export/promotion.json"))
    assert decision["decision"] == "kept" and "not better" in decision["reasons"][0]
    assert decision["metrics"]["frechet_distance"] == {
        "direction": "lower",
        "challenger": 12.0,
        "champion": 10.0,
    }
    assert decision["champion"]["version"] == "one"
    assert not gcs.list("models/gan/versions/two")

    regressing = _write_export(f"gs://{BUCKET}/runs/3/export", fd=5.0, score=7.0, sha="three")
    proc = gate(regressing)
    assert proc.returncode == 3
    assert "classifier_score 7.0000 < 9.0000" in proc.stdout

    better = _write_export(f"gs://{BUCKET}/runs/4/export", fd=8.0, sha="four")
    proc = gate(better)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert pointer(gcs)["model_dir"] == f"{PROMOTED}/versions/four"
    assert gcs.read("models/gan/versions/four/generator/saved_model.pb") == b"model four"
    # The previous version is still there, servable: the gate never deletes.
    assert gcs.read("models/gan/versions/one/generator/saved_model.pb") == b"model one"


def test_the_gate_never_deletes_or_overwrites_what_it_did_not_write(gcs):
    foreign = {
        "models/gan/README.md": b"the team's notes",
        "models/gan/generator/saved_model.pb": b"someone's model",
        "models/gan/versions/abc/keep.txt": b"not the gate's",
    }
    bucket = gcs.client().bucket(BUCKET)
    for name, data in foreign.items():
        bucket.blob(name).upload_from_string(data)
    assert gate(_write_export(f"gs://{BUCKET}/runs/1/export", fd=10.0, sha="one")).returncode == 0
    assert gate(_write_export(f"gs://{BUCKET}/runs/2/export", fd=5.0, sha="two")).returncode == 0
    for name, data in foreign.items():
        assert gcs.read(name) == data
    # A version prefix holding objects the gate did not write is refused, not overwritten.
    proc = gate(_write_export(f"gs://{BUCKET}/runs/3/export", fd=1.0, sha="abc"))
    assert proc.returncode == 2
    assert helpers.error_line(proc) == (
        f"promote: error: {PROMOTED}/versions/abc: holds objects the gate did not write; "
        "refusing to overwrite"
    )
    assert gcs.read("models/gan/versions/abc/keep.txt") == b"not the gate's"
    assert pointer(gcs)["model_dir"] == f"{PROMOTED}/versions/two"


@pytest.mark.parametrize(
    ("promoted", "message"),
    [
        (f"gs://{BUCKET}", "a bucket or filesystem root"),
        (f"gs://{BUCKET}/", "a bucket or filesystem root"),
        (f"gs://{BUCKET}/runs/1", "overlap"),
        (f"gs://{BUCKET}/runs/1/export/promoted", "overlap"),
    ],
)
def test_the_gate_refuses_a_bucket_root_and_overlapping_prefixes(gcs, promoted, message):
    candidate = _write_export(f"gs://{BUCKET}/runs/1/export", fd=10.0, sha="one")
    before = gcs.list("")
    proc = gate(candidate, promoted)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr
    assert gcs.list("") == before


def test_a_crash_between_copying_and_the_switch_keeps_the_old_model_and_the_rerun_repairs(
    gcs, monkeypatch
):
    from pipeline import promote

    old = _write_export(f"gs://{BUCKET}/runs/1/export", fd=10.0, sha="one")
    assert promote.promote(old, PROMOTED, 0.02)[0]
    new = _write_export(f"gs://{BUCKET}/runs/2/export", fd=5.0, sha="two")
    write_if_generation = storage.write_if_generation

    def crash_at_the_switch(path: str, data: bytes, expected: int) -> int:
        if path == f"{PROMOTED}/promotion.json":
            raise KeyboardInterrupt("the machine went away")
        return write_if_generation(path, data, expected)

    monkeypatch.setattr(storage, "write_if_generation", crash_at_the_switch)
    with pytest.raises(KeyboardInterrupt):
        promote.promote(new, PROMOTED, 0.02)
    monkeypatch.setattr(storage, "write_if_generation", write_if_generation)
    assert gcs.list("models/gan/versions/two/")  # copied...
    assert pointer(gcs)["model_dir"] == f"{PROMOTED}/versions/one"  # ...but not switched
    assert gcs.read("models/gan/versions/one/generator/saved_model.pb") == b"model one"

    promoted, _ = promote.promote(new, PROMOTED, 0.02)
    assert promoted and pointer(gcs)["model_dir"] == f"{PROMOTED}/versions/two"
    assert gcs.read("models/gan/versions/two/generator/saved_model.pb") == b"model two"


def test_a_pointer_switched_by_another_writer_while_deciding_is_not_overwritten(gcs, monkeypatch):
    """The switch replaces only the pointer version the decision was made against."""
    from pipeline import promote

    promote.promote(
        _write_export(f"gs://{BUCKET}/runs/1/export", fd=10.0, sha="one"), PROMOTED, 0.02
    )
    new = _write_export(f"gs://{BUCKET}/runs/2/export", fd=5.0, sha="two")
    publish = promote.publish_version
    elsewhere = {"version": "other", "model_dir": f"gs://{BUCKET}/elsewhere"}

    def another_switch_meanwhile(candidate_dir: str, promoted_dir: str, version: str) -> str:
        storage.write_text(f"{PROMOTED}/promotion.json", json.dumps(elsewhere))
        return publish(candidate_dir, promoted_dir, version)

    monkeypatch.setattr(promote, "publish_version", another_switch_meanwhile)
    with pytest.raises(promote.GateError, match="another promotion switched the pointer"):
        promote.promote(new, PROMOTED, 0.02)
    assert pointer(gcs)["model_dir"] == elsewhere["model_dir"]


def test_promotion_gate_rejects_corrupt_metrics(gcs):
    candidate = f"gs://{BUCKET}/runs/9/export"
    storage.write_text(storage.join(candidate, "metrics.json"), "{not json")
    proc = gate(candidate)
    assert proc.returncode == 2
    line = helpers.error_line(proc)
    assert line.startswith(f"promote: error: {candidate}/metrics.json: corrupt metrics")
    assert gcs.list("models/gan/") == []


def test_promotion_gate_works_on_local_paths(tmp_path):
    candidate = _write_export(str(tmp_path / "new"), fd=3.0, sha="local")
    proc = gate(candidate, str(tmp_path / "promoted"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((tmp_path / "promoted" / "promotion.json").read_text())
    assert (tmp_path / "promoted" / "versions" / "local" / "metrics.json").exists()
    assert record["model_dir"] == str(tmp_path / "promoted" / "versions" / "local")


def _metrics(fd: float, **others: float) -> dict:
    values = dict.fromkeys(("classifier_score", "min_class_share", "precision", "recall"), 1.0)
    return {"model": {"frechet_distance": fd, **values, **others}}


@pytest.mark.parametrize(
    ("candidate", "champion", "promoted"),
    [
        (_metrics(5.0), None, True),
        (_metrics(float("nan")), None, False),  # a NaN model is never promoted
        (_metrics(5.0, recall=float("inf")), _metrics(9.0), False),
        (_metrics(50.0), _metrics(float("nan")), True),  # a NaN champion does not block forever
        (_metrics(5.0), _metrics(9.0), True),
        (_metrics(9.0), _metrics(9.0), False),
        (_metrics(5.0, recall=0.985), _metrics(9.0), True),  # within 2%
        (_metrics(5.0, recall=0.97), _metrics(9.0), False),
        # The kernel distance is reported, not gated: near zero, "2% worse" is noise.
        (_metrics(5.0, kernel_distance=0.002), _metrics(9.0, kernel_distance=0.001), True),
    ],
)
def test_decide(candidate, champion, promoted):
    from pipeline.promote import decide

    assert decide(candidate, champion, 0.02)[0] is promoted


def test_bad_gate_flags_fail_with_one_line(gcs):
    candidate = _write_export(f"gs://{BUCKET}/runs/1/export", fd=10.0)
    for args, message in (
        (["--tolerance=-0.5"], "--tolerance=-0.5: must be a finite number >= 0"),
        (["--model_registry=models/gan"], "--model_registry=models/gan: expected projects/"),
    ):
        proc = gate(candidate, PROMOTED, *args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert message in helpers.error_line(proc)


def test_model_registry_requests_for_a_first_model_a_winner_and_a_loser(gcs):
    registry = "projects/p/locations/us-central1/models/mnist-gan"
    args = (f"--model_registry={registry}", "--dry_run", "--commit=abc123")

    def run(n: int, fd: float) -> dict:
        export = _write_export(f"gs://{BUCKET}/runs/{n}/export", fd=fd, sha=f"sha{n}")
        proc = gate(export, PROMOTED, *args)
        assert proc.returncode in (0, 3), proc.stderr[-2000:]
        record = json.loads(gcs.read(f"runs/{n}/export/promotion.json"))["model_registry"]
        assert record["dry_run"] is True
        return record["requests"]

    first = run(1, 10.0)["upload_model"]
    assert first["parent"] == "projects/p/locations/us-central1"
    assert first["modelId"] == "mnist-gan" and "parentModel" not in first
    assert first["model"]["versionAliases"] == ["default", "build-abc123"]
    assert first["model"]["artifactUri"] == f"{PROMOTED}/versions/sha1/generator"

    winner = run(2, 5.0)
    upload = winner["upload_model"]
    assert upload["parentModel"] == registry and "modelId" not in upload
    assert "default" in upload["model"]["versionAliases"]
    assert upload["model"]["labels"] == {"gate-decision": "promoted", "weights": "sha2"}
    evaluation = winner["import_model_evaluation"]
    assert evaluation["parent"].startswith(f"{registry}@")
    assert evaluation["modelEvaluation"]["metrics"]["frechet_distance"] == 5.0

    loser = run(3, 7.0)["upload_model"]
    assert loser["parentModel"] == registry
    assert "default" not in loser["model"]["versionAliases"]  # the alias stays on the winner
    assert loser["model"]["artifactUri"] == f"gs://{BUCKET}/runs/3/export/generator"
    assert loser["model"]["labels"]["gate-decision"] == "kept"


def other_python() -> str:
    return next(v for v in ("3.11", "3.12", "3.13") if v != PYTHON)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (f"img:1-py{other_python()}", f"holds Python {other_python()} and this launcher runs"),
        ("img:1", "its tag does not say which Python it holds"),
        ("img@sha256:" + "0" * 64, "its tag does not say which Python it holds"),
    ],
    ids=["other-python", "untagged", "digest"],
)
def test_preprocess_refuses_an_image_of_another_python_before_any_job(image, message):
    """Beam needs the launcher's Python minor version in the SDK container: a mismatch would
    start a Dataflow job whose workers fail."""
    proc = submit("preprocess", "--dry_run", f"--image={image}")
    helpers.assert_one_line_error(proc, "submit", message)
    assert proc.stdout == ""  # no command printed, nothing launched


def test_the_default_image_is_the_one_built_for_the_launchers_python():
    proc = submit("preprocess", "--dry_run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (image,) = [a for a in json.loads(proc.stdout)["args"] if a.startswith("--sdk_container_image")]
    assert image.endswith(f"gan-pipeline:latest-py{PYTHON}")
