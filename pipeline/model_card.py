"""The export's README.md: what the model is and how to call it."""

from __future__ import annotations


def render(config, manifest: dict, metrics: dict) -> str:
    model, floor = metrics["model"], metrics["real_floor"]
    label_arg = ", label=tf.constant([3, 7], tf.int32)" if config.conditional else ""
    label_doc = (
        "\n- `label`: int32 `[batch]`, the digit to draw (0–9)" if config.conditional else ""
    )
    rows = "\n".join(
        f"| {k} | {v:.4f} | {floor[k]:.4f} |" if k in floor else f"| {k} | {v:.4f} | — |"
        for k, v in model.items()
    )
    return f"""# MNIST GAN generator ({config.architecture}, {config.loss})

A {"class-conditional " if config.conditional else ""}generator of 28×28 handwritten digits,
trained for {metrics["step"]} steps at batch {config.batch_size} on MNIST digits {manifest["digits"]}
(data fingerprint `{manifest["fingerprint"][:16]}`). Weights: the {metrics["generator"]} generator,
sha256 `{metrics["weights_sha256"][:16]}…`.

## Use

```python
import tensorflow as tf

generator = tf.saved_model.load("generator")
serve = generator.signatures["serving_default"]
z = tf.random.normal([2, {config.latent_dim}])
images = serve(z=z{label_arg})["images"]  # float32 [2, 28, 28, 1] in [-1, 1]
pixels = tf.cast(tf.round((images + 1.0) * 127.5), tf.uint8)
```

Inputs of `serving_default`:
- `z`: float32 `[batch, {config.latent_dim}]`, standard normal{label_doc}

Output: `images`, float32 `[batch, 28, 28, 1]` in [-1, 1] (`x / 127.5 - 1` of a pixel).

## Quality

On {metrics["num_samples"]} samples vs the MNIST test split, in the feature space of a classifier
with {metrics["classifier_test_accuracy"]:.4f} test accuracy (real data = training images vs test):

| metric | model | real data |
| --- | --- | --- |
{rows}

`gallery/index.html` shows samples, training progress and curves; `flags.txt` holds the exact
training flags (`python -m trainer.task --flagfile=flags.txt` reproduces the run) and
`manifest.json` the data set.
"""
