"""Files that ship with the project: the MNIST IDX files and the evaluation classifiers.

In a checkout they are the repository's ``data/``; ``pip install .`` carries the same files as
package data in ``common/bundled_data/`` (setup.py), so the installed commands need no checkout.
"""

from __future__ import annotations

import os

_INSTALLED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bundled_data")
_CHECKOUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")


def path(*parts: str) -> str:
    """A path inside the bundled data: ``path("mnist")``, ``path("classifiers")``."""
    root = _INSTALLED if os.path.isdir(_INSTALLED) else _CHECKOUT
    return os.path.join(root, *parts)
