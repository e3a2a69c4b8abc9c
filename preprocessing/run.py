r"""Preprocess MNIST into normalized, sharded TFRecords with a manifest (Apache Beam).

    python -m preprocessing.run --source=data/mnist --output_dir=/tmp/run/data
    python -m preprocessing.run --source=tfds --output_dir=gs://BUCKET/mnist \
        --runner=DataflowRunner --project=P --region=R --temp_location=gs://BUCKET/tmp \
        --setup_file=./setup.py

The job's own flags are absl flags (``--help``); every other flag is a Beam pipeline option.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from collections.abc import Sequence

from absl import app, flags

from common import schema, storage
from preprocessing import JOB_FLAGS, idx, sources

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


class PreprocessError(ValueError):
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
    header["fingerprint"] = hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()
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
    return True


def split_beam_args(argv: Sequence[str]) -> list[str]:
    """Reject arguments that are neither our flags nor Beam pipeline options."""
    from apache_beam.options.pipeline_options import PipelineOptions

    beam_args = list(argv[1:])
    options = PipelineOptions(beam_args)
    known = options.get_all_options(retain_unknown_options=False)
    everything = options.get_all_options(retain_unknown_options=True)
    unknown = sorted(set(everything) - set(known))
    if unknown:
        raise PreprocessError(f"unknown flag(s): {', '.join('--' + u for u in unknown)}")
    return beam_args


def run(argv: Sequence[str]) -> str:
    """Run the job; return the manifest path."""
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
    if FLAGS.source == sources.TFDS_SOURCE:
        source_dir = sources.stage_tfds(
            storage.join(output_dir, "_staging", "tfds-idx"), FLAGS.tfds_data_dir
        )
    files, counts, checksums = sources.validate_idx_dir(source_dir)
    header = manifest_header(FLAGS.source, checksums, digits, FLAGS.num_shards, FLAGS.compression)
    manifest_path = storage.join(output_dir, schema.MANIFEST_NAME)
    if existing_output(output_dir, header["fingerprint"]):
        logging.info("%s already holds this data set; nothing to do", manifest_path)
        return manifest_path
    storage.makedirs(output_dir)
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
    try:
        manifest_path = run(argv)
    except (PreprocessError, sources.SourceError, idx.IdxError, storage.StorageError) as e:
        sys.exit(f"preprocessing: error: {e}")
    print(f"preprocessing: wrote {manifest_path}")


def parse_flags(argv: list[str]) -> list[str]:
    """absl parses its own flags; what it does not know is left for Beam."""
    return FLAGS(argv, known_only=True)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
