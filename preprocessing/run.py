r"""Preprocess MNIST into normalized, sharded TFRecords with a manifest (Apache Beam).

    python -m preprocessing.run --source=data/mnist --output_dir=/tmp/run/data
    python -m preprocessing.run --source=tfds --output_dir=gs://BUCKET/mnist \
        --runner=DataflowRunner --project=P --region=R --temp_location=gs://BUCKET/tmp \
        --setup_file=./setup.py

The job's own flags are absl flags (``--help``); every other flag is a Beam pipeline option.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence

from absl import app, flags

from common import cli, schema, storage
from common.cli import UserError
from preprocessing import JOB_FLAGS, sources

BUNDLED_MNIST = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "mnist"
)

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "source",
    BUNDLED_MNIST,
    "A directory (local or gs://) holding the four MNIST IDX files, raw or .gz; or 'tfds' to "
    "read MNIST through tensorflow-datasets. Defaults to the copy bundled with the project.",
)
flags.DEFINE_string(
    "output_dir", None, "Where to write the TFRecords and manifest (local or gs://)."
)
flags.DEFINE_list("digits", [], "Keep only these classes, e.g. '0' or '0,3'. Empty keeps all ten.")
flags.DEFINE_integer("num_shards", 4, "TFRecord files per split.", lower_bound=1)
flags.DEFINE_enum("compression", "gzip", ["gzip", "none"], "TFRecord compression.")
flags.DEFINE_string(
    "tfds_data_dir",
    None,
    "tensorflow-datasets data_dir for --source=tfds (tfds's default if unset).",
)
flags.mark_flag_as_required("output_dir")
assert set(JOB_FLAGS) | {"output_dir"} == {
    f.name for f in FLAGS.get_flags_for_module(sys.modules[__name__])
}, "keep preprocessing.JOB_FLAGS in sync with the flags defined here"


LOCAL_RUNNER = "FnApiRunner"


class PreprocessError(UserError, ValueError):
    """A one-line, user-facing reason the job cannot run."""


def parse_digits(values: Sequence[str]) -> list[int]:
    try:
        digits = sorted({int(v) for v in values}) if values else list(range(schema.NUM_CLASSES))
    except ValueError as e:
        raise PreprocessError(f"--digits={','.join(values)}: not a list of integers") from e
    if any(not 0 <= d < schema.NUM_CLASSES for d in digits):
        raise PreprocessError(f"--digits={','.join(values)}: digits must be in 0-9")
    return digits


def manifest_header(
    source: str, checksums: dict[str, str], digits: list[int], num_shards: int, compression: str
) -> dict:
    """Everything that defines the data set; its hash is the output's fingerprint."""
    header = {
        "schema_version": schema.SCHEMA_VERSION,
        "image_shape": list(schema.IMAGE_SHAPE),
        "value_range": list(schema.VALUE_RANGE),
        "normalization": "x / 127.5 - 1 of the uint8 pixel",
        "features": {"image": "float_list[784], row-major 28x28", "label": "int64 in 0-9"},
        "compression": compression,
        "num_shards": num_shards,
        "digits": digits,
        "source_sha256": dict(sorted(checksums.items())),
    }
    assert set(header) == set(schema.FINGERPRINTED), "the fingerprint covers the whole header"
    header["fingerprint"] = schema.fingerprint(header)
    header["source"] = source
    return header


def existing_output(output_dir: str, fingerprint: str) -> bool:
    """True if ``output_dir`` already holds this exact data set; error if it holds another."""
    path = storage.join(output_dir, schema.MANIFEST_NAME)
    if not storage.exists(path):
        return False
    try:
        manifest = json.loads(storage.read_text(path))
    except json.JSONDecodeError:
        manifest = {}
    if manifest.get("fingerprint") != fingerprint:
        raise PreprocessError(
            f"{output_dir}: holds a different data set (manifest fingerprint "
            f"{str(manifest.get('fingerprint'))[:12]}…, this job's {fingerprint[:12]}…); "
            "choose another --output_dir"
        )
    present = {p.rsplit("/", 1)[-1] for p in storage.list_files(output_dir)}
    listed = schema.listed_files(manifest)
    if listed - present:
        logging.warning("%s: shards missing; writing the data set again", output_dir)
        return False
    return True


# Written before the first shard: which files this job is about to write, so a re-run after a
# crash (or with another shard count) removes exactly what an earlier run of ours wrote.
IN_PROGRESS = ".preprocessing-in-progress.json"


def _listed(output_dir: str, name: str) -> set[str]:
    """File names a record of ours in ``output_dir`` claims (manifest or in-progress marker)."""
    path = storage.join(output_dir, name)
    if not storage.exists(path):
        return set()
    try:
        record = json.loads(storage.read_text(path))
        if name == schema.MANIFEST_NAME:
            return schema.listed_files(record)
        return set(record["files"])
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        raise PreprocessError(f"{path}: unreadable ({type(e).__name__}); not ours to reuse") from e


def claim_output(output_dir: str, fingerprint: str, planned: list[str]) -> set[str]:
    """Mark the files this job will write; return stale files of an earlier run of ours.

    Refuses, before anything is written, a directory where a planned file exists that no record
    of ours lists: that file is the user's, and the job would overwrite it.
    """
    owned = _listed(output_dir, IN_PROGRESS) | _listed(output_dir, schema.MANIFEST_NAME)
    present = {path.rsplit("/", 1)[-1] for path in storage.list_files(output_dir)}
    foreign = sorted((set(planned) & present) - owned)
    if foreign:
        raise PreprocessError(
            f"{storage.join(output_dir, foreign[0])}: exists and was not written by this "
            "pipeline; choose another --output_dir"
        )
    record = {"fingerprint": fingerprint, "files": sorted(owned | set(planned))}
    storage.write_text(storage.join(output_dir, IN_PROGRESS), json.dumps(record, indent=2))
    return (owned - set(planned)) & present


def split_beam_args(argv: Sequence[str]) -> list[str]:
    """Reject arguments that are neither our flags nor Beam pipeline options."""
    from apache_beam.options.pipeline_options import PipelineOptions

    beam_args = list(argv[1:])
    if not any(arg.startswith("--runner") for arg in beam_args):
        # Beam's DirectRunner first tries to download its Prism runner from the internet, then
        # falls back to this one: choose it directly (offline, no download, same results).
        beam_args.append(f"--runner={LOCAL_RUNNER}")
    options = PipelineOptions(beam_args)
    known = options.get_all_options(retain_unknown_options=False)
    everything = options.get_all_options(retain_unknown_options=True)
    unknown = sorted(set(everything) - set(known))
    if unknown:
        raise PreprocessError(f"unknown flag(s): {', '.join('--' + u for u in unknown)}")
    return beam_args


def run(argv: Sequence[str]) -> str | None:
    """Run the job; return the manifest path, or None when the output was already complete."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from preprocessing import transforms

    beam_args = split_beam_args(argv)
    output_dir = FLAGS.output_dir
    digits = parse_digits(FLAGS.digits)
    source_dir = FLAGS.source
    for path in (output_dir, source_dir):
        if path != sources.TFDS_SOURCE:
            storage.check_bucket(path)
    if source_dir != sources.TFDS_SOURCE and storage.overlaps(source_dir, output_dir):
        raise PreprocessError(
            f"--output_dir={output_dir} overlaps --source={source_dir}; the output must be a "
            "directory of its own"
        )
    if FLAGS.source == sources.TFDS_SOURCE:
        source_dir = sources.stage_tfds(
            storage.join(output_dir, "_staging", "tfds-idx"), FLAGS.tfds_data_dir
        )
    files, counts, checksums = sources.validate_idx_dir(source_dir)
    header = manifest_header(FLAGS.source, checksums, digits, FLAGS.num_shards, FLAGS.compression)
    manifest_path = storage.join(output_dir, schema.MANIFEST_NAME)
    if existing_output(output_dir, header["fingerprint"]):
        print(f"preprocessing: {output_dir} already holds this data set; nothing to do")
        return None
    storage.makedirs(output_dir)
    planned = transforms.planned_files(files, counts, FLAGS.num_shards, FLAGS.compression)
    stale = claim_output(output_dir, header["fingerprint"], planned)
    try:
        with beam.Pipeline(options=PipelineOptions(beam_args)) as pipeline:
            transforms.build(
                pipeline,
                files,
                counts,
                output_dir,
                header,
                digits,
                FLAGS.num_shards,
                FLAGS.compression,
            )
    except Exception as e:
        raise PreprocessError(f"beam job failed: {_root_cause(e)}") from e
    for name in sorted(stale):  # an earlier run's shards that this manifest does not list
        storage.delete(storage.join(output_dir, name))
    storage.delete(storage.join(output_dir, IN_PROGRESS))
    return manifest_path


def _root_cause(error: BaseException) -> str:
    """The innermost one-line reason of a runner's wrapped worker error."""
    for known in (storage.StorageError, sources.SourceError, OSError):
        cause: BaseException | None = error
        while cause is not None:
            if isinstance(cause, known):
                return str(cause).splitlines()[0]
            cause = cause.__cause__ or cause.__context__
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def main(argv: Sequence[str]) -> None:
    manifest_path = run(argv)
    if manifest_path:
        print(f"preprocessing: wrote {manifest_path}")


if __name__ == "__main__":
    # absl parses its own flags; what it does not know is left for Beam.
    app.run(
        cli.guarded("preprocessing", main),
        flags_parser=cli.flags_parser("preprocessing", known_only=True),
    )
