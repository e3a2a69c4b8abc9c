"""What a user installs: the lock, the declared dependencies, the image's Python, the wheel."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests import helpers

PACKAGES = ("common", "preprocessing", "trainer", "pipeline")
LOCK = os.path.join(helpers.REPO_ROOT, "requirements.lock")
SUPPORTED = ("3.11", "3.12", "3.13")
OWN_MODULES = r"(common|preprocessing|trainer|pipeline)(\.|$)"


def setup_lists() -> dict[str, object]:
    """setup.py's module-level lists, read without running setuptools."""
    with open(os.path.join(helpers.REPO_ROOT, "setup.py")) as f:
        tree = ast.parse(f.read())
    return {
        target.id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name) and target.id.isupper()
    }


def imported_modules(package: str) -> set[str]:
    """Absolute imports anywhere in a package's modules, lazy ones included."""
    found = set()
    for root, _, files in os.walk(os.path.join(helpers.REPO_ROOT, package)):
        for name in files:
            if not name.endswith(".py"):
                continue
            with open(os.path.join(root, name)) as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    found.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    # `from google.cloud import storage` imports a module of a namespace package
                    found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def third_party(modules: set[str]) -> set[str]:
    return {
        m
        for m in modules
        if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] not in PACKAGES
    }


def distribution_files() -> dict[str, str]:
    """Installed file, relative to its site directory -> the distribution that installed it."""
    owners = {}
    for dist in importlib.metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])  # parsed once: not once per file
        owners.update(dict.fromkeys(map(str, dist.files or ()), name))
    return owners


def providing_distribution(name: str, owners: dict[str, str]) -> str:
    """The distribution installing the module ``name`` names, or, when it names an attribute
    (``from x import function``), its module."""
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:  # its parent is a module, not a package
        spec = None
    if spec is None or not spec.has_location:  # an attribute, or a namespace package
        module = name.rpartition(".")[0]
        assert module, f"{name} is imported but not installed"
        return providing_distribution(module, owners)
    for site in sys.path:
        relative = os.path.relpath(spec.origin, site or ".")
        if relative in owners:
            return owners[relative]
    raise AssertionError(f"{name} ({spec.origin}) comes from no installed distribution")


def test_setup_declares_every_distribution_the_packages_import():
    lists = setup_lists()
    declared = {canonicalize_name(Requirement(r).name) for r in lists["INSTALL_REQUIRES"]}
    for extra in lists["EXTRAS_REQUIRE"].values():
        declared |= {canonicalize_name(Requirement(r).name) for r in extra}
    owners = distribution_files()
    needed = {}
    for package in PACKAGES:
        for module in third_party(imported_modules(package)):
            needed.setdefault(providing_distribution(module, owners), set()).add(module)
    missing = {dist: sorted(mods) for dist, mods in needed.items() if dist not in declared}
    assert missing == {}, f"imported but not in setup.py: {missing}"
    # Each package's imports were found at all (a walk of the wrong directory finds nothing).
    assert {"tensorflow", "apache-beam", "matplotlib", "keras"} <= set(needed)


def test_every_declared_distribution_is_pinned_in_the_lock():
    lists = setup_lists()
    pinned = lock_pins()
    requirements = [
        *lists["INSTALL_REQUIRES"],
        *(r for extra in lists["EXTRAS_REQUIRE"].values() for r in extra),
    ]
    for text in requirements:
        requirement = Requirement(text)
        versions = pinned.get(canonicalize_name(requirement.name), [])
        assert versions, f"{requirement.name} is declared but not in requirements.lock"
        assert all(requirement.specifier.contains(v) for v, _ in versions), (text, versions)


def lock_pins() -> dict[str, list[tuple[str, str]]]:
    """Package -> [(version, marker)] of requirements.lock, checking each entry's form."""
    with open(LOCK) as f:
        text = f.read()
    pins: dict[str, list[tuple[str, str]]] = {}
    for entry in re.split(r"\n(?=\S)", text):
        if entry.startswith("#") or not entry.strip():
            continue
        head = entry.split(" \\\n", 1)[0]
        requirement = Requirement(head)
        (spec,) = requirement.specifier
        assert spec.operator == "==", head
        hashes = re.findall(r"--hash=sha256:[0-9a-f]{64}", entry)
        assert hashes, f"{head}: no hash"
        pins.setdefault(canonicalize_name(requirement.name), []).append(
            (spec.version, str(requirement.marker or ""))
        )
    return pins


def pins_on(python: str) -> dict[str, str]:
    """Package -> the one version the lock installs on Linux with Python ``python``."""
    environment = {"python_version": python, "python_full_version": f"{python}.0"}
    chosen: dict[str, str] = {}
    for package, entries in lock_pins().items():
        versions = [
            v for v, marker in entries if not marker or Marker(marker).evaluate(environment)
        ]
        assert len(versions) <= 1, (python, package, versions)
        if versions:
            chosen[package] = versions[0]
    return chosen


@pytest.mark.parametrize("python", SUPPORTED)
def test_the_lock_installs_one_version_of_each_package_on_each_python(python):
    pins = pins_on(python)
    for tool in ("pip", "setuptools", "wheel", "tensorflow", "apache-beam"):
        assert tool in pins, f"{tool} is not pinned for Python {python}"
    # Beam's [gcp] extra needs google-apitools>=0.5.35 on 3.13: older ones fail at import there.
    minimum = (0, 5, 35) if python >= "3.13" else (0, 5, 31)
    assert tuple(map(int, pins["google-apitools"].split("."))) >= minimum


def dockerfile_args() -> dict[str, str]:
    with open(os.path.join(helpers.REPO_ROOT, "Dockerfile")) as f:
        return dict(re.findall(r"^ARG (\w+)=(\S+)$", f.read(), flags=re.MULTILINE))


def test_the_image_python_is_one_argument_shared_by_the_build_and_the_lock():
    import yaml

    args = dockerfile_args()
    assert args["PYTHON_VERSION"] == SUPPORTED[-1]  # the newest supported by default
    with open(os.path.join(helpers.REPO_ROOT, "cloudbuild.yaml")) as f:
        build = yaml.safe_load(f)
    assert build["substitutions"]["_PYTHON_VERSION"] == args["PYTHON_VERSION"]
    assert "--build-arg=PYTHON_VERSION=${_PYTHON_VERSION}" in build["steps"][0]["args"]
    assert build["substitutions"]["_IMAGE"].endswith("-py${_PYTHON_VERSION}")
    # Beam's SDK image (the workers' boot launcher) is the lock's Beam.
    assert [v for v, _ in lock_pins()["apache-beam"]] == [args["BEAM_VERSION"]]
    with open(os.path.join(helpers.REPO_ROOT, "Dockerfile")) as f:
        dockerfile = f.read()
    assert "FROM apache/beam_python${PYTHON_VERSION}_sdk:${BEAM_VERSION}" in dockerfile
    assert "FROM python:${PYTHON_VERSION}-" in dockerfile


def test_python_requires_admits_exactly_the_supported_versions():
    with open(os.path.join(helpers.REPO_ROOT, "setup.py")) as f:
        (spec,) = re.findall(r'python_requires="([^"]+)"', f.read())
    from packaging.specifiers import SpecifierSet

    admitted = [f"3.{minor}" for minor in range(8, 16) if f"3.{minor}.0" in SpecifierSet(spec)]
    assert tuple(admitted) == SUPPORTED


@pytest.mark.each_python
def test_every_module_imports_on_this_python():
    """Each module of the four packages, imported in one fresh process. A module that defines
    absl flags on import (trainer.task) has them removed before the next is imported."""
    modules = sorted(
        os.path.relpath(os.path.join(root, name), helpers.REPO_ROOT)[:-3].replace(os.sep, ".")
        for package in PACKAGES
        for root, _, files in os.walk(os.path.join(helpers.REPO_ROOT, package))
        for name in files
        if name.endswith(".py")
    )
    script = (
        "import importlib, sys, warnings\n"
        "from absl import flags\n"
        f"warnings.filterwarnings('error', module={OWN_MODULES!r})\n"
        "for name in sys.argv[1:]:\n"
        "    before = set(flags.FLAGS)\n"
        "    importlib.import_module(name.removesuffix('.__init__'))\n"
        "    for flag in set(flags.FLAGS) - before:\n"
        "        delattr(flags.FLAGS, flag)\n"
        "print(len(sys.argv) - 1)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, *modules],
        cwd=helpers.REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout.split()[-1]) == len(modules) > 40


@pytest.mark.each_python
def test_the_installed_wheel_runs_a_stage_on_its_bundled_data_outside_the_checkout(tmp_path):
    """``pip install .`` (the lock's setuptools, no network): `gan-pipeline preprocess` with no
    --source reads the MNIST the wheel carries, from a directory that is not the checkout."""
    wheels, prefix, source = tmp_path / "wheels", tmp_path / "prefix", tmp_path / "source"
    # Built from a copy: setuptools leaves build/ behind, and a stale one would feed the wheel.
    source.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md", "data", *PACKAGES):
        copy = (
            shutil.copytree if os.path.isdir(os.path.join(helpers.REPO_ROOT, name)) else shutil.copy
        )
        copy(os.path.join(helpers.REPO_ROOT, name), source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), "."],
        cwd=source,
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.iterdir()
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--prefix", str(prefix), str(wheel)],
        check=True,
        capture_output=True,
    )
    site = sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)})
    env = {**os.environ, "PYTHONPATH": site, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = str(prefix / "bin" / "gan-pipeline")
    usage = subprocess.run([command], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert usage.returncode == 2 and "gan-pipeline {run|preprocess|train" in usage.stderr
    out = tmp_path / "data"
    proc = subprocess.run(
        [command, "preprocess", f"--output_dir={out}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    where = subprocess.run(
        [sys.executable, "-c", "from common import bundled; print(bundled.path())"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where.startswith(site), where  # the wheel's copy, not the checkout's data/
    # The same records as from the checkout: the shipped classifiers are keyed by this.
    assert helpers.read_manifest(str(out))["fingerprint"] == helpers.BUNDLED_MNIST_FINGERPRINT
