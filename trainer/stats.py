"""Training statistics by name (after StyleGAN2-ADA's ``training_stats``).

A statistic is declared once, beside the code that computes it (``declare``: its name, how the
progress line shows it, how replicas combine it, which gallery panel plots it). The train step
returns every statistic its parts report, accumulated on the device over a call of
``--steps_per_call`` steps and read at the log cadence; the progress line, ``metrics.jsonl``,
TensorBoard and the gallery's curves take whatever a record holds. No TensorFlow import here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

MEAN = "mean"  # a per-example value: each replica's sum over the global batch, summed
TOTAL = "total"  # one value a replica (a gradient norm): summed over replicas
GLOBAL = "global"  # one value for every replica (ADA's p): read outside the replicas


@dataclasses.dataclass(frozen=True)
class Stat:
    name: str
    label: str  # in the progress line
    fmt: str  # a format template: "{:.4f}"
    combine: str = MEAN
    panel: str = ""  # the gallery's curve panel; none when empty


REGISTRY: dict[str, Stat] = {}


def declare(name: str, label: str, fmt: str, combine: str = MEAN, panel: str = "") -> str:
    """Register a statistic; return its name, the key its value is reported under."""
    assert combine in (MEAN, TOTAL, GLOBAL), combine
    assert REGISTRY.get(name) in (None, Stat(name, label, fmt, combine, panel)), name
    REGISTRY[name] = Stat(name, label, fmt, combine, panel)
    return name


def combine(name: str) -> str:
    return REGISTRY[name].combine


def line(record: Mapping[str, object]) -> str:
    """The progress line's statistics: each declared one the record holds, in its order."""
    return "  ".join(
        f"{REGISTRY[name].label} {REGISTRY[name].fmt.format(value)}"
        for name, value in record.items()
        if name in REGISTRY and isinstance(value, float | int)
    )


def panels(names: Iterable[str]) -> list[tuple[str, tuple[str, ...]]]:
    """(panel title, its statistics) for the declared statistics among ``names`` that have a
    panel, panels and statistics in the order of ``names`` (a record's: the step's)."""
    grouped: dict[str, list[str]] = {}
    for name in dict.fromkeys(names):
        stat = REGISTRY.get(name)
        if stat is not None and stat.panel:
            grouped.setdefault(stat.panel, []).append(name)
    return [(title, tuple(keys)) for title, keys in grouped.items()]
