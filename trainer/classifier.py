"""The evaluator's feature extractor: a small classifier, trained once per labelled data set.

Inception features are neither available offline nor meaningful for 28×28 digits, so the
pipeline trains its own classifier on the training split (streamed, in the data's shape and
classes) and uses its penultimate layer as the feature space (Fréchet distance,
precision/recall) and its softmax as p(y|x) (classifier score, coverage). Stacked MNIST trains
a digit classifier on its channels, one digit each, to read the three digits of a sample. It is
keyed by the data manifest's fingerprint: the same data set never trains it twice, and a
different one never reuses it. For the data the project ships (MNIST and Stacked MNIST as
preprocessing makes them by default) the classifier ships too, in ``data/classifiers/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from common import bundled, schema, storage
from common.cli import UserError
from trainer import config as config_lib
from trainer import data, strategy

MODEL_FILE = "classifier.keras"
INFO_FILE = "classifier.json"
FEATURE_LAYER = "features"
MIN_ACCURACY = 0.99
# Stacked MNIST's 128,000 stacks hold each of MNIST's 60,000 training digits ~6 times over: an
# epoch of every stack is six MNIST epochs. Two MNIST epochs' worth per epoch: one fell short of
# the 99% floor.
DIGITS_PER_EPOCH = 120_000
BATCH = 128
# A classifier sees at least this many images, over at least MIN_EPOCHS and at most MAX_EPOCHS
# passes: three epochs of MNIST; tens of a folder of a few thousand images, which three epochs
# left undertrained (benchmarks/README.md, "Limited data").
MIN_IMAGES = 60_000
MIN_EPOCHS = 3
MAX_EPOCHS = 30
# Random shifts of up to this fraction of the side (reflected at the border) while training:
# labels survive them for digits, emoji and photos alike, unlike flips and rotations.
SHIFT = 1 / 8
DEFAULT_CACHE = os.path.join(tempfile.gettempdir(), f"gan-pipeline-{os.getuid()}", "classifiers")


class ClassifierError(UserError, RuntimeError):
    """The classifier could not be trained to the accuracy the metrics rely on."""


def build(
    shape: tuple[int, int, int], num_classes: int, seed: int = 0, dtype: str = "float32"
) -> keras.Model:
    """The classifier in a dtype policy of its own (``float32`` or ``mixed_bfloat16``), whatever
    the process's global one: the trainer sets that from --mixed_precision before it evaluates."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape)
    x = inputs
    filters = 32
    while True:  # two blocks for 28 and 32 pixels, one more per doubling: ≤ 8×8 before Dense
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", dtype=dtype)(x)
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", dtype=dtype)(x)
        x = layers.MaxPooling2D(dtype=dtype)(x)
        if filters >= 64 and max(x.shape[1:3]) <= 8:
            break
        filters = min(filters * 2, 128)
    x = layers.Flatten(dtype=dtype)(x)
    x = layers.Dropout(0.3, dtype=dtype)(x)
    features = layers.Dense(128, activation="relu", name=FEATURE_LAYER, dtype=dtype)(x)
    features = layers.Dropout(0.3, dtype=dtype)(features)
    logits = layers.Dense(num_classes, name="logits", dtype="float32")(features)
    return keras.Model(inputs, logits, name="classifier")


def training_dtype(cpu_flags: str) -> str:
    """bf16 where a CPU computes it natively (AVX512-BF16, AMX), as ``--mixed_precision=auto``
    picks it; float32 elsewhere (GPUs included: fp16 would need loss scaling for little gain
    on a model this small)."""
    if tf.config.list_physical_devices("GPU"):
        return "float32"
    bf16 = config_lib.auto_mixed_precision("cpu", cpu_flags) == "bf16"
    return config_lib.MIXED_PRECISION_POLICIES["bf16" if bf16 else "none"]


def in_float32(model: keras.Model) -> keras.Model:
    """The same weights computing in float32: features in bf16 carry 8 bits of mantissa, and the
    metrics' feature space would depend on the precision the classifier happened to train in
    (caches written before this held mixed_bfloat16 models, trained under the trainer's policy)."""
    if all(layer.dtype_policy.name == "float32" for layer in model.layers):
        return model
    config = model.get_config()
    for layer in config["layers"]:
        if "dtype" in layer["config"]:
            layer["config"]["dtype"] = "float32"
    copy = keras.Model.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


# Classifiers that ship with the project, for the data it ships (MNIST and Stacked MNIST as
# preprocessing makes them by default): a fixed feature space, as FID's Inception weights are —
# Fréchet distances compare across machines and runs — and a fresh run does not spend minutes
# training one.
BUNDLED = bundled.path("classifiers")


def cache_dir(root: str, fingerprint: str) -> str:
    return storage.join(root, fingerprint[:16])


def feature_spaces(manifest: schema.Manifest) -> list[str]:
    """The fingerprints whose classifier may score this data set, best first: a subset
    (``--train_examples``) is scored in its full data set's feature space when that classifier
    exists, as a benchmark on 1,000 digits must be; else in its own."""
    full = manifest.subset_of
    return [full, manifest.fingerprint] if full else [manifest.fingerprint]


def feature_model(model: keras.Model) -> keras.Model:
    """The classifier with two outputs: its feature layer (for FD, precision, recall) and logits."""
    return keras.Model(model.input, [model.get_layer(FEATURE_LAYER).output, model.output])


class Classifier:
    """Features and class probabilities of images in [-1, 1]."""

    def __init__(
        self,
        model: keras.Model,
        test_accuracy: float,
        sha256: str | None = None,
        directory: str | None = None,
    ):
        model = in_float32(model)
        self.model = model
        self.test_accuracy = test_accuracy
        self.sha256 = sha256  # of its saved file: names the feature space across runs
        self.directory = directory  # where it was loaded from or saved to: its floors live there
        extractor = feature_model(model)
        # One graph, not layer by layer: grappler fuses each convolution with its bias and ReLU
        # (benchmarks/LOG.md, "Evaluation classifier scoring").
        self._extractor = tf.function(
            lambda images: extractor(images, training=False),
            input_signature=[tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)],
            autograph=False,
        )

    def features_and_probs(
        self, images: np.ndarray, batch: int = 200
    ) -> tuple[np.ndarray, np.ndarray]:
        # 200 images' activations stay in cache (benchmarks/LOG.md, "Evaluation classifier
        # scoring").
        feats, probs = [], []
        for start in range(0, len(images), batch):
            f, logits = self._extractor(np.asarray(images[start : start + batch], np.float32))
            feats.append(np.asarray(f, np.float64))
            probs.append(np.asarray(keras.ops.softmax(logits), np.float64))
        return np.concatenate(feats), np.concatenate(probs)


def _channels_as_digits(images, labels):
    """Stacked MNIST → its channels as single digits: [B, 28, 28, 3] → [3B, 28, 28, 1]."""
    digits = tf.stack([labels // 100, labels // 10 % 10, labels % 10], axis=1)
    channels = tf.transpose(images, [0, 3, 1, 2])[..., None]
    return tf.reshape(channels, [-1, *images.shape[1:3], 1]), tf.reshape(digits, [-1])


def classifier_data(spec: schema.DataSpec):
    """(input shape, classes, batch transform, batches per epoch or None for all) of the
    classifier a data set is scored with."""
    if spec.stacked_mnist:
        digits_per_batch = BATCH * spec.channels  # a batch of stacks, each channel a digit
        return (
            (spec.height, spec.width, 1),
            10,
            _channels_as_digits,
            -(-DIGITS_PER_EPOCH // digits_per_batch),
        )
    return spec.shape, spec.num_classes, None, None


def epochs_for(examples: int) -> int:
    """Passes over ``examples`` training images that show the classifier ``MIN_IMAGES``."""
    return max(MIN_EPOCHS, min(MAX_EPOCHS, -(-MIN_IMAGES // max(examples, 1))))


def shifted(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """``images`` [B, H, W, C] each moved by up to ``SHIFT`` of its side, reflected at the border:
    the same ``seed`` [2] gives the same shifts."""
    height, width = images.shape[1:3]
    pad_y, pad_x = max(1, round(height * SHIFT)), max(1, round(width * SHIFT))
    padded = tf.pad(images, [[0, 0], [pad_y, pad_y], [pad_x, pad_x], [0, 0]], mode="REFLECT")
    seeds = tf.random.experimental.stateless_split(seed, tf.shape(images)[0])
    return tf.map_fn(
        lambda pair: tf.image.stateless_random_crop(
            pair[0], [height, width, images.shape[3]], pair[1]
        ),
        (padded, seeds),
        fn_output_signature=images.dtype,
    )


def train(
    data_dir: str, manifest: schema.Manifest, epochs: int | None = None, seed: int = 0
) -> Classifier:
    """A classifier of the data set's training split, with its test accuracy: ``epochs`` passes
    (by default ``epochs_for`` the split's size) of randomly shifted images, the learning rate
    falling along a cosine to zero at the last batch."""
    spec = manifest.spec
    shape, num_classes, transform, batches_per_epoch = classifier_data(spec)

    def split(name: str, shuffle_seed: int | None):
        dataset = data.split_dataset(data_dir, manifest, name, BATCH, shuffle_seed)
        if batches_per_epoch and shuffle_seed is not None:
            dataset = dataset.take(batches_per_epoch)  # each epoch a fresh shuffle's first part
        if transform:
            dataset = dataset.map(transform)
        if shuffle_seed is None:
            return dataset
        return dataset.enumerate().map(
            lambda i, batch: (shifted(batch[0], tf.stack([i, shuffle_seed])), batch[1])
        )

    examples = manifest.examples("train")
    if batches_per_epoch:
        examples = min(examples, batches_per_epoch * BATCH)
    epochs = epochs or epochs_for(examples)
    batches = epochs * (batches_per_epoch or -(-examples // BATCH))
    model = build(shape, num_classes, seed, training_dtype(strategy.cpu_flags()))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    rate = keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=batches)
    model.compile(optimizer=keras.optimizers.Adam(rate), loss=loss, metrics=["accuracy"])
    started = time.monotonic()
    per_epoch = f"{examples} {spec.describe()} images"
    if spec.stacked_mnist:  # it learns digits: the stacks' channels
        per_epoch = f"{examples * spec.channels} digits ({examples} {spec.describe()} stacks)"
    print(
        f"classifier: training the evaluation classifier on {per_epoch} per epoch, "
        f"{epochs} epochs (once per data set, then cached)",
        flush=True,
    )
    try:
        for epoch in range(epochs):  # each epoch its own shuffle, streamed from the shards
            model.fit(split("train", seed + epoch), epochs=1, shuffle=False, verbose=0)
            _epoch_line(model, epoch, epochs, started)
        scorer = in_float32(model)  # the test accuracy of the model the metrics will use
        if scorer is not model:
            scorer.compile(loss=loss, metrics=["accuracy"])
        accuracy = scorer.evaluate(split("test", None), verbose=0, return_dict=True)["accuracy"]
    except tf.errors.OpError as e:
        raise data.input_error(e) or ClassifierError(e.message.splitlines()[0]) from e
    print(
        f"classifier: test accuracy {accuracy:.4f} after {time.monotonic() - started:.0f}s",
        flush=True,
    )
    return Classifier(scorer, float(accuracy))


def _epoch_line(model: keras.Model, epoch: int, epochs: int, started: float) -> None:
    """One progress line per epoch: the classifier takes about a minute on full MNIST."""
    accuracy = float(model.get_metrics_result().get("accuracy", float("nan")))
    print(
        f"classifier: epoch {epoch + 1}/{epochs}  train accuracy {accuracy:.4f}  "
        f"{time.monotonic() - started:.0f}s",
        flush=True,
    )


def _accuracy_is_enforced(manifest: schema.Manifest) -> bool:
    """The 99% floor holds for full MNIST digits (and Stacked MNIST's channels); other data sets
    (Fashion-MNIST ≈ 92%, CIFAR-10 ≈ 75%) and tiny test sets only record their accuracy."""
    spec = manifest.spec
    digits = spec.stacked_mnist or (spec.name == "mnist" and len(spec.kept) == 10)
    return digits and manifest.examples("train") >= 50_000


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_entry(directory: str, remedy: str) -> Classifier:
    """The classifier in ``directory`` (its model file and info file), if its bytes match the
    sha256 the info file recorded: a Keras file is code as much as data, and the cache may live
    in a shared place. ``remedy`` ends the error lines."""
    info_path = storage.join(directory, INFO_FILE)
    try:
        info = json.loads(storage.read_text(info_path))
        expected, accuracy = str(info["model_sha256"]), float(info["test_accuracy"])
        model_path = storage.join(directory, _model_file(info))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ClassifierError(
            f"{info_path}: unreadable classifier entry ({type(e).__name__}); {remedy}"
        ) from e
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, MODEL_FILE)
        storage.download_file(model_path, local)
        if _sha256(local) != expected:
            raise ClassifierError(
                f"{model_path}: does not match the sha256 recorded "
                f"in {INFO_FILE}; not loading it ({remedy})"
            )
        # Not compiled: it only scores, and an optimizer state saved with it (entries written
        # by earlier versions) would only be loaded to warn that it does not fit.
        model = keras.saving.load_model(local, compile=False)
    return Classifier(model, accuracy, expected, directory)


def load_or_train(root: str, data_dir: str, manifest: schema.Manifest) -> Classifier:
    """The bundled classifier of this data set's feature space (``feature_spaces``) if the
    project ships one, else the one cached under ``root``, training and caching one for this
    data set the first time."""
    for fingerprint in feature_spaces(manifest):
        bundled = cache_dir(BUNDLED, fingerprint)
        if os.path.exists(os.path.join(bundled, INFO_FILE)):
            return _load_entry(bundled, "restore it from the project's source")
    private_root(root)
    for fingerprint in feature_spaces(manifest):
        directory = cache_dir(root, fingerprint)
        if storage.exists(storage.join(directory, INFO_FILE)):
            return _load_entry(directory, f"delete {directory} to retrain")
    directory = cache_dir(root, manifest.fingerprint)
    classifier = train(data_dir, manifest)
    if _accuracy_is_enforced(manifest) and classifier.test_accuracy < MIN_ACCURACY:
        raise ClassifierError(
            f"evaluation classifier reached {classifier.test_accuracy:.4f} test accuracy, "
            f"below {MIN_ACCURACY}; its features would not be trustworthy"
        )
    commit_entry(directory, put_model(directory, classifier), manifest.fingerprint)
    return classifier


def _model_file(info: dict) -> str:
    # Entries written before model files were named by their sha256, and the shipped ones,
    # hold MODEL_FILE.
    name = str(info.get("model_file", MODEL_FILE))
    if "/" in name or name.startswith("."):
        raise ValueError(f"model_file {name!r} is not a file name")
    return name


def put_model(directory: str, classifier: Classifier) -> dict:
    """Upload ``classifier``'s model into the cache entry ``directory`` under a name of its own
    sha256 (two runs training the same data set at once never overwrite each other's file: the
    Keras file records when it was saved); its entry's info record."""
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, MODEL_FILE)
        classifier.model.save(local)
        classifier.sha256 = _sha256(local)
        classifier.directory = directory
        name = f"classifier-{classifier.sha256[:16]}.keras"
        storage.put_file(local, storage.join(directory, name))
    return {
        "test_accuracy": classifier.test_accuracy,
        "model_sha256": classifier.sha256,
        "model_file": name,
    }


def commit_entry(directory: str, info: dict, data_fingerprint: str) -> None:
    """Write the entry's info file, after its model file: the commit. The last writer wins, and
    the model file it names is its own."""
    info = {**info, "data_fingerprint": data_fingerprint}
    storage.write_text(storage.join(directory, INFO_FILE), json.dumps(info, indent=2) + "\n")


def private_root(root: str) -> None:
    """The cache root, made private to this user before anything in it is read or written."""
    if root == DEFAULT_CACHE:  # under the shared temp dir: its parent must be ours too
        storage.private_dir(os.path.dirname(root))
    if not storage.is_gcs(root):
        storage.private_dir(root)


INCEPTION_WEIGHTS = "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"
INCEPTION_HOST = "storage.googleapis.com"
INCEPTION_SIZE = 299


class InceptionFeatures(Classifier):
    """Keras' ImageNet InceptionV3: 2048-d pool features and 1,000-class softmax (standard FID
    and Inception Score). Images are resized to 299×299, grey repeated to RGB; [-1, 1] is already
    Inception's input range."""

    def __init__(self, model: keras.Model):
        self.model = model
        self.test_accuracy = None
        self.sha256 = self.directory = None  # Keras' file, not one of ours: floors not cached
        self._extractor = keras.Model(
            model.input, [model.get_layer("avg_pool").output, model.get_layer("predictions").output]
        )

    def features_and_probs(self, images: np.ndarray, batch: int = 100):
        feats, probs = [], []
        for start in range(0, len(images), batch):
            x = tf.image.resize(images[start : start + batch], (INCEPTION_SIZE, INCEPTION_SIZE))
            if x.shape[-1] == 1:
                x = tf.repeat(x, 3, axis=-1)
            f, p = self._extractor(x, training=False)
            feats.append(np.asarray(f, np.float64))
            probs.append(np.asarray(p, np.float64))
        return np.concatenate(feats), np.concatenate(probs)


def inception() -> InceptionFeatures:
    """InceptionV3 with ImageNet weights; offline without a cached copy, one line at once."""
    from common import network

    cached = os.path.join(
        os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models", INCEPTION_WEIGHTS
    )
    if not os.path.exists(cached):
        reason = network.unreachable(INCEPTION_HOST)
        if reason:
            raise ClassifierError(
                f"--feature_extractor=inception_v3: the ImageNet weights are not in {cached} and "
                f"{INCEPTION_HOST} is unreachable ({reason}); run once online, or use "
                "--feature_extractor=own"
            )
    return InceptionFeatures(keras.applications.InceptionV3(weights="imagenet"))
