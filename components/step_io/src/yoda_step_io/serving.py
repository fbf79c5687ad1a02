"""The serving contract, declared once: how Vertex AI runs the inference image online.

The command, the port and routes the Model Registry's container spec declares, the environment
Vertex AI sets in the container (Vertex AI's custom-container contract: ``AIP_HTTP_PORT``,
``AIP_HEALTH_ROUTE``, ``AIP_PREDICT_ROUTE``, ``AIP_STORAGE_URI``) and ours, and the request and
answer shapes::

    {"instances": [{"text": "…"}, …], "parameters": {"max_new_tokens": 32, …}}
    {"predictions": [{"response": "…"}, …]}

The server (``yoda_inference.serve``), registration (``yoda_registry.register``), ``make deploy``
and ``make ask-endpoint`` (``yoda_pipeline.deploy``), and the tests with their Vertex AI
stand-in read these names instead of spelling them out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from yoda_step_io.cli import StepError

#: The variables Vertex AI sets in a custom serving container.
PORT_VARIABLE = "AIP_HTTP_PORT"
HEALTH_ROUTE_VARIABLE = "AIP_HEALTH_ROUTE"
PREDICT_ROUTE_VARIABLE = "AIP_PREDICT_ROUTE"
STORAGE_URI_VARIABLE = "AIP_STORAGE_URI"
#: The request's and the answer's keys.
INSTANCES = "instances"
TEXT = "text"
PARAMETERS = "parameters"
PREDICTIONS = "predictions"
RESPONSE = "response"


@dataclass(frozen=True)
class ServingContract:
    """What the Model Registry's container spec says, and so what the server answers on."""

    command: tuple[str, ...] = ("yoda-serve",)
    port: int = 8080
    health_route: str = "/health"
    predict_route: str = "/predict"
    #: set in the container by registration: the base model in 4 bits, on the endpoint's T4
    environment: Mapping[str, str] = field(default_factory=lambda: {"YODA_QUANTIZATION": "4bit"})

    def container_environment(self, storage_uri: str, port: int | None = None) -> dict[str, str]:
        """The environment Vertex AI starts the container with: the ``AIP_*`` variables for
        ``storage_uri`` (the Model artifact) and ``port``, and the spec's own variables."""
        return {
            STORAGE_URI_VARIABLE: storage_uri,
            PORT_VARIABLE: str(self.port if port is None else port),
            HEALTH_ROUTE_VARIABLE: self.health_route,
            PREDICT_ROUTE_VARIABLE: self.predict_route,
            **self.environment,
        }

    def upload_arguments(self) -> dict[str, Any]:
        """The ``serving_container_*`` arguments of ``aiplatform.Model.upload``."""
        return {
            "serving_container_command": list(self.command),
            "serving_container_predict_route": self.predict_route,
            "serving_container_health_route": self.health_route,
            "serving_container_ports": [self.port],
            "serving_container_environment_variables": dict(self.environment),
        }


#: The one serving contract of the project.
SERVING = ServingContract()


def instances(texts: Sequence[str]) -> list[dict[str, str]]:
    """The ``instances`` of a predict request for ``texts``."""
    return [{TEXT: text} for text in texts]


def predict_request(
    texts: Sequence[str], parameters: Mapping[str, object] | None = None
) -> dict[str, Any]:
    """A predict request's body: ``texts`` to answer, and generation ``parameters`` if any."""
    request: dict[str, Any] = {INSTANCES: instances(texts)}
    if parameters:
        request[PARAMETERS] = dict(parameters)
    return request


def predict_answer(answers: Sequence[str]) -> dict[str, list[dict[str, str]]]:
    """A predict answer's body: one prediction per instance, in order."""
    return {PREDICTIONS: [{RESPONSE: answer} for answer in answers]}


def responses(predictions: Sequence[Any], expected: int) -> list[str]:
    """The answers in a predict answer's ``predictions``, one per instance asked.

    Raises:
        StepError: not ``expected`` predictions of ``{"response": str}``.
    """
    answers = [p.get(RESPONSE) if isinstance(p, Mapping) else None for p in predictions]
    if len(answers) != expected or not all(isinstance(a, str) for a in answers):
        raise StepError(
            f"the endpoint answered {len(answers)} prediction(s) for {expected} instance(s), "
            f'expected [{{"{RESPONSE}": "…"}}, …]: is it serving yoda-serve?'
        )
    return [str(answer) for answer in answers]
