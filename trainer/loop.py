"""The training loop: restore, run steps in calls of a few, report, checkpoint, stop cleanly.

Free of flag parsing and signal handling: ``task.py`` passes a config and a ``should_stop``
callable (set by SIGTERM); storage details live in ``checkpoint.py`` and ``progress.py``.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import time
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from common import layout, storage
from common import settings as common_settings
from common.cli import UserError
from common.schema import Manifest
from trainer import clusters, data, schedule
from trainer import config as config_lib
from trainer import strategy as strategy_lib
from trainer.checkpoint import CheckpointStore
from trainer.config import ConfigError, TrainConfig
from trainer.gan import Gan
from trainer.progress import Reporter
from trainer.workspace import Workspace

SAMPLE_GRID = 100  # 10×10


class NonFiniteLossError(UserError, RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is left as it was."""


@dataclasses.dataclass(frozen=True)
class TrainResult:
    step: int
    stopped_by: str  # "steps", "time", "signal", or "already_complete"
    checkpoint: str | None
    last_metrics: dict
    weights_sha256: str = ""
    # Where the run's time went: "steps" (train steps, the first trace included) and
    # "maintenance" (samples, evaluations, checkpoints).
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)


def sample_inputs(config: TrainConfig, classes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Fixed latents (and labels: one class per row, the first ten kept) so grids are comparable
    across steps."""
    z = np.random.default_rng(config.seed).standard_normal((SAMPLE_GRID, config.latent_dim))
    rows = np.repeat(np.arange(10), SAMPLE_GRID // 10)
    labels = np.asarray(list(classes) or [0], np.int32)[rows % max(len(classes), 1)]
    return z.astype(np.float32), labels


def _setup_numerics(config: TrainConfig) -> None:
    if config.mixed_precision == "fp16" and not tf.config.list_physical_devices("GPU"):
        raise ConfigError("--mixed_precision=fp16 needs a GPU; use bf16 on CPU and TPU")
    keras.mixed_precision.set_global_policy(
        config_lib.MIXED_PRECISION_POLICIES[config.mixed_precision]
    )
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()


def _fit_clusters(config: TrainConfig, manifest: Manifest, gan: Gan, chief: bool) -> None:
    began = time.perf_counter()
    images = data.load_examples(
        config.data_dir, manifest, "train", clusters.FIT_IMAGES, seed=config.seed
    ).images
    if len(images) < gan.clusters.k:
        raise ConfigError(
            f"--clusters={gan.clusters.k}: {config.data_dir} holds {len(images)} training images; "
            "pass fewer clusters (--clusters=0: none)"
        )
    shares = np.concatenate([fitted.frequencies for fitted in gan.fit_clusters(images)])
    if chief:
        per_channel = " per channel" if config.clusters_per_channel else ""
        print(
            f"clusters: {gan.clusters.k} k-means clusters{per_channel} of {len(images):,} "
            f"training images in {time.perf_counter() - began:.1f}s, {shares.min():.1%} to "
            f"{shares.max():.1%} of them each",
            flush=True,
        )


def _next_event(step: int, config: TrainConfig) -> int:
    """The next step at which the loop must look at results (log, sample, checkpoint, end)."""
    candidates = [config.train_steps, step + config.steps_per_call]
    cadences = [config.log_every, config.sample_every, config.checkpoint_every]
    for every in cadences + ([config.eval_every] if config.eval_every else []):
        candidates.append((step // every + 1) * every)
    return min(candidates)


def train(
    config: TrainConfig,
    should_stop: Callable[[], bool] = lambda: False,
) -> TrainResult:
    started = time.monotonic()
    strategy = strategy_lib.make_strategy(config)
    config = strategy_lib.resolve_device_settings(config, strategy)
    _setup_numerics(config)
    chief = strategy_lib.is_chief(strategy)
    worker_id = strategy_lib.worker_id(strategy)
    workspace = Workspace(config, worker_id)
    workspace.check_access()
    with workspace.leased(chief):
        return _train(config, strategy, workspace, chief, worker_id, started, should_stop)


def _train(
    config: TrainConfig,
    strategy: tf.distribute.Strategy,
    workspace: Workspace,
    chief: bool,
    worker_id: int,
    started: float,
    should_stop: Callable[[], bool],
) -> TrainResult:
    manifest = data.read_manifest(config.data_dir)
    with strategy.scope():
        gan = Gan(config, manifest.spec, strategy)
    store = CheckpointStore(
        workspace.checkpoint_target,
        gan.checkpoint_objects(),
        config.keep_checkpoints,
        chief,
        worker_id=worker_id,
        scratch=workspace.checkpoint_scratch,
        fence=workspace.check_lease,
    )
    restored = store.restore_latest()
    step = int(gan.step.numpy())
    if step:
        _check_same_data(config, manifest)
    elif gan.clusters is not None:  # a resumed run restored its clusters with the weights
        _fit_clusters(config, manifest, gan, chief)
    if step >= config.train_steps:
        return TrainResult(step, "already_complete", store.latest, {}, gan.fingerprint())
    if step and chief:
        print(f"trainer: resuming at step {step} from {restored}", flush=True)
    if chief:
        workspace.pull()
        local_job = layout.JobDir(workspace.job.local)
        storage.write_text(local_job.flags, config_lib.to_flags_text(config))
        storage.write_text(local_job.config, common_settings.to_json(config))
        record = {"data_dir": config.data_dir, "fingerprint": manifest.fingerprint}
        storage.write_text(local_job.data_record, json.dumps(record, indent=2) + "\n")
        workspace.push()

    dataset = strategy.distribute_datasets_from_function(
        data.make_dataset_fn(
            config.data_dir,
            manifest,
            config.batch_size,
            config.training_ratio,
            config.seed,
            start_step=step,
        )
    )
    iterator = iter(dataset)
    run_steps = gan.make_train_function()
    stop_any = _make_stop_consensus(strategy)
    reporter = Reporter(
        workspace.job.local,
        workspace.logs_dir,
        config.train_steps,
        config.batch_size,
        enabled=chief,
        deadline=started + config.max_minutes * 60 if config.max_minutes else None,
    )
    sample_z, sample_labels = sample_inputs(config, manifest.spec.kept)
    evaluate = _make_evaluator(config, manifest, gan) if chief and config.eval_every else None
    reporter.start(step)
    totals = dict.fromkeys(gan.metric_names, 0.0)
    steps_since_log = 0
    # Seconds in train steps vs in everything else (samples, evaluation, checkpoints, uploads):
    # images/s counts only the first; the second is reported beside it.
    train_seconds = maintenance_seconds = 0.0
    seconds = {"steps": 0.0, "maintenance": 0.0}
    last_metrics: dict = {}
    stopped_by = "steps"
    try:
        while step < config.train_steps:
            n = _next_event(step, config) - step
            began = time.perf_counter()
            try:
                metrics, finite = run_steps(iterator, tf.constant(n, tf.int64))
                finite = bool(finite)  # waits for the steps to finish
            except tf.errors.OpError as e:
                known = data.input_error(e)
                if known is None:
                    raise
                raise known from e
            elapsed = time.perf_counter() - began
            train_seconds += elapsed
            seconds["steps"] += elapsed
            if not finite:
                values = {k: float(v) for k, v in metrics.items()}
                raise NonFiniteLossError(
                    f"non-finite loss between steps {step} and {step + n} "
                    f"({', '.join(f'{k}={v}' for k, v in values.items())}); "
                    f"last good checkpoint kept: {store.latest or 'none'}"
                )
            step += n
            for k in gan.metric_names:
                totals[k] += float(metrics[k]) * n
            steps_since_log += n
            done = step >= config.train_steps
            if step % config.log_every == 0 or done:
                last_metrics = reporter.log(
                    step,
                    {k: v / steps_since_log for k, v in totals.items()},
                    extra=_schedule_report(config, step),
                    train_seconds=train_seconds,
                    maintenance_seconds=maintenance_seconds,
                )
                totals, steps_since_log = dict.fromkeys(gan.metric_names, 0.0), 0
                train_seconds = maintenance_seconds = 0.0
            began = time.perf_counter()
            if step % config.sample_every == 0 or done:
                reporter.samples(step, gan.sample(sample_z, sample_labels))
            if evaluate is not None and (step % config.eval_every == 0 or done):
                reporter.eval_started(step, config.eval_samples)
                evaluated = time.perf_counter()
                scores, floor = evaluate()
                last_metrics.update(
                    reporter.log_eval(step, scores, time.perf_counter() - evaluated, floor)
                )
            out_of_time = (
                config.max_minutes > 0 and (time.monotonic() - started) > config.max_minutes * 60
            )
            stop = stop_any(should_stop() or out_of_time)
            if step % config.checkpoint_every == 0 or done or stop:
                bad = gan.non_finite_weights()
                if bad:
                    raise NonFiniteLossError(
                        f"non-finite weights at step {step} ({bad[0]}"
                        f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}); "
                        f"not saved; last good checkpoint kept: {store.latest or 'none'}"
                    )
                # Artifacts first, so a committed checkpoint never has fewer metrics than steps;
                # extra records beyond a checkpoint are dropped when a resumed run starts.
                if chief:
                    workspace.push()
                store.save(step)
            elapsed = time.perf_counter() - began
            maintenance_seconds += elapsed
            seconds["maintenance"] += elapsed
            if stop and not done:
                stopped_by = "signal" if should_stop() else "time"
                break
    finally:
        reporter.close()
        # Stop the input pipeline now: an error's traceback keeps this frame (and the iterator)
        # alive, and tf.data threads calling into Python during interpreter exit abort it.
        del iterator, dataset
        gc.collect()
    return TrainResult(step, stopped_by, store.latest, last_metrics, gan.fingerprint(), seconds)


def _schedule_report(config: TrainConfig, step: int) -> dict[str, float]:
    """The learning rates' factor on the last step run, when they decay (``lr_scale``)."""
    if not schedule.decays(config.train_steps, config.lr_decay_start):
        return {}
    scale = schedule.learning_rate_scale(step - 1, config.train_steps, config.lr_decay_start)
    return {schedule.LR_SCALE: float(scale)}


def _check_same_data(config: TrainConfig, manifest: Manifest) -> None:
    """A resumed run continues on the data its checkpoint was trained on, unless told otherwise."""
    path = layout.JobDir(config.job_dir).data_record
    if config.allow_data_change or not storage.exists(path):
        return
    try:
        trained_on = json.loads(storage.read_text(path))
        previous = str(trained_on["fingerprint"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise data.DataError(f"{path}: unreadable ({type(e).__name__})") from e
    if previous != manifest.fingerprint:
        raise data.DataError(
            f"{config.job_dir}: its checkpoint was trained on data {previous[:12]}… "
            f"({trained_on.get('data_dir')}), --data_dir={config.data_dir} holds "
            f"{manifest.fingerprint[:12]}…; pass --allow_data_change to train on anyway"
        )


def _make_evaluator(
    config: TrainConfig, manifest: Manifest, gan: Gan
) -> Callable[[], tuple[dict, dict]]:
    """The export's evaluator, run on the sampler every --eval_every steps: (the sampler's
    metrics, real training images' at the same sample count). FD on 2,000 samples reads ~4× its
    value on the export's 10,000: only the floor beside it says what a number means."""
    from trainer import evaluation

    evaluator = evaluation.make_evaluator(
        config.data_dir,
        manifest,
        config.classifier_dir,
        config.eval_samples,
        config.feature_extractor,
    )
    train = data.load_examples(config.data_dir, manifest, "train", config.eval_samples).images
    floor = evaluator.real_floor(train)
    return lambda: (
        evaluator.evaluate(gan.sample, config.latent_dim, config.conditional),
        floor,
    )


def _make_stop_consensus(strategy: tf.distribute.Strategy) -> Callable[[bool], bool]:
    """All workers stop at the same step if any one of them must (SIGTERM, time limit)."""
    if strategy.extended._in_multi_worker_mode():

        @tf.function
        def any_worker(flag: tf.Tensor) -> tf.Tensor:
            per_replica = strategy.run(lambda: tf.cast(flag, tf.int32))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None) > 0

        return lambda local: bool(any_worker(tf.constant(local)))
    return lambda local: local
