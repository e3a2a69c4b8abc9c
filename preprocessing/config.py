"""Every preprocessing setting, written once; ``preprocessing/run.py`` generates its flags from
these fields and runs a ``PreprocessConfig``. Every other flag it is given is a Beam pipeline
option. No Beam or TensorFlow import here."""

from __future__ import annotations

import dataclasses

from common import bundled
from common.settings import setting

BUNDLED_MNIST = bundled.path("mnist")


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
    output_dir: str = setting(
        None, "Where to write the TFRecords and manifest (local or gs://).", required=True
    )
    source: str = setting(
        BUNDLED_MNIST,
        "Where the images are (local or gs://): a directory of the four IDX files (MNIST, "
        "Fashion-MNIST, … any size, raw or .gz); a folder of PNG/JPEG images, labelled by their "
        "sub-folders or unlabelled when flat; or tfds:NAME[/CONFIG][:VERSION] for a "
        "tensorflow-datasets data set ('tfds' alone is tfds:mnist). Defaults to the bundled MNIST.",
    )
    classes: tuple[str, ...] = setting(
        (),
        "Keep only these classes, by name or index, e.g. '0' or '0,3' (MNIST digits). Empty keeps "
        "all.",
        aliases=("digits",),
    )
    num_shards: int = setting(
        4,
        "TFRecord files per split, at least; big splits get one more per 256 MB of records.",
        lower=1,
    )
    compression: str = setting("gzip", "TFRecord compression.", choices=("gzip", "none"))
    tfds_data_dir: str = setting(
        None, "tensorflow-datasets data_dir for --source=tfds:… (tfds's default)."
    )
    image_size: int = setting(
        0,
        "Resize every image so its shorter side is this many pixels, then crop the centre "
        "square. 0 keeps the source's size (then every image must have it).",
        lower=0,
    )
    background: str = setting(
        "white",
        "Image files: the colour their transparent pixels (alpha, a palette's transparency) are "
        "composited over, as a viewer shows them: a name, #rrggbb or rgb(r,g,b).",
    )
    channels: str = setting(
        "auto", "1 (grey) or 3 (RGB); auto: the first image's.", choices=("auto", "1", "3")
    )
    max_bad_images: int = setting(
        0,
        "Images that do not decode (or have the wrong size) are skipped and named in the "
        "manifest; more than this many fail the job.",
        lower=0,
    )
    test_percent: int = setting(
        10,
        "Image folders: the share of images (by path hash) held out as the test split.",
        lower=1,
        upper=50,
    )
    stacked_mnist: bool = setting(
        False,
        "Build Stacked MNIST from an IDX --source: three random digits as R, G, B (1,000 modes).",
    )
    stacked_examples: int = setting(
        128_000, "Stacked MNIST training stacks (the test split gets a tenth).", lower=1
    )
    train_examples: int = setting(
        0,
        "Keep only the first N training examples, in the source's order (IDX, tfds: file order; "
        "folders: sorted paths), and the whole test split: a limited-data copy of a data set, "
        "scored in the full data set's feature space. 0 keeps all.",
        lower=0,
    )
