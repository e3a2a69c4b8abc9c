r"""Preprocess images into normalized, sharded TFRecords with a manifest (Apache Beam).

    python -m preprocessing.run --source=data/mnist --output_dir=/tmp/run/data
    python -m preprocessing.run --source=gs://B/faces --image_size=64 --output_dir=gs://B/faces64
    python -m preprocessing.run --source=tfds:cifar10 --output_dir=gs://BUCKET/cifar10 \
        --runner=DataflowRunner --project=P --region=R --temp_location=gs://BUCKET/tmp \
        --setup_file=./setup.py

The job's own flags are absl flags (``--help``); every other flag is a Beam pipeline option.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Sequence

from absl import app, flags

from common import cli, disk, layout, lease, schema, storage
from common import settings as common_settings
from common.cli import UserError
from preprocessing import images, sources
from preprocessing.config import PreprocessConfig

FLAGS = flags.FLAGS

LOCAL_RUNNER = "FnApiRunner"
# The manifest's record of the resolved configuration that wrote it (not fingerprinted: where
# the output went and how many bad images were allowed do not change the data set).
CONFIG_KEY = "config"


class PreprocessError(UserError, ValueError):
    """A one-line, user-facing reason the job cannot run."""


def parse_classes(values: Sequence[str], class_names: Sequence[str]) -> list[int]:
    """Class indices from names or indices; all classes when empty."""
    if not class_names:
        if values:
            raise PreprocessError(f"--classes={','.join(values)}: the data set is unlabelled")
        return []
    if not values:
        return list(range(len(class_names)))
    index = {name: i for i, name in enumerate(class_names)}
    kept = set()
    for value in values:
        if value in index:
            kept.add(index[value])
        elif value.isdigit() and int(value) < len(class_names):
            kept.add(int(value))
        else:
            shown = ", ".join(class_names[:12]) + (", …" if len(class_names) > 12 else "")
            raise PreprocessError(f"--classes={','.join(values)}: {value!r} is not one of {shown}")
    return sorted(kept)


def manifest_header(
    location: str,
    plan: sources.Plan,
    shape: tuple[int, int, int],
    kept: list[int],
    num_shards: dict[str, int],
    compression: str,
    stacked_mnist: bool,
    background: tuple[int, int, int] = images.WHITE,
    subset_of: str = "",
) -> dict:
    """Everything that defines the data set; its hash is the output's fingerprint.
    ``subset_of``: the fingerprint of the data set this one takes its training examples from."""
    height, width, channels = shape
    # Only image files have transparency to composite: other sources' fingerprints (MNIST's,
    # which the shipped classifiers are keyed by) do not name a background.
    pixels = {"background": images.colour_name(background)} if plan.image_files else {}
    header = {
        "schema_version": schema.SCHEMA_VERSION,
        "name": plan.name,
        "image_shape": list(shape),
        "value_range": list(schema.VALUE_RANGE),
        "normalization": "x / 127.5 - 1 of the uint8 pixel",
        "features": {
            "image": f"float_list[{height * width * channels}], row-major "
            f"{height}x{width}x{channels}",
            "label": "int64, index into class_names" if plan.class_names else "int64, 0",
        },
        "compression": compression,
        "class_names": list(plan.class_names),
        "kept_classes": kept,
        "stacked_mnist": stacked_mnist,
        "preprocess": {
            "resize": "shorter side to image_size (bicubic), centre crop"
            if shape[:2] != plan.native_shape[:2]
            else "none",
            "num_shards": num_shards,
            **pixels,
            **plan.details,
            **({"subset_of": subset_of} if subset_of else {}),
        },
        "source_sha256": dict(sorted(plan.checksums.items())),
    }
    assert set(header) == set(schema.FINGERPRINTED), "the fingerprint covers the whole header"
    header["fingerprint"] = schema.fingerprint(header)
    header["source"] = location
    return header


def existing_output(output_dir: str, fingerprint: str) -> bool:
    """True if ``output_dir`` already holds this exact data set; error if it holds another."""
    path = layout.DataDir(output_dir).manifest
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
    present = _present(output_dir)
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
        if name == layout.MANIFEST:
            return schema.listed_files(record)
        return set(record["files"])
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        raise PreprocessError(f"{path}: unreadable ({type(e).__name__}); not ours to reuse") from e


def claim_output(output_dir: str, fingerprint: str, planned: list[str]) -> set[str]:
    """Mark the files this job will write; return stale files of an earlier run of ours.

    Refuses, before anything is written, a directory where a planned file exists that no record
    of ours lists: that file is the user's, and the job would overwrite it.
    """
    owned = _listed(output_dir, IN_PROGRESS) | _listed(output_dir, layout.MANIFEST)
    present = _present(output_dir)
    foreign = sorted((set(planned) & present) - owned)
    if foreign:
        raise PreprocessError(
            f"{storage.join(output_dir, foreign[0])}: exists and was not written by this "
            "pipeline; choose another --output_dir"
        )
    record = {"fingerprint": fingerprint, "files": sorted(owned | set(planned))}
    storage.write_text(storage.join(output_dir, IN_PROGRESS), json.dumps(record, indent=2))
    return (owned - set(planned)) & present


def beam_options(args: Sequence[str]) -> list[str]:
    """The Beam pipeline options to run with; refuses arguments that are none."""
    from apache_beam.options.pipeline_options import PipelineOptions

    beam_args = list(args)
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


def data_shape(
    native: tuple[int, int, int], image_size: int, channels: str
) -> tuple[tuple[int, int, int], bool]:
    """The output shape from ``--image_size``, ``--channels`` and the source's native shape; and
    whether to resize."""
    depth = native[2] if channels == "auto" else int(channels)
    depth = 3 if depth == 4 else depth
    if image_size:
        return (image_size, image_size, depth), True
    return (native[0], native[1], depth), False


def run(config: PreprocessConfig, beam_args: Sequence[str] = ()) -> str | None:
    """Run the job with Beam options ``beam_args`` (the local runner unless one is named);
    return the manifest path, or None when the output already held this data set."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from preprocessing import transforms

    beam_args = beam_options(beam_args)
    try:
        background = images.parse_colour(config.background)
    except ValueError as e:
        raise PreprocessError(f"--background={config.background}: not a colour ({e})") from e
    output_dir = config.output_dir
    storage.check_bucket(output_dir)
    source = sources.resolve(
        config.source,
        config.stacked_mnist,
        config.stacked_examples,
        config.test_percent,
        config.tfds_data_dir,
    )
    for path in source.local_paths():
        if storage.overlaps(path, output_dir):
            raise PreprocessError(
                f"--output_dir={output_dir} overlaps --source={path}; the output must be a "
                "directory of its own"
            )
    plan = source.plan()
    shape, resize = data_shape(plan.native_shape, config.image_size, config.channels)
    kept = parse_classes(config.classes, plan.class_names)

    def shards_and_header(plan: sources.Plan, subset_of: str = "") -> tuple[dict, dict]:
        num_shards = {
            split: transforms.shards_for(count, shape, config.num_shards)
            for split, count in plan.counts.items()
        }
        header = manifest_header(
            config.source,
            plan,
            shape,
            kept,
            num_shards,
            config.compression,
            config.stacked_mnist,
            background,
            subset_of,
        )
        return num_shards, {**header, CONFIG_KEY: dataclasses.asdict(config)}

    num_shards, header = shards_and_header(plan)
    if config.train_examples:
        source = sources.FirstExamples(source, config.train_examples)
        plan = source.limited(plan)
        num_shards, header = shards_and_header(plan, subset_of=header["fingerprint"])
    manifest_path = layout.DataDir(output_dir).manifest
    with lease.acquire(output_dir, "preprocessing"):
        if existing_output(output_dir, header["fingerprint"]):
            print(f"preprocessing: {output_dir} already holds this data set; nothing to do")
            return None
        records = transforms.Layout(
            shape, resize, len(plan.class_names), tuple(kept), config.compression, background
        )
        chunks = [chunk for split, n in num_shards.items() for chunk in source.chunks(split, n)]
        storage.makedirs(output_dir)
        planned = sorted(
            [chunk.file_name(records.suffix) for chunk in chunks] + [transforms.BAD_IMAGES_REPORT]
        )
        stale = claim_output(output_dir, header["fingerprint"], planned)
        print(
            f"preprocessing: {plan.name} → {'x'.join(map(str, shape))}, "
            f"{', '.join(f'{n} {split}' for split, n in plan.counts.items())} inputs in "
            f"{len(chunks)} shards",
            flush=True,
        )
        try:
            with beam.Pipeline(options=PipelineOptions(beam_args)) as pipeline:
                transforms.build(
                    pipeline, source, chunks, output_dir, header, records, config.max_bad_images
                )
        except Exception as e:
            if any(disk.is_full(cause) for cause in _causes(e)):
                records = sum(plan.counts.values()) * math.prod(shape) * 4  # floats, before gzip
                raise disk.full_error(output_dir, records, "writing the records") from e
            raise PreprocessError(f"beam job failed: {_root_cause(e)}") from e
        report = storage.join(output_dir, transforms.BAD_IMAGES_REPORT)
        if not storage.exists(manifest_path) and storage.exists(report):
            raise PreprocessError(bad_images_line(config.source, report, config.max_bad_images))
        # An earlier run's shards that this manifest does not list, and its bad-images report.
        for name in sorted(stale | ({transforms.BAD_IMAGES_REPORT} & _present(output_dir))):
            storage.delete(storage.join(output_dir, name))
        storage.delete(storage.join(output_dir, IN_PROGRESS))
        return manifest_path


def _present(directory: str) -> set[str]:
    return {path.rsplit("/", 1)[-1] for path in storage.list_files(directory)}


def bad_images_line(source: str, report_path: str, max_bad_images: int) -> str:
    report = json.loads(storage.read_text(report_path))
    count = sum(split["count"] for split in report.values())
    item, reason = next(bad for split in report.values() for bad in split["listed"])
    return (
        f"{storage.join(source, item)}: {reason}; {count} bad image(s), more than "
        f"--max_bad_images={max_bad_images}; no data set written (all listed in {report_path})"
    )


def _causes(error: BaseException) -> list[BaseException]:
    """A runner's wrapped worker error and what it wraps, outermost first."""
    chain: list[BaseException] = []
    cause: BaseException | None = error
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    return chain


def _root_cause(error: BaseException) -> str:
    """The innermost one-line reason of a runner's wrapped worker error."""
    for known in (storage.StorageError, sources.SourceError, OSError):
        for cause in _causes(error):
            if isinstance(cause, known):
                return str(cause).splitlines()[0]
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def main(argv: Sequence[str]) -> None:
    if not FLAGS["verbosity"].present:
        # A failed bundle is reported in one line; Beam's own log of it, with its traceback,
        # only with -v.
        logging.getLogger("apache_beam.runners.common").setLevel(logging.CRITICAL)
    manifest_path = run(common_settings.from_flags(PreprocessConfig, FLAGS), argv[1:])
    if manifest_path:
        print(f"preprocessing: wrote {manifest_path}")


if __name__ == "__main__":
    # Defined here, not on import: tests and launchers import run() beside other stages' flags.
    common_settings.define_flags(PreprocessConfig, FLAGS)
    # absl parses its own flags; what it does not know is left for Beam.
    app.run(
        cli.guarded("preprocessing", main),
        flags_parser=cli.flags_parser("preprocessing", known_only=True),
    )
