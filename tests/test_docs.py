"""The docs speak of today's code: every flag they quote is one an entry point defines, and
every page they link to exists. The image holds no docs (the ``checkout`` marker)."""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys

import pytest

from tests import helpers

pytestmark = pytest.mark.checkout

ENTRY_POINTS = (
    "preprocessing.run",
    "trainer.task",
    "pipeline.run",
    "pipeline.export",
    "pipeline.promote",
    "pipeline.submit",
)
# Flags of other programs the docs quote: Beam's pipeline options, gcloud's and pip's.
OTHER_PROGRAMS = {
    "runner",
    "project",
    "region",
    "temp_location",
    "setup_file",
    "sdk_container_image",
    "substitutions",
    "config",
    "name",
    "schedule",
    "uri",
    "location",
    "upgrade",
    "check",
}
ABSL_BUILTINS = {"flagfile", "help", "helpfull"}
PAGES = [
    "README.md",
    "benchmarks/README.md",
    *sorted(glob.glob("docs/*.md", root_dir=helpers.REPO_ROOT)),
]
FLAG_PAGES = [page for page in PAGES if not page.startswith("benchmarks/")]  # scripts' own flags
QUOTED_FLAG = re.compile(r"(?<![\w-])--(?:no)?([a-z][a-z0-9_]*)(?![\w-])")
CODE = re.compile(r"`[^`]+`|```.*?```", re.S)
LINK = re.compile(r"\]\(([^)#]+?\.(?:md|png))(?:#[^)]*)?\)")


HELP_LINE = re.compile(r"^\s+(?:-\S+,)?--(?:\[no\])?([a-z][a-z0-9_]*):", re.M)


def defined_flags() -> set[str]:
    """Every flag an entry point lists in its ``--helpfull``, as a user would run it."""
    names: set[str] = set()
    for module in ENTRY_POINTS:
        proc = subprocess.run(
            [sys.executable, "-m", module, "--helpfull"],
            cwd=helpers.REPO_ROOT,
            capture_output=True,
            text=True,
        )
        names.update(HELP_LINE.findall(proc.stdout))
    return names


def quoted_flags(page: str) -> set[str]:
    with open(os.path.join(helpers.REPO_ROOT, page)) as f:
        code = " ".join(CODE.findall(f.read()))
    return set(QUOTED_FLAG.findall(code))


def test_every_flag_the_docs_quote_is_defined():
    defined = defined_flags()
    known = defined | OTHER_PROGRAMS | ABSL_BUILTINS
    unknown = {page: sorted(flags) for page in FLAG_PAGES if (flags := quoted_flags(page) - known)}
    assert not unknown, unknown


@pytest.mark.parametrize("page", PAGES)
def test_every_page_the_docs_link_to_exists(page):
    with open(os.path.join(helpers.REPO_ROOT, page)) as f:
        links = LINK.findall(f.read())
    base = os.path.dirname(os.path.join(helpers.REPO_ROOT, page))
    missing = [link for link in links if not os.path.exists(os.path.join(base, link))]
    assert not missing, missing
