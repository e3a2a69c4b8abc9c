"""Progress reporting: one-line log, metrics.jsonl, TensorBoard, and sample grids.

The one-line report follows StyleGAN2-ADA's ``tick / kimg / sec/kimg`` style so a user sees
speed and health at a glance; ``metrics.jsonl`` holds the same numbers for machines.
"""

from __future__ import annotations

import io
import json
import os
import time

import numpy as np

from common import layout, schema, storage
from trainer import stats


def image_grid(images: np.ndarray, rows: int) -> np.ndarray:
    """[N, H, W, C] in [-1, 1] → one uint8 [rows*H, cols*W, C] image, row-major."""
    n, h, w, c = images.shape
    cols = int(np.ceil(n / rows))
    pixels = schema.denormalize(images)
    grid = np.zeros((rows * h, cols * w, c), np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = pixels[i]
    return grid


def png_bytes(grid: np.ndarray, scale: int = 2) -> bytes:
    from PIL import Image

    image = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    if scale > 1:
        image = image.resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def kept_records(text: str, step: int) -> list[dict]:
    """The records of ``metrics.jsonl`` up to ``step``, the run being resumed from it.

    A line that does not parse (a torn last write after a crash or a full disk) is dropped, not
    fatal: the records are a log, and every one of them after the checkpoint is rewritten anyway.
    """
    kept = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
            if int(record["step"]) <= step:
                kept.append(record)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
    return kept


def duration(seconds: float | None) -> str:
    """``1h02m``, ``3m05s``, ``12s``; ``?`` before the first report."""
    if seconds is None:
        return "?"
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def sample_name(step: int) -> str:
    """Sortable by step: samples/step-00001000.png."""
    return f"step-{step:08d}.png"


class Reporter:
    """Writes progress into a local job directory (the chief's only)."""

    def __init__(
        self,
        job_dir: str,
        logs_dir: str,
        total_steps: int,
        global_batch: int,
        enabled: bool = True,
        deadline: float | None = None,
    ):
        self.deadline = deadline  # time.monotonic() at which --max_minutes ends the run
        self.job = layout.JobDir(job_dir)
        self.total_steps = total_steps
        self.global_batch = global_batch
        self.enabled = enabled
        self._last_time = time.perf_counter()
        self._last_step: int | None = None
        self._writer = None
        if enabled:
            import tensorflow as tf

            os.makedirs(self.job.samples, exist_ok=True)
            self._writer = tf.summary.create_file_writer(logs_dir)

    def start(self, step: int) -> None:
        """Begin (or resume) at ``step``: records logged after it by a killed run are dropped."""
        self._last_time, self._last_step = time.perf_counter(), step
        path = self.job.metrics_log
        if self.enabled and os.path.exists(path):
            with open(path) as f:
                kept = kept_records(f.read(), step)
            storage.write_text(path, "".join(json.dumps(r) + "\n" for r in kept))

    def log(
        self,
        step: int,
        metrics: dict[str, float],
        extra: dict | None = None,
        train_seconds: float | None = None,
        maintenance_seconds: float = 0.0,
    ) -> dict:
        """Report the mean metrics of the steps since the last report.

        images/s counts ``train_seconds`` only (all the time since the last report when not
        given); the time left is at the current wall-clock rate, maintenance included, to
        ``--train_steps`` or to the ``--max_minutes`` deadline, whichever comes first.
        """
        now = time.perf_counter()
        steps = step - (self._last_step if self._last_step is not None else step)
        elapsed = now - self._last_time
        busy = train_seconds if train_seconds is not None else elapsed
        images_per_s = steps * self.global_batch / busy if busy > 0 and steps else 0.0
        left = (self.total_steps - step) * elapsed / steps if steps else None
        if self.deadline is not None:
            until_deadline = max(self.deadline - time.monotonic(), 0.0)
            left = until_deadline if left is None else min(left, until_deadline)
        record = {
            "step": step,
            "kimg": step * self.global_batch / 1000.0,
            "images_per_s": images_per_s,
            "sec_per_kimg": 1000.0 / images_per_s if images_per_s else None,
            "train_s": busy,
            "maintenance_s": maintenance_seconds,
            "time_left_s": left,
            **{k: float(v) for k, v in metrics.items()},
            **(extra or {}),
        }
        self._last_time, self._last_step = now, step
        if not self.enabled:
            return record
        print(
            f"step {step:>7d}/{self.total_steps}  kimg {record['kimg']:8.1f}  "
            f"img/s {images_per_s:7.0f}  maint {maintenance_seconds:5.1f}s  "
            f"left {duration(left)}  {stats.line(record)}",
            flush=True,
        )
        self._append(record)
        return record

    def eval_started(self, step: int, num_samples: int) -> None:
        if self.enabled:
            print(f"eval {step:>7d}  scoring {num_samples} samples…", flush=True)

    def log_eval(
        self,
        step: int,
        metrics: dict[str, float],
        seconds: float = 0.0,
        floor: dict[str, float] | None = None,
    ) -> dict:
        """Evaluation results: one ``eval_*`` record in metrics.jsonl and TensorBoard; the line
        shows real images' metrics at the same sample count beside them."""
        record = {"step": step, "kimg": step * self.global_batch / 1000.0}
        record.update({f"eval_{k}": float(v) for k, v in metrics.items()})
        record["eval_seconds"] = seconds
        if self.enabled:
            from trainer import evaluation

            print(
                f"eval {step:>7d}  {seconds:.0f}s  {evaluation.summary(metrics, floor)}", flush=True
            )
            self._append(record)
        return record

    def _append(self, record: dict) -> None:
        import tensorflow as tf

        with open(self.job.metrics_log, "a") as f:
            f.write(json.dumps(record) + "\n")
        with self._writer.as_default(step=record["step"]):
            for key, value in record.items():
                if key != "step" and isinstance(value, float):
                    tf.summary.scalar(key, value)
        self._writer.flush()

    def samples(self, step: int, images: np.ndarray, rows: int = 10) -> str | None:
        """Write a PNG grid to samples/ and the same grid to TensorBoard."""
        if not self.enabled:
            return None
        import tensorflow as tf

        grid = image_grid(images, rows)
        path = os.path.join(self.job.samples, sample_name(step))
        storage.write_bytes(path, png_bytes(grid))
        with self._writer.as_default(step=step):
            tf.summary.image("samples", grid[None], max_outputs=1)
        self._writer.flush()
        return path

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
