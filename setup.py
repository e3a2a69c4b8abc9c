"""Packaging for Dataflow workers (``--setup_file=./setup.py``) and ``pip install .``.

Pinned versions live in requirements.lock; the ranges here only keep workers compatible.
"""

import setuptools

setuptools.setup(
    name="gan-pipeline",
    version="0.1.0",
    description="Distributed batch training pipeline for GANs on TensorFlow: Beam preprocessing, "
    "tf.distribute training, export.",
    python_requires=">=3.11,<3.12",
    packages=setuptools.find_packages(
        include=["common*", "preprocessing*", "trainer*", "pipeline*"]
    ),
    install_requires=[
        "absl-py>=2.1",
        "apache-beam[gcp]>=2.77,<2.78",
        "google-cloud-storage>=3.17,<4",
        "google-crc32c>=1.5,<2",
        "numpy>=2,<3",
        "pillow>=12,<13",
        "scipy>=1.14,<2",
        "tensorflow>=2.21,<2.22",
        "tensorboard>=2.21,<2.22",
    ],
    extras_require={
        "tfds": ["tensorflow-datasets>=4.9.10,<5"],
        "cloud": ["google-cloud-aiplatform>=1.165,<2"],
    },
)
