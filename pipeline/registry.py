"""Vertex AI Model Registry: each gated candidate becomes a version; ``default`` marks the winner.

The requests are built with the API's own message types (``google.cloud.aiplatform_v1``), so a
dry run prints exactly what would be sent. A candidate is uploaded as a new version of the model
(the model itself on the first upload), labelled with the gate's decision and carrying its
evaluation; the ``default`` alias moves only when the gate promoted it, as the Vertex SDK's
``is_default_version`` does.
"""

from __future__ import annotations

import json
import re

from common.cli import UserError, one_line

MODEL_NAME = re.compile(r"^projects/([^/]+)/locations/([^/]+)/models/([a-z][a-z0-9_-]{0,62})$")
DEFAULT_ALIAS = "default"
# Vertex's schema for metrics that fit no built-in problem type (classification, regression...).
METRICS_SCHEMA = (
    "gs://google-cloud-aiplatform/schema/modelevaluation/general_evaluation_metrics_1.0.0.yaml"
)
# The version id exists only once the upload has returned; a dry run shows this in its place.
UPLOADED_VERSION = "{uploaded_version_id}"


class RegistryError(UserError, ValueError):
    """A bad --model_registry value, or a failed registry call; one line."""


def parse_model_name(name: str) -> tuple[str, str, str]:
    match = MODEL_NAME.match(name)
    if not match:
        raise RegistryError(
            f"--model_registry={name}: expected projects/P/locations/R/models/NAME "
            "(NAME: lowercase letters, digits, - and _, starting with a letter)"
        )
    return match.group(1), match.group(2), match.group(3)


def build_requests(
    model_name: str,
    decision: dict,
    model_dir: str,
    promoted: bool,
    serving_image: str,
    commit: str,
    model_exists: bool,
) -> dict:
    """The upload and evaluation-import requests for one gated candidate (pure)."""
    from google.cloud import aiplatform_v1

    project, location, model_id = parse_model_name(model_name)
    version = decision["challenger"]["version"]
    aliases = ([DEFAULT_ALIAS] if promoted else []) + ([f"build-{commit[:40]}"] if commit else [])
    model = aiplatform_v1.Model(
        display_name=model_id,
        artifact_uri=model_dir.rstrip("/") + "/generator",
        container_spec={"image_uri": serving_image},
        version_aliases=aliases,
        version_description="; ".join(decision["reasons"])[:1000],
        labels={"gate-decision": decision["decision"], "weights": version.lower()},
    )
    upload = aiplatform_v1.UploadModelRequest(
        parent=f"projects/{project}/locations/{location}",
        model=model,
        **({"parent_model": model_name} if model_exists else {"model_id": model_id}),
    )
    metrics = {name: values["challenger"] for name, values in decision["metrics"].items()}
    evaluation = aiplatform_v1.ImportModelEvaluationRequest(
        parent=f"{model_name}@{UPLOADED_VERSION}",
        model_evaluation=aiplatform_v1.ModelEvaluation(
            display_name=f"gan-gate-{version}",
            metrics_schema_uri=METRICS_SCHEMA,
            metrics={**metrics, "data_fingerprint": decision.get("data_fingerprint") or ""},
        ),
    )
    return {"upload_model": upload, "import_model_evaluation": evaluation}


def to_json(request) -> dict:
    return json.loads(
        type(request).to_json(
            request, use_integers_for_enums=False, always_print_fields_with_no_presence=False
        )
    )


class Uploader:
    """Called by the gate with its decision; returns what it did, for ``promotion.json``."""

    def __init__(self, model_name: str, serving_image: str, commit: str, dry_run: bool):
        parse_model_name(model_name)
        self.model_name = model_name
        self.serving_image = serving_image
        self.commit = commit
        self.dry_run = dry_run

    def __call__(self, decision: dict, model_dir: str, promoted: bool) -> dict:
        model_exists = decision["champion"] is not None
        if not self.dry_run:
            model_exists = self._model_exists()
        requests = build_requests(
            self.model_name,
            decision,
            model_dir,
            promoted,
            self.serving_image,
            self.commit,
            model_exists,
        )
        record = {
            "model": self.model_name,
            "dry_run": self.dry_run,
            "default_alias_moved": promoted,
            "requests": {method: to_json(request) for method, request in requests.items()},
        }
        if self.dry_run:
            print(json.dumps(record["requests"], indent=2))
            return record
        record["version_id"] = self._send(requests)
        return record

    def _client(self):
        from google.cloud import aiplatform_v1

        location = parse_model_name(self.model_name)[1]
        return aiplatform_v1.ModelServiceClient(
            client_options={"api_endpoint": f"{location}-aiplatform.googleapis.com"}
        )

    def _model_exists(self) -> bool:
        from google.api_core import exceptions

        try:
            self._client().get_model(name=self.model_name)
            return True
        except exceptions.NotFound:
            return False
        except exceptions.GoogleAPIError as e:
            raise RegistryError(f"{self.model_name}: {type(e).__name__}: {e}") from e

    def _send(self, requests: dict) -> str:
        from google.api_core import exceptions

        client = self._client()
        try:
            uploaded = client.upload_model(request=requests["upload_model"]).result()
            evaluation = requests["import_model_evaluation"]
            evaluation.parent = f"{uploaded.model}@{uploaded.model_version_id}"
            client.import_model_evaluation(request=evaluation)
        except exceptions.GoogleAPIError as e:
            raise RegistryError(f"{self.model_name}: {one_line(e)}") from e
        return uploaded.model_version_id
