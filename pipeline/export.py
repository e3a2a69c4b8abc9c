r"""Export a trained generator: SavedModel, metrics, gallery, model card.

    python -m pipeline.export --job_dir=/tmp/run/job --export_dir=/tmp/run/export

``EXPORT_DIR`` receives ``generator/`` (SavedModel; ``serving_default``: ``z`` float32
[batch, latent_dim] (+ ``label`` int32 [batch]) → ``images`` float32 [batch, H, W, C] in
[-1, 1], the data's shape), ``metrics.json``, ``flags.txt``, ``manifest.json``,
``export_config.json``, ``README.md`` and ``gallery/``.
Everything is assembled in a local staging directory and published with ``metrics.json`` last:
its presence marks a complete export.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Sequence

from absl import app, flags

from common import cli, layout, lease, storage
from common import settings as common_settings
from common.cli import UserError
from common.settings import setting

FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    job_dir: str = setting(None, "The training job directory (local or gs://).", required=True)
    export_dir: str = setting(None, "Where to write the export (local or gs://).", required=True)
    classifier_dir: str = setting(
        "", "Cache of evaluation classifiers, one per data set fingerprint (default: a temp dir)."
    )
    eval_samples: int = setting(10_000, "Generated samples the metrics are computed on.", lower=1)


# Written before the first file, removed after metrics.json: a re-run after a crash may finish
# a directory holding it; a directory holding neither is someone else's.
IN_PROGRESS = ".export-in-progress.json"


class ExportError(UserError, ValueError):
    """A one-line reason the export cannot be made; nothing was overwritten."""


def _restore_generator(job_dir: str):
    import tensorflow as tf

    from trainer import config as config_lib
    from trainer.checkpoint import CheckpointMismatchError, CheckpointStore
    from trainer.gan import Gan
    from trainer.workspace import Workspace

    flags_path = layout.JobDir(job_dir).flags
    if not storage.exists(flags_path):
        raise ExportError(f"{flags_path}: not found; is {job_dir} a training job directory?")
    config = config_lib.from_flags_text(storage.read_text(flags_path), flags_path)
    config = dataclasses.replace(config, job_dir=job_dir, strategy="default", cpu_replicas=0)
    from trainer import data

    spec = data.read_manifest(config.data_dir).spec
    gan = Gan(config, spec, tf.distribute.get_strategy())
    workspace = Workspace(config)
    store = CheckpointStore(
        workspace.checkpoint_target,
        gan.checkpoint_objects(),
        1,
        scratch=workspace.checkpoint_scratch,
    )
    try:
        checkpoint = store.restore_latest()
    except CheckpointMismatchError as e:
        raise ExportError(
            f"{store.latest}: does not match --architecture={config.architecture} "
            f"--model_width={config.model_width} --d_width={config.d_width} "
            f"--latent_dim={config.latent_dim} in {flags_path} (or was written by another "
            "version of the networks)"
        ) from e
    if checkpoint is None:
        raise ExportError(f"{workspace.checkpoint_target}: no checkpoint; train first")
    return config, gan, checkpoint, int(gan.step.numpy())


def save_generator(gan, latent_dim: int, conditional: bool, path: str) -> None:
    """A SavedModel that loads with plain ``tf.saved_model.load``, no project code."""
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(gan.sampler)
    if gan.clusters is not None:
        archive.track(gan.clusters)
    z_spec = tf.TensorSpec([None, latent_dim], tf.float32, name="z")
    if conditional:

        @tf.function
        def serve(z, label):
            return {"images": gan.generate(z, label)}

        signature = [z_spec, tf.TensorSpec([None], tf.int32, name="label")]
    else:

        @tf.function
        def serve(z):
            return {"images": gan.generate(z)}

        signature = [z_spec]
    archive.add_endpoint("serving_default", serve, input_signature=signature)
    archive.write_out(path, verbose=False)


def export(export_config: ExportConfig) -> dict:
    """Run the export; return the metrics written to ``metrics.json``."""
    from pipeline import gallery, model_card
    from trainer import data, evaluation

    job_dir, export_dir = export_config.job_dir, export_config.export_dir
    classifier_dir, eval_samples = export_config.classifier_dir, export_config.eval_samples
    for path in (job_dir, export_dir, classifier_dir or "."):
        storage.check_bucket(path)
    config, gan, checkpoint, step = _restore_generator(job_dir)
    fingerprint = gan.fingerprint()
    with lease.acquire(export_dir, "export"):
        existing = layout.ExportDir(export_dir).metrics
        if storage.exists(existing):
            try:
                previous = json.loads(storage.read_text(existing))
                previous_sha = previous["weights_sha256"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ExportError(
                    f"{existing}: unreadable ({type(e).__name__}); not overwriting an export this "
                    "run cannot identify; choose another --export_dir"
                ) from e
            if previous_sha == fingerprint:
                return previous
            raise ExportError(
                f"{export_dir}: already holds another model (step {previous.get('step')}, weights "
                f"{str(previous_sha)[:12]}…); choose another --export_dir"
            )
        in_progress = storage.join(export_dir, IN_PROGRESS)
        files = [rel for rel in storage.list_tree(export_dir) if not storage.is_lease(rel)]
        if files and not storage.exists(in_progress):
            raise ExportError(
                f"{export_dir}: holds files that are not an export of this pipeline; "
                "choose another --export_dir"
            )
        storage.write_text(in_progress, json.dumps({"weights_sha256": fingerprint}) + "\n")
        manifest = data.read_manifest(config.data_dir)
        num_samples = min(eval_samples, evaluation.NUM_SAMPLES)
        evaluator = evaluation.make_evaluator(
            config.data_dir, manifest, classifier_dir, num_samples, config.feature_extractor
        )
        train = data.load_examples(config.data_dir, manifest, "train", 5 * num_samples)
        evaluator.hold_training_images(train.images)  # the samples are checked for copies
        classifier = evaluator.classifier
        metrics = {
            "step": step,
            "checkpoint": checkpoint,
            "weights_sha256": fingerprint,
            "generator": "ema" if gan.ema_generator is not None else "live",
            "num_samples": num_samples,
            "classifier_test_accuracy": classifier.test_accuracy if classifier else None,
            "feature_space": evaluator.feature_space,
            "model": evaluator.evaluate(gan.sample, config.latent_dim, config.conditional),
            "real_floor": evaluator.real_floor(train.images),
        }
        with tempfile.TemporaryDirectory(prefix="gan-export-") as staging_dir:
            staging = layout.ExportDir(staging_dir)
            save_generator(gan, config.latent_dim, config.conditional, staging.generator)
            gallery.write(
                staging.gallery,
                gan,
                config,
                manifest,
                metrics,
                job_dir,
                reals=(train.images, train.labels),
                nearest=evaluator.nearest_training,
            )
            with open(staging.card, "w") as f:
                f.write(model_card.render(config, manifest, metrics))
            storage.copy_file(layout.JobDir(job_dir).flags, staging.flags)
            with open(staging.manifest, "w") as f:
                json.dump(manifest.record, f, indent=2, sort_keys=True)
            with open(staging.config, "w") as f:
                f.write(common_settings.to_json(export_config))
            storage.copy_tree(staging_dir, export_dir)
        storage.write_text(existing, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        storage.delete(in_progress)  # from here metrics.json marks the directory as ours
        return metrics


def main(argv: Sequence[str]) -> None:
    export_config = common_settings.from_flags(ExportConfig, FLAGS)
    metrics = export(export_config)
    from trainer import evaluation

    summary = evaluation.summary(metrics["model"], metrics["real_floor"])
    print(f"export: {export_config.export_dir} (step {metrics['step']}): {summary}")


if __name__ == "__main__":
    common_settings.define_flags(ExportConfig, FLAGS)
    app.run(cli.guarded("export", main), flags_parser=cli.flags_parser("export"))
