"""The stage directories' files, named in one module (common/layout.py)."""

from __future__ import annotations

import os

from common import layout


def test_a_run_dir_holds_each_stage_dir_in_a_bucket_or_on_disk():
    run = layout.RunDir("gs://bucket/runs/1/")
    assert run.data.manifest == "gs://bucket/runs/1/data/manifest.json"
    assert run.job.flags == "gs://bucket/runs/1/job/flags.txt"
    assert run.export.gallery_index == "gs://bucket/runs/1/export/gallery/index.html"
    local = layout.RunDir("/tmp/run")
    assert local.job.metrics_log == os.path.join("/tmp/run", "job", "metrics.jsonl")
    assert local.job.samples == os.path.join("/tmp/run", "job", "samples")


def test_an_export_copied_into_a_promoted_version_keeps_its_names():
    promoted = layout.PromotedDir("gs://bucket/models/gan")
    version = promoted.version("0123456789abcdef" + "f" * 48)
    assert version == "gs://bucket/models/gan/versions/0123456789abcdef"
    assert layout.ExportDir(version).metrics == version + "/metrics.json"
    assert promoted.pointer == "gs://bucket/models/gan/promotion.json"
