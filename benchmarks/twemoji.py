r"""Real images no one here made: Twemoji, as a user's labelled folder.

    python -m benchmarks.twemoji [--cache=~/.cache/gan-pipeline/bench] [--out=DIR]

Fetches the ``emoji-datasource-twitter`` npm package (``npm pack``, the one network step, into a
cache outside the repository), and lays its 64×64 RGBA PNGs out as ``DIR/<category>/<name>.png``
(links, by ``emoji.json``'s category; skin-tone variations included), the folder a design team
would hand over. Prints the folder and the count per category.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tarfile
from collections import Counter

PACKAGE = "emoji-datasource-twitter@16.0.0"
DEFAULT_CACHE = os.path.expanduser("~/.cache/gan-pipeline/bench")


def fetch(cache: str) -> str:
    """The unpacked package directory, fetched once."""
    root = os.path.join(cache, "emoji-datasource-twitter-16.0.0")
    if os.path.isdir(os.path.join(root, "package")):
        return os.path.join(root, "package")
    os.makedirs(root, exist_ok=True)
    subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=root, check=True)
    (archive,) = [n for n in os.listdir(root) if n.endswith(".tgz")]
    with tarfile.open(os.path.join(root, archive)) as tar:
        tar.extractall(root, filter="data")
    return os.path.join(root, "package")


def images_by_category(package: str) -> dict[str, str]:
    """Image file name → category, for every image the package has (variations too)."""
    with open(os.path.join(package, "emoji.json")) as f:
        entries = json.load(f)
    categories = {}
    for entry in entries:
        for item in [entry, *entry.get("skin_variations", {}).values()]:
            if item.get("has_img_twitter", True):
                categories[item["image"]] = entry["category"]
    return categories


def lay_out(package: str, out: str) -> Counter:
    images = os.path.join(package, "img", "twitter", "64")
    counts: Counter = Counter()
    for name, category in sorted(images_by_category(package).items()):
        source = os.path.join(images, name)
        if not os.path.exists(source):
            continue
        folder = os.path.join(out, category.replace(" & ", "-and-").replace(" ", "-").lower())
        os.makedirs(folder, exist_ok=True)
        target = os.path.join(folder, name)
        if not os.path.exists(target):
            os.symlink(source, target)
        counts[os.path.basename(folder)] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=DEFAULT_CACHE)
    parser.add_argument("--out", default=None, help="default: CACHE/twemoji-folder")
    args = parser.parse_args()
    out = args.out or os.path.join(args.cache, "twemoji-folder")
    counts = lay_out(fetch(args.cache), out)
    print(f"{out}: {sum(counts.values())} images")
    for category, count in sorted(counts.items()):
        print(f"  {category:<20} {count:>5}")


if __name__ == "__main__":
    main()
