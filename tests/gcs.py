"""A real Cloud Storage JSON-API server on 127.0.0.1: the gcp-storage-emulator package, with
generation preconditions enforced (tests/gcs_server.py).

File-backed, so it can be stopped (to simulate an outage) and started again with its data.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

BUCKET = "gan-test-bucket"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GcsEmulator:
    def __init__(self, data_dir: str, port: int | None = None):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GcsEmulator:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.gcs_server",  # the emulator, with generation preconditions enforced
                "-d",
                self.data_dir,
                "start",
                "--host=127.0.0.1",
                f"--port={self.port}",
                "--quiet",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=REPO_ROOT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("gcs emulator did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None

    def env(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.host, "GAN_PIPELINE_GCS_RETRY_SECONDS": "4"}

    def client(self):
        from google.cloud import storage

        old = os.environ.get("STORAGE_EMULATOR_HOST")
        os.environ["STORAGE_EMULATOR_HOST"] = self.host
        try:
            return storage.Client()
        finally:
            if old is None:
                del os.environ["STORAGE_EMULATOR_HOST"]
            else:
                os.environ["STORAGE_EMULATOR_HOST"] = old

    def create_bucket(self, name: str = BUCKET) -> str:
        self.client().create_bucket(name)
        return f"gs://{name}"

    def list(self, prefix: str, bucket: str = BUCKET) -> list[str]:
        return sorted(b.name for b in self.client().list_blobs(bucket, prefix=prefix))

    def read(self, name: str, bucket: str = BUCKET) -> bytes:
        return self.client().bucket(bucket).blob(name).download_as_bytes()

    def committed_step(self, checkpoints: str) -> int:
        """The step of the checkpoint committed under a prefix (0: none yet)."""
        if f"{checkpoints}/checkpoint" not in self.list(f"{checkpoints}/"):
            return 0
        text = self.read(f"{checkpoints}/checkpoint").decode()
        return int(text.split('"')[1].rsplit("-", 1)[1])

    def kept_checkpoints(self, checkpoints: str) -> set[str]:
        return {n.rsplit("/", 1)[1].split(".")[0] for n in self.list(f"{checkpoints}/ckpt-")}
