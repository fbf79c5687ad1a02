"""``yoda-register``: the fine-tuned adapter into Vertex AI Model Registry, once it passed the gate.

Every registration is a new version of one model (``--display-name``; ``parent_model`` once it
exists), labelled with the run and its score, with the evaluation attached as a model evaluation.
It becomes the default version only when it beats the current default on the gate's metric
(champion/challenger). The serving container is the pipeline's own inference image, by digest,
with its ``yoda-serve`` entry point: the code that answers online is the code whose batch answers
were scored. The step outputs the registered version as a ``google.VertexModel`` artifact.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yoda_step_io import Reported, StepError, add_executor_input_flag, run_cli, step_parser
from yoda_step_io.contract import read_metrics
from yoda_step_io.vertex import ENDPOINT_VARIABLE, init_vertex, is_local

logger = logging.getLogger(__name__)

#: How the serving container is run: Vertex AI's custom-container contract (yoda_inference.serve).
SERVING = {
    "command": ["yoda-serve"],
    "predict_route": "/predict",
    "health_route": "/health",
    "port": 8080,
}
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
) -> Registered:
    """Upload the adapter as a new version, the default one if it beats the current default,
    and attach the evaluation.

    Raises:
        StepError: no score for ``metric``, or settings that cannot reach Vertex AI.
    """
    if f"{metric}_mean" not in aggregates:
        raise StepError(f"the evaluation has no {metric}_mean to register the model by")
    check_serving_image(serving_image, endpoint)
    aiplatform = init_vertex(project, location, endpoint)
    score = float(aggregates[f"{metric}_mean"])
    existing = aiplatform.Model.list(filter=f'display_name="{display_name}"')
    parent = existing[0] if existing else None
    current = score_from_labels(parent.labels or {}, metric) if parent else None
    is_default = becomes_default(score, current)
    labels = {
        "yoda_run": label_value(run_name),
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
    model = aiplatform.Model.upload(
        display_name=display_name,
        artifact_uri=model_uri,
        serving_container_image_uri=serving_image,
        serving_container_command=SERVING["command"],
        serving_container_predict_route=SERVING["predict_route"],
        serving_container_health_route=SERVING["health_route"],
        serving_container_ports=[SERVING["port"]],
        serving_container_environment_variables={"YODA_QUANTIZATION": "4bit"},
        parent_model=parent.resource_name if parent else None,
        is_default_version=is_default,
        labels=labels,
        version_description=f"run {run_name}: {metric} {score:.4f}",
        sync=True,
    )
    attach_evaluation(model, aggregates, run_name)
    resource = f"{model.resource_name}@{model.version_id}"
    return Registered(resource, str(model.version_id), is_default, score, current)


def attach_evaluation(model: Any, aggregates: Mapping[str, float], run_name: str) -> None:
    """The evaluation's aggregates as a model evaluation of the new version."""
    from google.protobuf import struct_pb2

    metrics = struct_pb2.Value()
    metrics.struct_value.update({key: float(value) for key, value in aggregates.items()})
    model.api_client.import_model_evaluation(
        parent=f"{model.resource_name}@{model.version_id}",
        model_evaluation={
            "display_name": label_value(f"{run_name}-evaluation"),
            "metrics_schema_uri": (
                "gs://google-cloud-aiplatform/schema/modelevaluation/"
                "general_text_generation_metrics_1.0.0.yaml"
            ),
            "metrics": metrics,
        },
    )


#: Why an offline run's passing model is not registered.
NOT_REGISTERED = (
    "no Google Cloud project (an offline run): `make submit` registers in Vertex AI Model "
    "Registry once YODA_PROJECT_ID and YODA_REGION are set"
)


def build_parser() -> argparse.ArgumentParser:
    parser = step_parser("yoda-register", __doc__)
    parser.add_argument("--model-uri", required=True, help="the Model artifact (gs:// or folder)")
    parser.add_argument("--evaluation-metrics", type=Path, required=True, help="metrics folder")
    parser.add_argument("--project", default="", help="Google Cloud project")
    parser.add_argument("--location", default="", help="Vertex AI region")
    parser.add_argument("--display-name", default="yoda-phi3", help="the registry model's name")
    parser.add_argument("--serving-image", required=True, help="inference image, by digest")
    parser.add_argument("--metric", default="rouge_l", help="the gate's metric")
    parser.add_argument("--run-name", default="by-hand", help="the pipeline run")
    add_executor_input_flag(parser)
    return parser


def step(args: argparse.Namespace) -> Reported:
    """Register (not offline); the registered version, by its API URL."""
    import os

    aggregates = read_metrics(args.evaluation_metrics)
    if not args.project and not os.environ.get(ENDPOINT_VARIABLE):
        # an offline run (make run-local): no registry to register in, and nothing failed
        logger.warning("not registered: %s", NOT_REGISTERED)
        return Reported({"vertex_model": {"registered": False, "reason": NOT_REGISTERED}})
    registered = register_model(
        args.model_uri, aggregates, project=args.project, location=args.location,
        display_name=args.display_name, serving_image=args.serving_image,
        metric=args.metric, run_name=args.run_name,
        endpoint=os.environ.get(ENDPOINT_VARIABLE) or None,
    )  # fmt: skip
    logger.info("registered %s (default version: %s)", registered.resource_name,
                registered.is_default)  # fmt: skip
    metadata = {
        "resourceName": registered.resource_name,
        "version_id": registered.version_id,
        "is_default_version": registered.is_default,
        f"{args.metric}_mean": registered.score,
    }
    if registered.replaced_score is not None:
        metadata["previous_default_score"] = registered.replaced_score
    uris = {"vertex_model": registered.api_uri(args.location)}
    return Reported({"vertex_model": metadata}, uris=uris)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse flags, register, hand the registered version on as a ``google.VertexModel``."""
    run_cli(build_parser(), argv, step)


if __name__ == "__main__":
    main()
