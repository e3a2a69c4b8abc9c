"""Every entry point: a bad flag is one line naming it, exit 2, no traceback (common/cli.py)."""

from __future__ import annotations

import pytest

from tests import helpers


@pytest.mark.parametrize(
    ("module", "prog", "args", "message"),
    [
        (
            "preprocessing.run",
            "preprocessing",
            ["--output_dir=/tmp/x", "--num_shards=0"],
            "0 is not a positive integer",
        ),
        ("trainer.task", "trainer", ["--data_dir=/d", "--job_dir=/j", "--seed=-1"], "--seed=-1"),
        ("pipeline.export", "export", ["--eval_samples=x"], "flag --eval_samples=x"),
        ("pipeline.export", "export", ["--job_dir=j"], "--export_dir must have a value"),
        ("pipeline.promote", "promote", ["--tolerance=x"], "flag --tolerance=x"),
        ("pipeline.submit", "submit", ["train", "--replicas=x"], "flag --replicas=x"),
        (
            "pipeline.submit",
            "submit",
            ["train", "--project=p"],
            "--project and --bucket are required",
        ),
        ("pipeline.run", "pipeline", [], "--output_dir is required"),
    ],
    ids=lambda v: v if isinstance(v, str) and "." in v else None,
)
def test_bad_flags_are_one_line_and_exit_2(module, prog, args, message):
    proc = helpers.run_module(module, *args)
    helpers.assert_one_line_error(proc, prog, message)
