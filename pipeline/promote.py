r"""The quality gate: promote a new export only if it is better than the promoted one.

    python -m pipeline.promote --candidate=gs://B/runs/SHA/export --promoted=gs://B/models/gan \
        [--commit=SHA] [--model_registry=projects/P/locations/R/models/NAME [--dry_run]]

Better means a lower Fréchet distance, with no other metric worse than the promoted model's by
more than ``--tolerance`` (relative), every metric finite. The first model is always promoted.

Layout under ``--promoted`` (the gate writes nothing else there and never deletes):

    versions/<weights sha256[:16]>/   a complete copy of a promoted export (``metrics.json`` last)
    promotion.json                    the pointer: which version is promoted, and why

Promoting copies the candidate into its own version prefix, then replaces ``promotion.json`` in
one object write: that write is the switch. A crash before it leaves the previous version
promoted and servable; the next run copies again into the same (content-addressed) prefix.
Consumers read ``promotion.json``'s ``model_dir``. Every decision is also written beside the
candidate as ``promotion.json``.

With ``--model_registry`` the candidate is also uploaded to Vertex AI Model Registry as a new
version of that model, with its evaluation; the ``default`` alias moves to it only when it wins
(``--dry_run`` prints the requests instead of sending them).

Exit codes: 0 promoted, 3 kept the promoted model (candidate not better), 2 error.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import sys
from collections.abc import Sequence

from absl import app, flags

from common import cli, layout, lease, storage
from common import settings as common_settings
from common.cli import UserError
from common.settings import setting
from trainer import evaluation

FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class PromoteConfig:
    candidate: str = setting(None, "The new export directory (local or gs://).", required=True)
    promoted: str = setting(
        None,
        "The gate's own prefix (local or gs://; not a bucket root): versions + pointer.",
        required=True,
    )
    tolerance: float = setting(
        0.02, "How much worse (relative) a secondary metric may be and still promote."
    )
    commit: str = setting("", "The build's source commit, recorded in promotion.json.")
    model_registry: str = setting(
        "", "Also upload to Vertex AI Model Registry: projects/P/locations/R/models/NAME."
    )
    serving_image: str = setting(
        "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest",
        "Model Registry: the prediction container for the SavedModel.",
    )
    dry_run: bool = setting(False, "Model Registry: print the requests instead of sending them.")


OWNER_MARKER = ".written-by-gan-pipeline-promote"
# Every metric, its direction and whether it is gated (trainer/evaluation.py; no TensorFlow is
# imported): the primary one (the first of PRIMARY an export has) must improve, the gated others
# may not regress.
METRICS = evaluation.METRICS
PRIMARY = evaluation.PRIMARY
EXIT_PROMOTED, EXIT_KEPT = 0, 3  # errors: cli.EXIT_USER_ERROR (2)


class GateError(UserError, ValueError):
    """Metrics are missing or unreadable, or a path is refused; the message names it."""


def read_metrics(directory: str) -> dict:
    """The export's ``metrics.json``, with every gated metric as a float."""
    path = layout.ExportDir(directory).metrics
    if not storage.exists(path):
        raise GateError(f"{path}: not found; is {directory} a complete export?")
    try:
        metrics = json.loads(storage.read_text(path))
        model = metrics["model"]
        values = {k: float(model[k]) for k in METRICS if k in model}
        primary_metric(values)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise GateError(f"{path}: corrupt metrics ({type(e).__name__}: {e})") from e
    return {**metrics, "model": {**model, **values}}


def primary_metric(model: dict) -> str:
    """The metric that decides: the first of PRIMARY the export has (KeyError if none)."""
    for name in PRIMARY:
        if name in model:
            return name
    raise KeyError(f"none of {', '.join(PRIMARY)}")


def gated(candidate: dict, champion: dict | None) -> dict[str, str]:
    """The metrics both exports have, with their directions."""
    names = set(candidate["model"]) & (set(champion["model"]) if champion else set(METRICS))
    return {k: m.direction for k, m in METRICS.items() if k in names and m.gated}


def _worse(direction: str, new: float, old: float, tolerance: float) -> bool:
    if direction == "higher":
        return new < old - abs(old) * tolerance
    return new > old + abs(old) * tolerance


def decide(candidate: dict, champion: dict | None, tolerance: float) -> tuple[bool, list[str]]:
    """(promote?, reasons). Pure: the whole policy is here."""
    new = candidate["model"]
    metrics, primary = gated(candidate, champion), primary_metric(new)
    not_finite = [k for k in gated(candidate, None) if not math.isfinite(new[k])]
    if not_finite:
        return False, [f"candidate {k} is {new[k]}: not finite" for k in not_finite]
    if champion is None:
        return True, ["no promoted model yet"]
    old = champion["model"]
    if primary not in metrics:
        return True, [f"promoted model has no {primary} (another kind of data): replaced"]
    broken = [k for k in metrics if not math.isfinite(old[k])]
    if broken:
        return True, [
            f"promoted model's {k} is {old[k]}: any finite candidate wins" for k in broken
        ]
    better = new[primary] < old[primary]
    verdict = "better" if better else "not better"
    reasons = [f"{primary} {new[primary]:.4f} vs {old[primary]:.4f}: {verdict}"]
    regressions = [
        f"{key} {new[key]:.4f} {'<' if direction == 'higher' else '>'} {old[key]:.4f} "
        f"by more than {tolerance:.0%}"
        for key, direction in metrics.items()
        if key != primary and _worse(direction, new[key], old[key], tolerance)
    ]
    return better and not regressions, reasons + regressions


def check_paths(candidate_dir: str, promoted_dir: str) -> None:
    """Refuse a bucket (or filesystem) root and overlapping candidate and promoted prefixes."""
    for path in (candidate_dir, promoted_dir):
        storage.check_bucket(path)
    root = storage.split_gcs(promoted_dir)[1] if storage.is_gcs(promoted_dir) else promoted_dir
    if not root.strip("/"):
        raise GateError(
            f"--promoted={promoted_dir}: a bucket or filesystem root; give the gate a prefix "
            "of its own, e.g. gs://BUCKET/models/gan"
        )
    if storage.overlaps(candidate_dir, promoted_dir):
        raise GateError(f"--candidate={candidate_dir} and --promoted={promoted_dir} overlap")


def pointer_generation(promoted_dir: str) -> int | None:
    """The pointer object's generation in a bucket (0: none yet); None for a local prefix,
    where the gate's lease alone keeps writers apart."""
    path = layout.PromotedDir(promoted_dir).pointer
    return storage.generation(path) if storage.is_gcs(path) else None


def current(promoted_dir: str) -> dict | None:
    """The promoted version's record from the pointer, or None before the first promotion."""
    path = layout.PromotedDir(promoted_dir).pointer
    if not storage.exists(path):
        if storage.exists(layout.ExportDir(promoted_dir).metrics):
            # The layout before versions: the prefix itself held the promoted export.
            return {"version": "unversioned", "model_dir": promoted_dir}
        return None
    try:
        record = json.loads(storage.read_text(path))
        return {"version": str(record["version"]), "model_dir": str(record["model_dir"])}
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise GateError(f"{path}: corrupt promotion pointer ({type(e).__name__}: {e})") from e


def publish_version(candidate_dir: str, promoted_dir: str, version: str) -> str:
    """Copy the candidate into ``versions/<version>/`` (ours alone); return that prefix."""
    version_dir = layout.PromotedDir(promoted_dir).version(version)
    marker = storage.join(version_dir, OWNER_MARKER)
    if storage.list_tree(version_dir) and not storage.exists(marker):
        raise GateError(
            f"{version_dir}: holds objects the gate did not write; refusing to overwrite"
        )
    storage.write_text(marker, "written by pipeline.promote; the gate owns this prefix\n")
    storage.copy_tree(candidate_dir, version_dir, last=layout.METRICS)
    return version_dir


def switch_pointer(promoted_dir: str, text: str, seen: int | None) -> None:
    """Write the pointer; in a bucket only over the version the decision was made against."""
    path = layout.PromotedDir(promoted_dir).pointer
    if seen is None:
        storage.write_text(path, text)
        return
    try:
        storage.write_if_generation(path, text.encode(), seen)
    except storage.PreconditionFailed as e:
        raise GateError(
            f"{path}: another promotion switched the pointer while this one decided; "
            "re-run to decide against the new champion"
        ) from e


def _data_fingerprint(candidate_dir: str) -> str | None:
    path = layout.ExportDir(candidate_dir).manifest
    if not storage.exists(path):
        return None
    try:
        return json.loads(storage.read_text(path)).get("fingerprint")
    except (json.JSONDecodeError, AttributeError):
        return None


def promote(
    candidate_dir: str,
    promoted_dir: str,
    tolerance: float,
    commit: str = "",
    registry=None,
) -> tuple[bool, dict]:
    """Decide, then (if the candidate wins) publish its version and switch the pointer."""
    check_paths(candidate_dir, promoted_dir)
    candidate = read_metrics(candidate_dir)
    with lease.acquire(promoted_dir, "promote"):
        seen = pointer_generation(promoted_dir)  # the pointer this decision is made against
        champion_ref = current(promoted_dir)
        champion = read_metrics(champion_ref["model_dir"]) if champion_ref else None
        promote_it, reasons = decide(candidate, champion, tolerance)
        version = str(candidate.get("weights_sha256") or "unknown")[:16]
        decision = {
            "decision": "promoted" if promote_it else "kept",
            "reasons": reasons,
            "primary_metric": primary_metric(candidate["model"]),
            "metrics": {
                name: {
                    "direction": direction,
                    "challenger": candidate["model"][name],
                    "champion": champion["model"][name] if champion else None,
                }
                for name, direction in gated(candidate, champion).items()
            },
            "challenger": {
                "export": candidate_dir,
                "version": version,
                "weights_sha256": candidate.get("weights_sha256"),
            },
            "champion": champion_ref,
            "data_fingerprint": _data_fingerprint(candidate_dir),
            "commit": commit or None,
            "tolerance": tolerance,
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        model_dir = candidate_dir
        if promote_it:
            model_dir = publish_version(candidate_dir, promoted_dir, version)
        if registry is not None:
            decision["model_registry"] = registry(decision, model_dir, promote_it)
        pointer = {**decision, "version": version, "model_dir": model_dir}
        if promote_it:
            # The switch: one object write. Until it lands the previous version stays promoted.
            switch_pointer(promoted_dir, json.dumps(pointer, indent=2) + "\n", seen)
        storage.write_text(
            storage.join(candidate_dir, layout.DECISION), json.dumps(decision, indent=2) + "\n"
        )
        return promote_it, decision


def run(config: PromoteConfig) -> tuple[bool, dict]:
    """The gate as ``main`` runs it: whether the candidate was promoted, and the decision."""
    from pipeline import registry

    if not (config.tolerance >= 0 and math.isfinite(config.tolerance)):
        raise GateError(f"--tolerance={config.tolerance}: must be a finite number >= 0")
    upload = None
    if config.model_registry:
        upload = registry.Uploader(
            config.model_registry, config.serving_image, config.commit, config.dry_run
        )
    return promote(config.candidate, config.promoted, config.tolerance, config.commit, upload)


def main(argv: Sequence[str]) -> None:
    try:
        promoted, decision = run(common_settings.from_flags(PromoteConfig, FLAGS))
    except UserError:
        raise
    except Exception as e:  # the gate's contract is exit 2 on any error: the build reads it
        raise GateError(cli.one_line(e)) from e
    print(f"promote: {decision['decision']}: {'; '.join(decision['reasons'])}")
    sys.exit(EXIT_PROMOTED if promoted else EXIT_KEPT)


if __name__ == "__main__":
    common_settings.define_flags(PromoteConfig, FLAGS)
    app.run(cli.guarded("promote", main), flags_parser=cli.flags_parser("promote"))
