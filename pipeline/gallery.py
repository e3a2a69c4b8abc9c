"""The sample gallery: one self-contained HTML page with the PNGs beside it.

A 10×10 grid of samples (rows = classes for a conditional model) beside the same grid of
training images as the model sees them (``reals.png``, as StyleGAN2-ADA writes), the grids saved
during training in order, loss and metric curves, the metrics table with the real-data reference,
a latent interpolation strip, and the run's settings.
"""

from __future__ import annotations

import dataclasses
import html
import os
import re
from collections.abc import Callable, Sequence

import numpy as np

from common import layout, storage
from common.schema import Manifest
from trainer import evaluation, progress, stats
from trainer.loop import sample_inputs

# The evaluations during training, one panel each, after the training statistics' panels.
EVAL_CURVES = [
    (f"{metric.curve} (eval, {{n}} samples)", (f"eval_{name}",))
    for name, metric in evaluation.METRICS.items()
    if metric.curve
]


SAMPLE_NAME = re.compile(r"^step-\d{8}\.png$")  # progress.sample_name


def _slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if omega < 1e-6:
        return (1 - t) * a + t * b
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def interpolation_inputs(
    latent_dim: int, digits: list[int], rows: int = 5, steps: int = 10, seed: int = 99
):
    """``rows`` spherical interpolations between random latents, ``steps`` images each."""
    rng = np.random.default_rng(seed)
    ends = rng.standard_normal((rows, 2, latent_dim))
    z = np.stack([_slerp(a, b, t) for a, b in ends for t in np.linspace(0, 1, steps)])
    labels = np.repeat(np.asarray(digits, np.int32)[np.arange(rows) % len(digits)], steps)
    return z.astype(np.float32), labels


def _read_metrics(job_dir: str) -> list[dict]:
    path = layout.JobDir(job_dir).metrics_log
    if not storage.exists(path):
        return []
    # Torn or foreign lines are skipped, as a resuming trainer skips them.
    return progress.kept_records(storage.read_text(path), step=2**62)


def plot_curves(records: list[dict], path: str, eval_samples: int) -> None:
    """Loss and evaluation curves; evaluation panels name their sample count, which may differ
    from the metrics table's (--eval_samples during training vs the export's)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    present = list(dict.fromkeys(key for record in records for key in record))
    panels = stats.panels(present) + [
        (title, keys) for title, keys in EVAL_CURVES if any(k in present for k in keys)
    ]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(4.5 * max(len(panels), 1), 3.2))
    for ax, (title, keys) in zip(np.atleast_1d(axes), panels, strict=False):
        for key in keys:
            points = [(r["kimg"], r[key]) for r in records if key in r]
            if points:
                ax.plot(*zip(*points, strict=True), label=key)
        ax.set_title(title.format(n=eval_samples))
        ax.set_xlabel("kimg")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _metrics_rows(metrics: dict) -> str:
    rows = []
    for key, value in metrics["model"].items():
        floor = metrics["real_floor"].get(key)
        floor_text = f"{floor:.4f}" if isinstance(floor, float) else "—"
        rows.append(
            f"<tr><td>{html.escape(key)}</td><td>{value:.4f}</td><td>{floor_text}</td></tr>"
        )
    return "\n".join(rows)


def reals_grid(
    images: np.ndarray, labels: np.ndarray, classes: Sequence[int], by_class: bool
) -> np.ndarray:
    """10×10 training images laid out as the samples are: row r holds class ``classes[r]`` when
    the samples' rows are classes (a class with fewer images leaves black cells), else the
    first 100 images."""
    side = 10

    def filled(picked: np.ndarray, count: int) -> np.ndarray:  # black cells after the images
        blank = np.full((count - len(picked), *images.shape[1:]), -1.0, images.dtype)
        return np.concatenate([picked, blank])

    if not by_class:
        return progress.image_grid(filled(images[: side * side], side * side), rows=side)
    rows = [filled(images[labels == k][:side], side) for k in list(classes)[:side]]
    return progress.image_grid(np.concatenate(rows), rows=len(rows))


def nearest_grid(samples: np.ndarray, train: np.ndarray, nearest: np.ndarray) -> np.ndarray:
    """One row per sample: the sample, then the training images ``nearest`` indexes for it."""
    rows = [
        np.concatenate([sample[None], train[indices]])
        for sample, indices in zip(samples, nearest, strict=True)
    ]
    return progress.image_grid(np.concatenate(rows), rows=len(rows))


def write(
    out_dir: str,
    gan,
    config,
    manifest: Manifest,
    metrics: dict,
    job_dir: str,
    reals: tuple[np.ndarray, np.ndarray],
    nearest: Callable[[np.ndarray], np.ndarray | None] = lambda images: None,
) -> str:
    """Render the gallery into local ``out_dir``; return the path of index.html. ``reals``:
    (images, labels) of training images, shown as the model sees them beside the samples;
    ``nearest``: indices into ``reals`` of images' nearest training images (the evaluator's)."""
    os.makedirs(os.path.join(out_dir, "progress"), exist_ok=True)
    spec = manifest.spec
    z, labels = sample_inputs(config, spec.kept)
    samples = gan.sample(z, labels)
    with open(os.path.join(out_dir, "samples.png"), "wb") as f:
        f.write(progress.png_bytes(progress.image_grid(samples, rows=10), scale=3))
    shown = samples[::10]  # the first of each row: one per class when conditional
    closest = nearest(shown)
    nearest_html = ""
    if closest is not None:
        with open(os.path.join(out_dir, "nearest.png"), "wb") as f:
            f.write(progress.png_bytes(nearest_grid(shown, reals[0], closest), scale=3))
        nearest_html = f"""<h2>Nearest training images</h2>
<p>Each row: a sample (the first of each row above), then its {closest.shape[1]} nearest training images
in the evaluation's feature space. Copies would look alike; the memorization share counts them.</p>
<img src="nearest.png" alt="samples and their nearest training images">"""
    with open(os.path.join(out_dir, "reals.png"), "wb") as f:
        grid = reals_grid(*reals, spec.kept, by_class=config.conditional)
        f.write(progress.png_bytes(grid, scale=3))
    z, labels = interpolation_inputs(config.latent_dim, list(spec.kept) or [0])
    with open(os.path.join(out_dir, "interpolation.png"), "wb") as f:
        f.write(progress.png_bytes(progress.image_grid(gan.sample(z, labels), rows=5), scale=3))
    progress_images = []
    for path in storage.list_files(layout.JobDir(job_dir).samples):
        name = path.rsplit("/", 1)[1]
        if not SAMPLE_NAME.match(name):
            continue  # not a grid the trainer wrote (a user's file, an editor's backup)
        storage.download_file(path, os.path.join(out_dir, "progress", name))
        progress_images.append(name)
    records = _read_metrics(job_dir)
    plot_curves(records, os.path.join(out_dir, "curves.png"), config.eval_samples)
    settings = "\n".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in dataclasses.asdict(config).items()
    )
    progress_html = "\n".join(
        f'<figure><img src="progress/{html.escape(n)}" alt="{html.escape(n)}">'
        f"<figcaption>step {int(n.split('-')[1].split('.')[0])}</figcaption></figure>"
        for n in sorted(progress_images)
    )
    row_classes = [spec.class_names[k] for k in spec.kept[:10]]
    row_note = (
        f"rows are the classes {', '.join(row_classes)}"
        if config.conditional
        else "unconditional samples"
    )
    kind = "class-conditional" if config.conditional else "unconditional"
    width = f"width {config.model_width}" + (f" (D {config.d_width})" if config.d_width else "")
    model_name = (
        f"{kind} {config.architecture} GAN, {config.loss} loss, {width}, on {spec.describe()}"
    )
    feature_note = f"in {metrics['feature_space']}"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>GAN gallery: {html.escape(model_name)}, step {metrics["step"]}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
img {{ image-rendering: pixelated; max-width: 100%; height: auto; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; }}
.strip {{ display: flex; flex-wrap: wrap; gap: 8px; }} figure {{ margin: 0; }}
.strip img {{ width: 140px; }} figcaption {{ font-size: 12px; text-align: center; }}
.pair {{ display: flex; flex-wrap: wrap; gap: 16px; }} .pair img {{ width: 504px; max-width: 100%; }}
</style></head><body>
<h1>{html.escape(model_name)} — step {metrics["step"]}</h1>
<h2>Samples</h2><p>10×10 samples from fixed latents ({row_note}), {metrics["generator"]} generator,
beside training images as the model sees them (the stored records, laid out the same way).</p>
<div class="pair"><figure><img src="samples.png" alt="final samples" width="504"><figcaption>samples</figcaption></figure>
<figure><img src="reals.png" alt="training images" width="504"><figcaption>training images</figcaption></figure></div>
{nearest_html}
<h2>Metrics</h2>
<p>On {metrics["num_samples"]} samples against the test split, {feature_note}.
The real-data floor compares training images with the test split.</p>
<table><tr><th>metric</th><th>model</th><th>real data</th></tr>
{_metrics_rows(metrics)}
</table>
<h2>Training curves</h2><img src="curves.png" alt="training curves">
<h2>How the samples formed</h2><div class="strip">{progress_html}</div>
<h2>Latent interpolation</h2><p>Each row walks a great circle between two random latents.</p>
<img src="interpolation.png" alt="latent interpolation" width="504">
<h2>Settings</h2><table>{settings}</table>
</body></html>
"""
    index = os.path.join(out_dir, "index.html")
    with open(index, "w") as f:
        f.write(page)
    return index
