"""The export's README.md: what the model is and how to call it."""

from __future__ import annotations

from common.schema import Manifest


def render(config, manifest: Manifest, metrics: dict) -> str:
    model, floor = metrics["model"], metrics["real_floor"]
    spec = manifest.spec
    shape = f"[2, {spec.height}, {spec.width}, {spec.channels}]"
    picked = list(spec.kept[:2]) * 2
    label_arg = f", label=tf.constant({picked[:2]}, tf.int32)" if config.conditional else ""
    names = ", ".join(f"{k}: {spec.class_names[k]}" for k in spec.kept[:12])
    label_doc = (
        f"\n- `label`: int32 `[batch]`, the class to draw ({names}"
        f"{', …' if len(spec.kept) > 12 else ''})"
        if config.conditional
        else ""
    )
    scored = f"in {metrics['feature_space']}"
    rows = "\n".join(
        f"| {k} | {v:.4f} | {floor[k]:.4f} |" if k in floor else f"| {k} | {v:.4f} | — |"
        for k, v in model.items()
    )
    return f"""# {spec.name} GAN generator ({config.architecture}, {config.loss})

A {"class-conditional " if config.conditional else ""}generator of {spec.height}×{spec.width}
{"RGB" if spec.channels == 3 else "greyscale"} images like {spec.describe()},
trained for {metrics["step"]} steps at batch {config.batch_size}
(data fingerprint `{manifest.fingerprint[:16]}`). Weights: the {metrics["generator"]} generator,
sha256 `{metrics["weights_sha256"][:16]}…`.

## Use

```python
import tensorflow as tf

generator = tf.saved_model.load("generator")
serve = generator.signatures["serving_default"]
z = tf.random.normal([2, {config.latent_dim}])
images = serve(z=z{label_arg})["images"]  # float32 {shape} in [-1, 1]
pixels = tf.cast(tf.round((images + 1.0) * 127.5), tf.uint8)
```

Inputs of `serving_default`:
- `z`: float32 `[batch, {config.latent_dim}]`, standard normal{label_doc}

Output: `images`, float32 `[batch, {spec.height}, {spec.width}, {spec.channels}]` in [-1, 1]
(`x / 127.5 - 1` of a pixel).

## Quality

On {metrics["num_samples"]} samples vs the {spec.name} test split, {scored}
(real data = training images vs test):

| metric | model | real data |
| --- | --- | --- |
{rows}

`gallery/index.html` shows samples, training progress and curves; `flags.txt` holds the exact
training flags (`python -m trainer.task --flagfile=flags.txt` reproduces the run) and
`manifest.json` the data set.
"""
