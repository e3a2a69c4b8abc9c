"""What Cloud Build and Vertex AI run, run here: the build's steps read from ``cloudbuild.yaml``.

Nothing is retyped. A step's command is its ``entrypoint`` and ``args`` with the build's
substitutions applied, run in this checkout (the image's ``/app``). Two services are played:

- **Dataflow**: ``pipeline.submit preprocess --dry_run`` prints the ``preprocessing.run`` command
  it would launch on Dataflow; it runs here with ``--runner=DirectRunner`` in place of Dataflow's.
- **Vertex AI**: ``pipeline.submit train --dry_run`` prints the CustomJob; each replica of each
  worker pool is started through the image's entrypoint script with the pool's container args
  and the environment Vertex gives a replica (``AIP_*`` from ``baseOutputDirectory``,
  ``CLOUD_ML_JOB_ID``, ``TF_CONFIG``), on a machine of its own: an empty temp dir. Preemption is
  SIGTERM to every replica, then a restart on fresh machines, as
  ``restartJobOnWorkerRestart`` does.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import yaml

from tests import helpers
from tests.gcs import free_port

CLOUDBUILD = os.path.join(helpers.REPO_ROOT, "cloudbuild.yaml")
ENTRYPOINT = os.path.join(helpers.REPO_ROOT, "docker", "entrypoint.sh")
# Vertex AI names worker pools 0-3 after the TensorFlow task types (TF_CONFIG's cluster keys).
POOL_TASK_TYPES = ("chief", "worker", "ps", "evaluator")


def substitute(value: str, subs: dict[str, str]) -> str:
    """Cloud Build's ``${NAME}`` substitution (dynamic: values may refer to each other)."""
    for _ in range(3):
        value = re.sub(r"\$\{(\w+)\}", lambda m: subs.get(m.group(1), m.group(0)), value)
    return value


class Build:
    """``cloudbuild.yaml`` with substitutions applied, as ``gcloud builds submit`` would."""

    def __init__(self, substitutions: dict[str, str], path: str = CLOUDBUILD):
        with open(path) as f:
            self.config = yaml.safe_load(f)
        # The steps run in the image the build made: here, with this interpreter as its Python.
        here = {"_PYTHON_VERSION": f"{sys.version_info.major}.{sys.version_info.minor}"}
        subs = {**self.config["substitutions"], **here, **substitutions}
        self.subs = {k: substitute(v, subs) for k, v in subs.items()}
        self.steps = {step["id"]: step for step in self.config["steps"]}

    def command(self, step_id: str) -> list[str]:
        """The step's entrypoint and args, substituted: what its container runs."""
        step = self.steps[step_id]
        return [step["entrypoint"], *(substitute(a, self.subs) for a in step["args"])]

    def module_args(self, step_id: str) -> tuple[str, list[str]]:
        """A ``python -m MODULE ARGS`` step as (MODULE, ARGS)."""
        command = self.command(step_id)
        assert command[:2] == ["python", "-m"], command
        return command[2], command[3:]

    def allowed_exit_codes(self, step_id: str) -> set[int]:
        return {0, *self.steps[step_id].get("allowExitCodes", [])}

    def run(self, step_id: str, env: dict, extra: tuple[str, ...] = ()):
        """Run a ``python -m`` step here; fail unless it exits with a code the build allows."""
        module, args = self.module_args(step_id)
        proc = helpers.run_module(module, *args, *extra, env=env)
        assert proc.returncode in self.allowed_exit_codes(step_id), (
            f"step {step_id} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n"
            f"{proc.stderr[-3000:]}"
        )
        return proc

    def dry_run(self, step_id: str, env: dict):
        """A ``pipeline.submit`` step with ``--dry_run`` instead of submitting (and waiting)."""
        module, args = self.module_args(step_id)
        args = [a for a in args if a != "--wait"]
        split = args.index("--") if "--" in args else len(args)
        proc = helpers.run_module(module, *args[:split], "--dry_run", *args[split:], env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout)


def run_dataflow_locally(command: dict, env: dict) -> subprocess.CompletedProcess:
    """Play Dataflow: the job's own command line, on Beam's DirectRunner."""
    args = ["--runner=DirectRunner" if a.startswith("--runner=") else a for a in command["args"]]
    assert "--runner=DirectRunner" in args
    proc = helpers.run_module(command["module"], *args, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def vertex_environment(job: dict, job_id: str) -> dict[str, str]:
    """What Vertex AI sets for every replica of a CustomJob with a ``baseOutputDirectory``."""
    base = job["jobSpec"]["baseOutputDirectory"]["outputUriPrefix"].rstrip("/")
    return {
        "AIP_MODEL_DIR": f"{base}/model/",
        "AIP_CHECKPOINT_DIR": f"{base}/checkpoints/",
        "AIP_TENSORBOARD_LOG_DIR": f"{base}/logs/",
        "CLOUD_ML_JOB_ID": job_id,
    }


def cluster_spec(pools: list[dict]) -> dict[str, list[str]]:
    """TF_CONFIG's cluster: one address per replica, pool 0 the chief."""
    return {
        POOL_TASK_TYPES[i]: [
            f"127.0.0.1:{free_port()}" for _ in range(int(p.get("replicaCount", 1)))
        ]
        for i, p in enumerate(pools)
    }


class VertexJob:
    """A CustomJob's replicas as local processes, each on its own empty 'machine'."""

    def __init__(self, job: dict, env: dict, machines_root: str, job_id: str = "4242"):
        self.job = job
        self.pools = job["jobSpec"]["workerPoolSpecs"]
        self.env = {**env, **vertex_environment(job, job_id)}
        self.machines_root = machines_root
        self.procs: list[subprocess.Popen] = []
        # The image runs `python` from PATH: put this interpreter first, as the image does.
        self.path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

    def replicas(self) -> list[tuple[str, int, list[str]]]:
        return [
            (POOL_TASK_TYPES[i], index, pool["containerSpec"]["args"])
            for i, pool in enumerate(self.pools)
            for index in range(int(pool.get("replicaCount", 1)))
        ]

    def start(self) -> None:
        """Start every replica on a fresh machine (new temp dir, new ports)."""
        cluster = cluster_spec(self.pools)
        self.procs = []
        for task_type, index, args in self.replicas():
            machine = tempfile.mkdtemp(prefix=f"{task_type}{index}-", dir=self.machines_root)
            config = {
                "cluster": cluster,
                "task": {"type": task_type, "index": index},
                "environment": "cloud",
            }
            env = {
                **os.environ,
                **self.env,
                "TF_CONFIG": json.dumps(config),
                "TMPDIR": machine,
                "PATH": self.path,
                "TF_CPP_MIN_LOG_LEVEL": "2",
            }
            self.procs.append(
                subprocess.Popen(
                    ["sh", ENTRYPOINT, *args],
                    cwd=helpers.REPO_ROOT,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )

    def wait_until(self, predicate, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            for proc in self.procs:
                if proc.poll() is not None:
                    _, err = proc.communicate()
                    raise AssertionError(f"replica exited {proc.returncode} early:\n{err[-3000:]}")
            assert time.monotonic() < deadline, "timed out waiting for the job"
            time.sleep(0.1)

    def preempt(self) -> list[str]:
        """SIGTERM to every replica (Vertex stopping the machines); each must exit 0."""
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        return self.finish()

    def finish(self, timeout: float = 600) -> list[str]:
        outputs = []
        for proc in self.procs:
            out, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, f"replica exited {proc.returncode}:\n{err[-3000:]}"
            outputs.append(out)
        return outputs
