"""The pipeline's directories and the files in them: every name is defined here, once.

- ``DataDir`` (``preprocessing.run``): ``manifest.json`` and the shards it lists.
- ``JobDir`` (``trainer.task``): ``flags.txt``, ``train_config.json``, ``data.json``,
  ``metrics.jsonl``, ``samples/``, ``checkpoints/``, ``logs/``.
- ``ExportDir`` (``pipeline.export``): ``generator/``, ``metrics.json``, ``flags.txt``,
  ``manifest.json``, ``export_config.json``, ``README.md``, ``gallery/``.
- ``PromotedDir`` (``pipeline.promote``): ``versions/<weights sha256[:16]>/``, ``promotion.json``.
- ``RunDir`` (``pipeline.run``): ``data/``, ``job/``, ``export/``.

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


def _file(*names: str) -> property:
    """A directory's file (or sub-directory) at ``names`` below it, as a read-only property."""
    return property(lambda directory: directory.join(*names))


@dataclasses.dataclass(frozen=True)
class _Dir:
    path: str

    def join(self, *names: str) -> str:
        return storage.join(self.path, *names)


@dataclasses.dataclass(frozen=True)
class DataDir(_Dir):
    manifest = _file(MANIFEST)  # written last: its presence marks a complete data set


@dataclasses.dataclass(frozen=True)
class JobDir(_Dir):
    CHECKPOINTS = "checkpoints"
    LOGS = "logs"

    flags = _file(FLAGS)  # the resolved configuration as --flagfile lines: what the export reads
    config = _file("train_config.json")  # the same as JSON, every field by name
    data_record = _file("data.json")  # which data set the checkpoints were trained on
    metrics_log = _file("metrics.jsonl")  # one JSON object per progress report and evaluation
    samples = _file("samples")
    checkpoints = _file(CHECKPOINTS)


@dataclasses.dataclass(frozen=True)
class ExportDir(_Dir):
    metrics = _file(METRICS)  # written last: its presence marks a complete export
    manifest = _file(MANIFEST)
    flags = _file(FLAGS)
    config = _file("export_config.json")  # the resolved ExportConfig
    card = _file("README.md")
    generator = _file("generator")
    gallery = _file("gallery")
    gallery_index = _file("gallery", "index.html")


@dataclasses.dataclass(frozen=True)
class PromotedDir(_Dir):
    VERSIONS = "versions"

    pointer = _file(DECISION)  # which version is promoted, and why: one object write switches it

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
