"""Shared output for the benchmarks: a printed table and a JSON file with the machine and commit."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(REPO_ROOT, "benchmarks", "results")
BUNDLED_MNIST = os.path.join(REPO_ROOT, "data", "mnist")


def machine() -> dict:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if "model name" in line), "")
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu": cpu or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "commit": commit,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def print_table(rows: list[dict], columns: list[str]) -> None:
    cells = [[_fmt(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def previous_results(path: str, budget: dict[str, float]) -> dict[str, dict]:
    """Results already in ``path`` for the same budget: a run of a few candidates adds to them."""
    try:
        with open(path) as f:
            previous = json.load(f)
    except (OSError, ValueError):
        return {}
    same = all(previous.get(key) == value for key, value in budget.items())
    return previous.get("results", {}) if same else {}


def print_runs(results: dict[str, dict], label: str, keys: tuple[str, ...]) -> None:
    """The table of exported training runs (``run_project``'s results by name): kimg, img/s and
    the metrics ``keys``, then the real-data floor's row."""
    rows = [
        {label: name, "kimg": r["images"] / 1000, "img/s": r["images"] / r["seconds"], **r["model"]}
        for name, r in results.items()
    ]
    floor = next(iter(results.values()))["real_floor"]
    rows.append({label: "real data (floor)", "kimg": "", "img/s": "", **floor})
    print_table(rows, [label, "kimg", "img/s", *keys])


def write_json(path: str, payload: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump({**payload, "machine": machine()}, f, indent=2)
        f.write("\n")
    print(f"wrote {path}")
