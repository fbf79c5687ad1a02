"""`make deploy`, `make ask-endpoint`, `make undeploy`: the Model Registry's default version of
the fine-tuned model behind an online endpoint, served by the inference image (``yoda-serve``).

The endpoint is found or created by name (``<registry model name>-endpoint``), so a second
``make deploy`` reuses it: the new default version takes all the traffic, and the version it
replaces is undeployed. ``make undeploy`` undeploys everything and deletes the endpoint, which
stops the billing. The commands: ``yoda-pipeline deploy``, ``ask-endpoint`` and ``undeploy``.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from typing import Any

from yoda_pipeline.cloud import validate_for_endpoint
from yoda_pipeline.settings import PipelineSettings
from yoda_step_io import StepError
from yoda_step_io.serving import instances, responses
from yoda_step_io.vertex import init_vertex, vertex_errors

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Serving:
    """The machine an endpoint replica runs on, and roughly what it costs."""

    machine_type: str = "n1-standard-4"
    accelerator_type: str = "NVIDIA_TESLA_T4"
    accelerator_count: int = 1
    #: Vertex AI online prediction list prices in us-central1, copied on 2026-11-29 from
    #: https://cloud.google.com/vertex-ai/pricing: n1-standard-4 about 0.22 USD/hour, one T4
    #: about 0.40 USD/hour. Other regions cost more.
    usd_per_hour: float = 0.62

    def quote(self) -> str:
        return (
            f"one replica of {self.machine_type} + {self.accelerator_count} x "
            f"{self.accelerator_type}: about {self.usd_per_hour:.2f} USD per hour while deployed "
            "(us-central1 list price copied on 2026-11-29 from "
            "https://cloud.google.com/vertex-ai/pricing: check your region's), "
            "until `make undeploy`"
        )


def endpoint_name(settings: PipelineSettings) -> str:
    return f"{settings.registry_model_name}-endpoint"


def _vertex(settings: PipelineSettings) -> Any:
    validate_for_endpoint(settings)  # before any network call
    return init_vertex(settings.project_id, settings.region, settings.vertex_api_endpoint or None)


def _find(aiplatform: Any, kind: str, name: str) -> Any | None:
    """The model or endpoint of that display name, fully read: a listed resource is read again on
    first use, and after a delete there is nothing left to read."""
    found = getattr(aiplatform, kind).list(filter=f'display_name="{name}"')
    if not found:
        return None
    found[0].display_name  # noqa: B018  (loads the resource now)
    return found[0]


def deploy(settings: PipelineSettings, serving: Serving | None = None) -> str:
    """Deploy the registry's default version on one replica; return the endpoint's name.

    Raises:
        CloudSettingsError: bad settings (before any network call).
        StepError: no model of that name in the registry.
    """
    serving = serving or Serving()
    aiplatform = _vertex(settings)
    model = _find(aiplatform, "Model", settings.registry_model_name)
    if model is None:
        raise StepError(
            f"no model {settings.registry_model_name!r} in the Model Registry of "
            f"{settings.project_id}/{settings.region}: a pipeline run must pass the quality gate "
            "first (see its report), or set YODA_REGISTRY_MODEL_NAME"
        )
    print(f"Deploying {model.resource_name}@{model.version_id} on {serving.quote()}.")
    endpoint = _find(aiplatform, "Endpoint", endpoint_name(settings))
    if endpoint is None:
        endpoint = aiplatform.Endpoint.create(display_name=endpoint_name(settings))
    previous = [deployed.id for deployed in endpoint.list_models()]
    model.deploy(
        endpoint=endpoint,
        deployed_model_display_name=f"{settings.registry_model_name}-v{model.version_id}",
        machine_type=serving.machine_type,
        accelerator_type=serving.accelerator_type,
        accelerator_count=serving.accelerator_count,
        min_replica_count=1,
        max_replica_count=1,
        traffic_percentage=100,
        sync=True,
    )
    for deployed_id in previous:  # the version it replaces has no traffic left: stop paying
        endpoint.undeploy(deployed_model_id=deployed_id)
    logger.info("deployed %s to %s", model.resource_name, endpoint.resource_name)
    return str(endpoint.resource_name)


def _endpoint(settings: PipelineSettings) -> Any:
    aiplatform = _vertex(settings)
    endpoint = _find(aiplatform, "Endpoint", endpoint_name(settings))
    if endpoint is None:
        raise StepError(f"no endpoint {endpoint_name(settings)!r}: run `make deploy` first")
    return endpoint


def ask(settings: PipelineSettings, texts: list[str]) -> list[str]:
    """The deployed model's answers, asked in the serving contract's shapes
    (:mod:`yoda_step_io.serving`).

    Raises:
        StepError: no sentence, no endpoint, or an answer not in the contract's shape.
    """
    if not texts or not all(text.strip() for text in texts):
        raise StepError("give at least one non-empty sentence: make ask-endpoint TEXT=…")
    response = _endpoint(settings).predict(instances=instances(texts))
    return responses(response.predictions, len(texts))


def undeploy(settings: PipelineSettings) -> str:
    """Undeploy every model from the endpoint and delete it; return its name."""
    endpoint = _endpoint(settings)
    name = str(endpoint.resource_name)
    endpoint.undeploy_all(sync=True)
    endpoint.delete(sync=True)
    logger.info("deleted %s", name)
    return name


def deploy_command(_: argparse.Namespace, settings: PipelineSettings) -> None:
    """deploy: the endpoint's name."""
    with vertex_errors("deploying", settings.vertex_api_endpoint or None):
        print(f"Deployed to {deploy(settings)}")


def ask_command(args: argparse.Namespace, settings: PipelineSettings) -> None:
    """ask-endpoint: each sentence and its answer."""
    with vertex_errors("asking the endpoint", settings.vertex_api_endpoint or None):
        answers = ask(settings, args.sentences)
    for sentence, answer in zip(args.sentences, answers, strict=True):
        print(f"> {sentence}\n{answer or '(empty answer)'}\n")


def undeploy_command(_: argparse.Namespace, settings: PipelineSettings) -> None:
    """undeploy: the deleted endpoint's name."""
    with vertex_errors("undeploying", settings.vertex_api_endpoint or None):
        print(f"Undeployed and deleted {undeploy(settings)}")
