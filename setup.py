"""Packaging for Dataflow workers (``--setup_file=./setup.py``) and ``pip install .``.

Pinned versions live in requirements.lock; the ranges here only keep workers compatible.
``tests/test_packaging.py`` checks that these lists name every distribution the packages import.
"""

import setuptools

INSTALL_REQUIRES = [
    "absl-py>=2.1",
    "apache-beam[gcp]>=2.77,<2.78",
    "google-api-core>=2.24,<3",
    "google-cloud-storage>=3.17,<4",
    "google-crc32c>=1.5,<2",
    "keras>=3.15,<4",
    "matplotlib>=3.10,<4",
    "numpy>=2,<3",
    "pillow>=12,<13",
    "scipy>=1.14,<2",
    "tensorflow>=2.21,<2.22",
    "tensorboard>=2.21,<2.22",
]
EXTRAS_REQUIRE = {
    "tfds": ["tensorflow-datasets>=4.9.10,<5"],
    "cloud": ["google-cloud-aiplatform>=1.165,<2"],
}
PACKAGES = ["common", "preprocessing", "trainer", "pipeline"]
# The repository's data/ (the MNIST IDX files and the shipped evaluation classifiers) installs as
# common/bundled_data/, so an installed package runs without a checkout (common/bundled.py).
BUNDLED_DATA = "common.bundled_data"

if __name__ == "__main__":
    setuptools.setup(
        name="gan-pipeline",
        version="0.1.0",
        description="Distributed batch training pipeline for GANs on TensorFlow: Beam "
        "preprocessing, tf.distribute training, export.",
        python_requires=">=3.11,<3.14",
        packages=[
            *setuptools.find_packages(include=[f"{p}*" for p in PACKAGES]),
            BUNDLED_DATA,
        ],
        package_dir={BUNDLED_DATA: "data"},
        package_data={BUNDLED_DATA: ["mnist/*", "classifiers/*/*", "classifiers/*/floors/*"]},
        install_requires=INSTALL_REQUIRES,
        extras_require=EXTRAS_REQUIRE,
        entry_points={"console_scripts": ["gan-pipeline = pipeline.console:main"]},
    )
