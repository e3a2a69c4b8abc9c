r"""Submit the pipeline's stages to Google Cloud: preprocessing to Dataflow, training to Vertex AI.

    python -m pipeline.submit preprocess --project=P --region=R --bucket=B
    python -m pipeline.submit train --project=P --region=R --bucket=B \
        --accelerator=NVIDIA_L4:1 --replicas=1 [--tpu=v5litepod-8] [--dry_run] [-- TRAINER FLAGS]

``--dry_run`` prints what would be submitted (the Dataflow command line, or the Vertex AI
CustomJob as JSON) and exits. The CustomJob is built and validated with the API's own types
(``google.cloud.aiplatform_v1.types.CustomJob``); its container args are trainer flags.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
import subprocess
import sys
import time
from collections.abc import Sequence

from absl import app, flags

from common import cli
from common import settings as common_settings
from common.cli import UserError
from common.settings import setting
from trainer import presets

FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class SubmitConfig:
    project: str = setting(None, "Google Cloud project id.")
    region: str = setting("us-central1", "Region for Dataflow and Vertex AI.")
    bucket: str = setting(None, "Bucket for data, runs and staging (name, no gs://).")
    image: str = setting(
        None,
        "Container image, its tag ending in -pyX.Y, the Python it holds (default: "
        "REGION-docker.pkg.dev/PROJECT/gan-pipeline/gan-pipeline:latest-pyX.Y, this Python's).",
    )
    run_id: str = setting(None, "Run name under gs://BUCKET/runs/ (default: UTC timestamp).")
    source: str = setting("tfds", "preprocess: MNIST source (tfds, or gs:// IDX directory).")
    machine_type: str = setting(None, "train: VM type (default: by accelerator).")
    accelerator: str = setting("", "train: TYPE:COUNT, e.g. NVIDIA_L4:1; empty for CPU.")
    replicas: int = setting(1, "train: machines; > 1 trains multi-worker (chief + workers).")
    tpu: str = setting("", "train: a TPU slice, e.g. v5litepod-8 (instead of --accelerator).")
    service_account: str = setting("", "train: service account the job runs as.")
    tensorboard: str = setting("", "train: Vertex TensorBoard resource name, to stream logs.")
    dry_run: bool = setting(False, "Print the job and exit without submitting.")
    wait: bool = setting(False, "train: wait for the job to finish; non-zero exit if it fails.")


# Vertex AI TPU slices: machine type and topology.
TPU_MACHINES = {
    "v5litepod-1": ("ct5lp-hightpu-1t", "1x1"),
    "v5litepod-4": ("ct5lp-hightpu-4t", "2x2"),
    "v5litepod-8": ("ct5lp-hightpu-8t", "2x4"),
}
# A machine type that takes each accelerator (per count up to 8 is the same family).
GPU_MACHINES = {
    "NVIDIA_L4": "g2-standard-{n}",
    "NVIDIA_TESLA_T4": "n1-standard-{n}",
    "NVIDIA_TESLA_V100": "n1-standard-{n}",
    "NVIDIA_TESLA_A100": "a2-highgpu-{count}g",
}
CPU_MACHINE = "n1-standard-8"
TERMINAL_STATES = {
    "JOB_STATE_SUCCEEDED",
    "JOB_STATE_FAILED",
    "JOB_STATE_CANCELLED",
    "JOB_STATE_EXPIRED",
}


class SubmitError(UserError, ValueError):
    """A bad submission flag; one line."""


# The Dockerfile's PYTHON_VERSION, as cloudbuild.yaml tags the image: `gan-pipeline:COMMIT-py3.13`.
IMAGE_PYTHON_TAG = re.compile(r"(?:^|[-_.])py(\d+\.\d+)$")


def launcher_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def image_python(image: str) -> str | None:
    """The Python version an image holds, read from its tag; None when the tag does not say."""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    match = IMAGE_PYTHON_TAG.search(name.partition(":")[2])
    return match.group(1) if match else None


def check_image_python(image: str) -> None:
    """Beam runs the launcher's pickled pipeline in the image's SDK harness: their Python minor
    versions must match, or the job starts and fails on the workers."""
    held, here = image_python(image), launcher_python()
    if held is None:
        raise SubmitError(
            f"--image={image}: its tag does not say which Python it holds (tag it …-py{here}, "
            "the Dockerfile's PYTHON_VERSION); Dataflow needs the launcher's Python in the image"
        )
    if held != here:
        raise SubmitError(
            f"--image={image} holds Python {held} and this launcher runs {here}: Dataflow needs "
            f"the same version on both; launch from Python {held}, or build the image with "
            f"--build-arg=PYTHON_VERSION={here}"
        )


@dataclasses.dataclass(frozen=True)
class Target:
    project: str
    region: str
    bucket: str
    image: str
    run_id: str

    @property
    def data_dir(self) -> str:
        return f"gs://{self.bucket}/data"

    @property
    def classifier_dir(self) -> str:
        return f"gs://{self.bucket}/classifier"

    @property
    def run_dir(self) -> str:
        return f"gs://{self.bucket}/runs/{self.run_id}"


def target_of(config: SubmitConfig) -> Target:
    """Where a submission runs and writes; the defaults filled in."""
    if not config.project or not config.bucket:
        raise SubmitError("--project and --bucket are required")
    if config.bucket.startswith("gs://"):
        raise SubmitError(f"--bucket={config.bucket}: give the bucket name, without gs://")
    image = config.image or (
        f"{config.region}-docker.pkg.dev/{config.project}/gan-pipeline/gan-pipeline:"
        f"latest-py{launcher_python()}"
    )
    run_id = config.run_id or datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    return Target(config.project, config.region, config.bucket, image, run_id)


# --- Dataflow ---------------------------------------------------------------------------------


def dataflow_args(target: Target, source: str) -> list[str]:
    """``preprocessing.run`` arguments for a Dataflow job running in the project's image."""
    return [
        f"--source={source}",
        f"--output_dir={target.data_dir}",
        "--runner=DataflowRunner",
        f"--project={target.project}",
        f"--region={target.region}",
        f"--temp_location=gs://{target.bucket}/tmp",
        f"--staging_location=gs://{target.bucket}/staging",
        f"--job_name=gan-preprocess-{target.run_id}",
        f"--sdk_container_image={target.image}",
        "--sdk_location=container",
    ]


# --- Vertex AI ----------------------------------------------------------------------------------


def _parse_accelerator(spec: str) -> tuple[str, int]:
    name, _, count = spec.partition(":")
    try:
        return name, int(count or 1)
    except ValueError as e:
        raise SubmitError(f"--accelerator={spec}: expected TYPE:COUNT, e.g. NVIDIA_L4:1") from e


def machine_spec(accelerator: str, tpu: str, machine_type: str | None) -> dict:
    if tpu:
        if tpu not in TPU_MACHINES:
            raise SubmitError(f"--tpu={tpu}: choose one of {sorted(TPU_MACHINES)}")
        machine, topology = TPU_MACHINES[tpu]
        return {"machine_type": machine_type or machine, "tpu_topology": topology}
    if not accelerator:
        return {"machine_type": machine_type or CPU_MACHINE}
    name, count = _parse_accelerator(accelerator)
    family = GPU_MACHINES.get(name, "n1-standard-{n}")
    machine = machine_type or family.format(n=max(4, 4 * count), count=count)
    return {"machine_type": machine, "accelerator_type": name, "accelerator_count": count}


def trainer_args(
    target: Target, accelerator: str, tpu: str, replicas: int, extra: Sequence[str]
) -> list[str]:
    """The container's args: trainer flags. Output dirs come from Vertex's AIP_* variables.

    The model is the measured preset (``trainer/presets.py``) unless ``extra`` names another;
    what the machine changes is spelled out here: the strategy, and the precision its device
    supports (``auto``). ``extra`` (e.g. ``--train_steps``, ``--batch_size``) comes last and wins.
    """
    _, count = _parse_accelerator(accelerator) if accelerator else ("", 0)
    if tpu:
        strategy = "tpu"
    elif replicas > 1:
        strategy = "multi_worker"
    elif count > 1:
        strategy = "mirrored"
    else:
        strategy = "auto"
    return [
        f"--data_dir={target.data_dir}",
        f"--strategy={strategy}",
        "--mixed_precision=auto",
        f"--classifier_dir={target.classifier_dir}",
        *presets.with_default(extra),
    ]


def check_trainer_args(args: Sequence[str], run_dir: str) -> None:
    """Refuse here what the trainer would refuse on the paid machine: ``args`` read with the
    trainer's own flags and validation, in the environment Vertex AI gives the job."""
    from trainer import command_line  # imports TensorFlow: only `train` pays for it

    command_line.parse(
        args,
        {
            "AIP_MODEL_DIR": f"{run_dir}/model/",
            "AIP_CHECKPOINT_DIR": f"{run_dir}/checkpoints/",
            "AIP_TENSORBOARD_LOG_DIR": f"{run_dir}/logs/",
        },
    )


def custom_job(target: Target, config: SubmitConfig, extra_args: Sequence[str]):
    """The Vertex AI CustomJob, validated by the API's own message types."""
    from google.cloud import aiplatform_v1

    accelerator, tpu, replicas = config.accelerator, config.tpu, config.replicas
    if replicas < 1:
        raise SubmitError("--replicas must be >= 1")
    if tpu and accelerator:
        raise SubmitError("--tpu and --accelerator are exclusive")
    args = trainer_args(target, accelerator, tpu, replicas, extra_args)
    check_trainer_args(args, target.run_dir)
    pool = {
        "machine_spec": machine_spec(accelerator, tpu, config.machine_type),
        "replica_count": 1,
        "container_spec": {"image_uri": target.image, "args": args},
    }
    pools = [pool] + ([{**pool, "replica_count": replicas - 1}] if replicas > 1 else [])
    spec = {
        "worker_pool_specs": pools,
        "base_output_directory": {"output_uri_prefix": target.run_dir},
        "scheduling": {"restart_job_on_worker_restart": True},
    }
    if config.service_account:
        spec["service_account"] = config.service_account
    if config.tensorboard:
        spec["tensorboard"] = config.tensorboard
    try:
        return aiplatform_v1.types.CustomJob(
            display_name=f"gan-train-{target.run_id}", job_spec=spec
        )
    except (ValueError, TypeError, KeyError) as e:
        raise SubmitError(f"invalid CustomJob spec: {e}") from e


def custom_job_json(job) -> dict:
    from google.cloud import aiplatform_v1

    return json.loads(
        aiplatform_v1.types.CustomJob.to_json(
            job, use_integers_for_enums=False, always_print_fields_with_no_presence=False
        )
    )


def submit_custom_job(target: Target, job, wait: bool) -> str:
    from google.cloud import aiplatform_v1

    client = aiplatform_v1.JobServiceClient(
        client_options={"api_endpoint": f"{target.region}-aiplatform.googleapis.com"}
    )
    created = client.create_custom_job(
        parent=f"projects/{target.project}/locations/{target.region}", custom_job=job
    )
    print(f"submit: created {created.name}", flush=True)
    while wait:
        state = client.get_custom_job(name=created.name).state.name
        if state in TERMINAL_STATES:
            if state != "JOB_STATE_SUCCEEDED":
                raise SubmitError(f"{created.name}: ended in {state}")
            break
        time.sleep(60)
    return created.name


def main(argv: Sequence[str]) -> None:
    command, extra = (argv[1], [a for a in argv[2:] if a != "--"]) if len(argv) > 1 else ("", [])
    config = common_settings.from_flags(SubmitConfig, FLAGS)
    target = target_of(config)
    if command == "preprocess":
        check_image_python(target.image)
        args = dataflow_args(target, config.source) + extra
        if config.dry_run:
            print(json.dumps({"module": "preprocessing.run", "args": args}, indent=2))
            return
        sys.exit(subprocess.run([sys.executable, "-m", "preprocessing.run", *args]).returncode)
    if command == "train":
        job = custom_job(target, config, extra)
        if config.dry_run:
            print(json.dumps(custom_job_json(job), indent=2))
            return
        try:
            submit_custom_job(target, job, config.wait)
        except SubmitError:
            raise
        except Exception as e:
            raise SubmitError(f"Vertex AI ({target.region}): {cli.one_line(e)}") from e
        print(f"submit: outputs in {target.run_dir}")
        return
    raise SubmitError(f"command {command!r}: use 'preprocess' or 'train'")


if __name__ == "__main__":
    common_settings.define_flags(SubmitConfig, FLAGS)
    app.run(cli.guarded("submit", main), flags_parser=cli.flags_parser("submit", known_only=True))
