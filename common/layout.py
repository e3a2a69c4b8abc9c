"""The pipeline's directories and the files in them: every name is defined here, once.

- ``DataDir`` (``preprocessing.run``): ``manifest.json`` and the shards it lists.
- ``JobDir`` (``trainer.task``): ``flags.txt``, ``train_config.json``, ``data.json``,
  ``metrics.jsonl``, ``samples/``, ``checkpoints/``, ``logs/``.
- ``ExportDir`` (``pipeline.export``): ``generator/``, ``metrics.json``, ``flags.txt``,
  ``manifest.json``, ``export_config.json``, ``README.md``, ``gallery/``.
- ``PromotedDir`` (``pipeline.promote``): ``versions/<weights sha256[:16]>/``, ``promotion.json``.
- ``RunDir`` (``pipeline.run``): ``data/``, ``job/``, ``export/``, ``classifier/``.

Each directory is a path (local or ``gs://``) with its files as properties, so a stage asks
``JobDir(path).flags`` instead of joining a literal. No TensorFlow import here.
"""

from __future__ import annotations

import dataclasses

from common import storage

MANIFEST = "manifest.json"
FLAGS = "flags.txt"
METRICS = "metrics.json"
DECISION = "promotion.json"


@dataclasses.dataclass(frozen=True)
class _Dir:
    path: str

    def join(self, *names: str) -> str:
        return storage.join(self.path, *names)


@dataclasses.dataclass(frozen=True)
class DataDir(_Dir):
    @property
    def manifest(self) -> str:
        """Written last by preprocessing: its presence marks a complete data set."""
        return self.join(MANIFEST)


@dataclasses.dataclass(frozen=True)
class JobDir(_Dir):
    SAMPLES = "samples"
    CHECKPOINTS = "checkpoints"
    LOGS = "logs"

    @property
    def flags(self) -> str:
        """The resolved trainer configuration as ``--flagfile`` lines."""
        return self.join(FLAGS)

    @property
    def config(self) -> str:
        """The same configuration as JSON, every field by name (for tools; flags.txt is what
        ``--flagfile`` and the export read)."""
        return self.join("train_config.json")

    @property
    def data_record(self) -> str:
        """Which data set (directory and fingerprint) the checkpoints were trained on."""
        return self.join("data.json")

    @property
    def metrics_log(self) -> str:
        """One JSON object per progress report and evaluation."""
        return self.join("metrics.jsonl")

    @property
    def samples(self) -> str:
        return self.join(self.SAMPLES)

    @property
    def checkpoints(self) -> str:
        return self.join(self.CHECKPOINTS)


@dataclasses.dataclass(frozen=True)
class ExportDir(_Dir):
    GENERATOR = "generator"
    GALLERY = "gallery"
    CARD = "README.md"
    CONFIG = "export_config.json"

    @property
    def metrics(self) -> str:
        """Written last: its presence marks a complete export."""
        return self.join(METRICS)

    @property
    def manifest(self) -> str:
        return self.join(MANIFEST)

    @property
    def flags(self) -> str:
        return self.join(FLAGS)

    @property
    def generator(self) -> str:
        return self.join(self.GENERATOR)

    @property
    def gallery_index(self) -> str:
        return self.join(self.GALLERY, "index.html")


@dataclasses.dataclass(frozen=True)
class PromotedDir(_Dir):
    VERSIONS = "versions"

    @property
    def pointer(self) -> str:
        """Which version is promoted, and why: replaced in one object write."""
        return self.join(DECISION)

    def version(self, weights_sha256: str) -> str:
        """A promoted export's own, content-addressed prefix."""
        return self.join(self.VERSIONS, weights_sha256[:16])


@dataclasses.dataclass(frozen=True)
class RunDir(_Dir):
    """``pipeline.run --output_dir``: each stage's directory under one root."""

    @property
    def data(self) -> DataDir:
        return DataDir(self.join("data"))

    @property
    def job(self) -> JobDir:
        return JobDir(self.join("job"))

    @property
    def export(self) -> ExportDir:
        return ExportDir(self.join("export"))

    @property
    def classifier(self) -> str:
        """The evaluator's cache of classifiers and real-data floors."""
        return self.join("classifier")
