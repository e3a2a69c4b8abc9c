r"""The quality gate: promote a new export only if it is better than the promoted one.

    python -m pipeline.promote --candidate=gs://B/runs/SHA/export --promoted=gs://B/models/promoted

Better means a lower Fréchet distance, with no other metric worse than the promoted model's by
more than ``--tolerance`` (relative). The first model is always promoted. The decision is
recorded in ``promotion.json`` beside the candidate (and in the promoted directory when it is
promoted). Exit codes: 0 promoted, 3 kept the promoted model (candidate not better), 2 error.
"""

from __future__ import annotations

import datetime
import json
import sys
from collections.abc import Sequence

from absl import app, flags

from common import storage

FLAGS = flags.FLAGS
flags.DEFINE_string("candidate", None, "The new export directory (local or gs://).")
flags.DEFINE_string("promoted", None, "The promoted model's directory (local or gs://).")
flags.DEFINE_float(
    "tolerance", 0.02, "How much worse (relative) a secondary metric may be and still promote."
)

METRICS_FILE = "metrics.json"
DECISION_FILE = "promotion.json"
PRIMARY = "frechet_distance"  # lower is better
SECONDARY_HIGHER_IS_BETTER = ("classifier_score", "min_class_share", "precision", "recall")
EXIT_PROMOTED, EXIT_ERROR, EXIT_KEPT = 0, 2, 3


class GateError(ValueError):
    """Metrics are missing or unreadable; the message names the file."""


def read_metrics(directory: str, required: bool) -> dict | None:
    path = storage.join(directory, METRICS_FILE)
    if not storage.exists(path):
        if required:
            raise GateError(f"{path}: not found; is {directory} a complete export?")
        return None
    try:
        metrics = json.loads(storage.read_text(path))
        model = metrics["model"]
        values = {k: float(model[k]) for k in (PRIMARY, *SECONDARY_HIGHER_IS_BETTER)}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise GateError(f"{path}: corrupt metrics ({type(e).__name__}: {e})") from e
    return {**metrics, "model": {**model, **values}}


def decide(candidate: dict, promoted: dict | None, tolerance: float) -> tuple[bool, list[str]]:
    """(promote?, reasons). Pure: the whole policy is here."""
    if promoted is None:
        return True, ["no promoted model yet"]
    new, old = candidate["model"], promoted["model"]
    reasons = []
    better = new[PRIMARY] < old[PRIMARY]
    verdict = "better" if better else "not better"
    reasons.append(f"{PRIMARY} {new[PRIMARY]:.4f} vs {old[PRIMARY]:.4f}: {verdict}")
    regressions = [
        f"{key} {new[key]:.4f} < {old[key]:.4f} by more than {tolerance:.0%}"
        for key in SECONDARY_HIGHER_IS_BETTER
        if new[key] < old[key] * (1.0 - tolerance)
    ]
    reasons.extend(regressions)
    return better and not regressions, reasons


def promote(candidate_dir: str, promoted_dir: str, tolerance: float) -> tuple[bool, dict]:
    for path in (candidate_dir, promoted_dir):
        storage.check_bucket(path)
    candidate = read_metrics(candidate_dir, required=True)
    promoted = read_metrics(promoted_dir, required=False)
    promote_it, reasons = decide(candidate, promoted, tolerance)
    decision = {
        "decision": "promoted" if promote_it else "kept",
        "reasons": reasons,
        "candidate": candidate_dir,
        "candidate_weights_sha256": candidate.get("weights_sha256"),
        "promoted": promoted_dir,
        "previous_weights_sha256": promoted.get("weights_sha256") if promoted else None,
        "tolerance": tolerance,
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    text = json.dumps(decision, indent=2) + "\n"
    if promote_it:
        # Un-commit first: while files change, no reader takes the directory for a complete model.
        storage.delete(storage.join(promoted_dir, METRICS_FILE))
        copied = set(storage.copy_tree(candidate_dir, promoted_dir, last=METRICS_FILE))
        for rel in storage.list_tree(promoted_dir):
            if rel not in copied and rel != DECISION_FILE:
                storage.delete(storage.join(promoted_dir, rel))
        storage.write_text(storage.join(promoted_dir, DECISION_FILE), text)
    storage.write_text(storage.join(candidate_dir, DECISION_FILE), text)
    return promote_it, decision


def main(argv: Sequence[str]) -> None:
    if not FLAGS.candidate or not FLAGS.promoted:
        print("promote: error: --candidate and --promoted are required", file=sys.stderr)
        sys.exit(EXIT_ERROR)
    try:
        promoted, decision = promote(FLAGS.candidate, FLAGS.promoted, FLAGS.tolerance)
    except (GateError, storage.StorageError) as e:
        print(f"promote: error: {e}", file=sys.stderr)
        sys.exit(EXIT_ERROR)
    print(f"promote: {decision['decision']}: {'; '.join(decision['reasons'])}")
    sys.exit(EXIT_PROMOTED if promoted else EXIT_KEPT)


if __name__ == "__main__":
    app.run(main)
