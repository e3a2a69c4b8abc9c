"""Run a module's ``main`` under ``tfds.testing.mock_data``: real tfds builders and features,
generated examples, no network. ``python -m tests.tfds_mocked N MODULE [flags…]``."""

from __future__ import annotations

import runpy
import sys

if __name__ == "__main__":
    import tensorflow_datasets as tfds

    num_examples, module = int(sys.argv[1]), sys.argv[2]
    sys.argv = [module, *sys.argv[3:]]
    with tfds.testing.mock_data(num_examples=num_examples):
        runpy.run_module(module, run_name="__main__", alter_sys=True)
