"""Choosing the ``tf.distribute`` strategy: a registry keyed by ``--strategy``."""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import signal
from collections.abc import Callable

import tensorflow as tf

from trainer import config as config_lib
from trainer.config import ConfigError, TrainConfig

TPU_ENV_VARS = (
    "TPU_NAME",
    "TPU_WORKER_ID",
    "KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS",
    "TPU_ACCELERATOR_TYPE",
)


def configure_cpu_replicas(count: int) -> list[str]:
    """Split the host CPU into ``count`` logical devices (must run before TF initializes)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    )
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def _tpu_visible(config: TrainConfig) -> bool:
    return bool(
        config.tpu
        or any(os.environ.get(v) for v in TPU_ENV_VARS)
        or glob.glob("/dev/accel*")
        or glob.glob("/dev/vfio/[0-9]*")
    )


def _default(config: TrainConfig) -> tf.distribute.Strategy:
    return tf.distribute.get_strategy()


def _mirrored(config: TrainConfig) -> tf.distribute.Strategy:
    if config.cpu_replicas:
        return tf.distribute.MirroredStrategy(configure_cpu_replicas(config.cpu_replicas))
    return tf.distribute.MirroredStrategy()


def _multi_worker(config: TrainConfig) -> tf.distribute.Strategy:
    raw = os.environ.get("TF_CONFIG", "")
    try:
        cluster = json.loads(raw).get("cluster", {}) if raw else {}
    except json.JSONDecodeError as e:
        raise ConfigError(f"--strategy=multi_worker: TF_CONFIG is not valid JSON ({e})") from e
    if not cluster:
        raise ConfigError("--strategy=multi_worker needs TF_CONFIG with a cluster spec")
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING
    )
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def _tpu(config: TrainConfig) -> tf.distribute.Strategy:
    if not _tpu_visible(config):
        raise ConfigError(
            "--strategy=tpu: no TPU found (no --tpu, TPU_NAME or /dev/accel*); "
            "run on a TPU VM or pass --tpu=NAME"
        )
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=config.tpu or None)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError) as e:
        raise ConfigError(f"--strategy=tpu: cannot reach TPU {config.tpu!r}: {e}") from e
    return tf.distribute.TPUStrategy(resolver)


def _auto(config: TrainConfig) -> tf.distribute.Strategy:
    if _tpu_visible(config):
        return _tpu(config)
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return _mirrored(config)
    return _default(config)


STRATEGIES: dict[str, Callable[[TrainConfig], tf.distribute.Strategy]] = {
    "auto": _auto,
    "default": _default,
    "mirrored": _mirrored,
    "multi_worker": _multi_worker,
    "tpu": _tpu,
}


def make_strategy(config: TrainConfig) -> tf.distribute.Strategy:
    # Multi-worker TF starts a coordination service whose preemption notifier installs a C-level
    # SIGTERM handler over the process's own: the trainer would then train on through a
    # preemption notice. Put the process's handlers back.
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    strategy = STRATEGIES[config.strategy](config)
    for signum, handler in handlers.items():
        if handler is not None:
            signal.signal(signum, handler)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ConfigError(
            f"--batch_size={config.batch_size} does not split over {replicas} replicas"
        )
    return strategy


def worker_id(strategy: tf.distribute.Strategy) -> int:
    """A number per process: the chief 0, the workers after it (Vertex: a chief and workers)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return 0
    index = int(resolver.task_id or 0)
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return index + 1 if resolver.task_type == "worker" and has_chief else index


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """The worker that writes shared artifacts (logs, samples, checkpoints' final copy)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (
        task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()
    )


def device_kind(strategy: tf.distribute.Strategy) -> str:
    """``tpu``, ``gpu`` or ``cpu``: what the replicas run on."""
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"


def cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return ""


def resolve_device_settings(config: TrainConfig, strategy: tf.distribute.Strategy) -> TrainConfig:
    """``--mixed_precision=auto`` made concrete for this device, as ``flags.txt`` records it."""
    if config.mixed_precision != config_lib.AUTO:
        return config
    kind = device_kind(strategy)
    precision = config_lib.auto_mixed_precision(kind, cpu_flags() if kind == "cpu" else "")
    return dataclasses.replace(config, mixed_precision=precision)
