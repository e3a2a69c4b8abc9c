"""Run a module's ``main`` under ``tfds.testing.mock_data``: real tfds builders and features,
generated examples, no network. ``python -m tests.tfds_mocked N MODULE [flags…]``.

Under the mock, ``download_and_prepare`` is a no-op, so the offline probe before it (tested on
its own in tests/preprocessing) has nothing to guard and is switched off.
"""

from __future__ import annotations

import runpy
import sys

if __name__ == "__main__":
    from unittest import mock

    import tensorflow_datasets as tfds

    num_examples, module = int(sys.argv[1]), sys.argv[2]
    sys.argv = [module, *sys.argv[3:]]
    with (
        tfds.testing.mock_data(num_examples=num_examples),
        mock.patch("preprocessing.sources._probe_download_host", lambda name: None),
    ):
        runpy.run_module(module, run_name="__main__", alter_sys=True)
