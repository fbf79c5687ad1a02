"""``yoda-register``: the fine-tuned adapter into Vertex AI Model Registry, once it passed the gate.

Every registration is a new version of one model (``--display-name``; ``parent_model`` once it
exists), labelled with the run and its score, with the evaluation attached as a model evaluation
(:mod:`yoda_registry.model_evaluation`). It becomes the default version only when it beats the
current default on the gate's metric (champion/challenger). A retried or rerun step uploads
nothing twice: the version already registered from the same model artifact is reused, and only
a missing evaluation is imported. The serving container is the pipeline's own inference image,
by digest, with its ``yoda-serve`` entry point: the code that answers online is the code whose
batch answers were scored. The step outputs the registered version as a ``google.VertexModel``
artifact.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yoda_registry.model_evaluation import import_evaluation, version_description
from yoda_step_io import StepError
from yoda_step_io.serving import SERVING
from yoda_step_io.values import text
from yoda_step_io.vertex import init_vertex, is_local

logger = logging.getLogger(__name__)

#: A Model Registry display name (the endpoint's too).
REGISTRY_NAME = text(
    "letters, digits, _ and -, at most 100",
    lambda name: None if re.fullmatch(r"[A-Za-z0-9_-]{1,100}", name) else
    "expected letters, digits, _ and -, at most 100",
)  # fmt: skip
#: A score goes into a label as an integer (label values allow no dot): 0.8123 -> "8123".
SCORE_SCALE = 10_000
_PLACEHOLDER_DIGEST = "@sha256:" + "0" * 64
_LABEL_VALUE = re.compile(r"[^a-z0-9_-]")


@dataclass(frozen=True)
class Registered:
    """The version registered: its resource name (``…/models/ID@VERSION``) and whether it is
    now the default."""

    resource_name: str
    version_id: str
    is_default: bool
    score: float
    replaced_score: float | None
    reused: bool = False

    def api_uri(self, location: str) -> str:
        return f"https://{location}-aiplatform.googleapis.com/v1/{self.resource_name}"


def label_value(text: str) -> str:
    """Vertex AI label values: lowercase letters, digits, ``_`` and ``-``, at most 63."""
    return _LABEL_VALUE.sub("-", text.lower())[:63]


def score_from_labels(labels: Mapping[str, str], metric: str) -> float | None:
    """The gate metric's score recorded on a version, if it was registered by this step."""
    if labels.get("yoda_metric") != metric or not labels.get("yoda_score", "").isdigit():
        return None
    return int(labels["yoda_score"]) / SCORE_SCALE


def becomes_default(score: float, current: float | None) -> bool:
    """Champion/challenger: the new version leads only if it beats the current default."""
    return current is None or score > current


def check_serving_image(image: str, endpoint: str | None) -> None:
    """Google's registry must get a real image; the offline placeholder lock's never works."""
    if image.endswith(_PLACEHOLDER_DIGEST) and not is_local(endpoint):
        raise StepError(
            f"the serving image {image} is the offline placeholder: register from a pipeline "
            "compiled with the lock of `make build-images`"
        )


def artifact_label(model_uri: str) -> str:
    """The model artifact as a label value (a ``gs://`` URI is not one): its digest, 16 hex.

    The key of idempotency, rather than the run: a retried task has the same artifact, and so has
    a resubmitted run whose training came from the cache, under a new pipeline job id."""
    return hashlib.sha256(model_uri.rstrip("/").encode()).hexdigest()[:16]


def find_registered(parent: Any, model_uri: str) -> Any | None:
    """The version of ``parent``'s model already registered from ``model_uri``, if any: the
    label narrows the list on Vertex AI's side, the artifact URI confirms it. (A local folder is
    staged anew by every upload, so only a ``gs://`` artifact, the pipeline's, is found again:
    a folder's content may have changed since.)"""
    versions = parent.api_client.list_model_versions(request={
        "name": parent.resource_name,
        "filter": f'labels.yoda_artifact="{artifact_label(model_uri)}"',
    })  # fmt: skip
    wanted = model_uri.rstrip("/")
    return next((v for v in versions if v.artifact_uri.rstrip("/") == wanted), None)


def reused(found: Any, score: float, current: float | None) -> Registered:
    """A version registered earlier, as it stands now. The default it replaced is known only
    when it is not the default itself (then ``current`` is the default's score)."""
    is_default = "default" in found.version_aliases
    name = f"{found.name.split('@')[0]}@{found.version_id}"
    return Registered(name, str(found.version_id), is_default, score,
                      None if is_default else current, reused=True)  # fmt: skip


def _upload(aiplatform: Any, model_uri: str, parent: Any | None, serving_image: str,
            **version: Any) -> Any:  # fmt: skip
    """``Model.upload`` of the adapter with the pipeline's serving container, as the serving
    contract declares it (``yoda_step_io.serving``); ``version``: the display name, labels,
    description and whether it is the default."""
    return aiplatform.Model.upload(
        artifact_uri=model_uri,
        serving_container_image_uri=serving_image,
        **SERVING.upload_arguments(),
        parent_model=parent.resource_name if parent else None,
        sync=True,
        **version,
    )


def register_model(
    model_uri: str,
    aggregates: Mapping[str, float],
    *,
    project: str,
    location: str,
    display_name: str,
    serving_image: str,
    metric: str,
    run_name: str,
    endpoint: str | None = None,
    recipe: Mapping[str, Any] | None = None,
) -> Registered:
    """Upload the adapter as a new version, the default one if it beats the current default,
    and attach the evaluation; a version already registered from ``model_uri`` is reused.

    Raises:
        StepError: no score for ``metric``, settings that cannot reach Vertex AI, or an
            evaluation import that failed (the version stays registered).
    """
    if f"{metric}_mean" not in aggregates:
        raise StepError(f"the evaluation has no {metric}_mean to register the model by")
    check_serving_image(serving_image, endpoint)
    aiplatform = init_vertex(project, location, endpoint)
    score = float(aggregates[f"{metric}_mean"])
    existing = aiplatform.Model.list(filter=f'display_name="{display_name}"')
    parent = existing[0] if existing else None
    current = score_from_labels(parent.labels or {}, metric) if parent else None
    found = find_registered(parent, model_uri) if parent is not None else None
    if parent is not None and found is not None:
        registered = reused(found, score, current)
        logger.info("%s is registered already, from %s (a retried or rerun step): not uploaded "
                    "again", registered.resource_name, model_uri)  # fmt: skip
        import_evaluation(parent.api_client, registered.resource_name, aggregates, run_name)
        return registered
    is_default = becomes_default(score, current)
    labels = {
        "yoda_run": label_value(run_name),
        "yoda_artifact": artifact_label(model_uri),
        "yoda_metric": label_value(metric),
        "yoda_score": str(round(score * SCORE_SCALE)),
        "yoda_echo_score": str(round(aggregates.get(f"echo_{metric}_mean", 0.0) * SCORE_SCALE)),
    }
    logger.info(
        "registering %s as a new version of %s (%s %.4f; the current default %s): %s",
        model_uri, display_name, metric, score,
        "none" if current is None else f"{current:.4f}",
        "the new default" if is_default else "not the default",
    )  # fmt: skip
    description = version_description(aggregates, metric, run_name, recipe or {})
    model = _upload(aiplatform, model_uri, parent, serving_image, display_name=display_name,
                    is_default_version=is_default, labels=labels,
                    version_description=description)  # fmt: skip
    resource = f"{model.resource_name}@{model.version_id}"
    import_evaluation(model.api_client, resource, aggregates, run_name)
    return Registered(resource, str(model.version_id), is_default, score, current)
