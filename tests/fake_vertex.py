"""A stateful stand-in for Vertex AI's Model Registry and online endpoints (REST, v1): no local
counterpart exists, so the real google-cloud-aiplatform client talks to this on 127.0.0.1 and the
tests read the requests it recorded. Long-running operations finish at once. An endpoint's
predictions come in the serving contract's shapes (yoda_step_io.serving), made up or, with
:func:`forwarding_to`, asked of a real ``yoda-serve``."""

from __future__ import annotations

import itertools
import json
import re
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fake_google_api import FakeApi, Recorded, fake_google_api

from yoda_step_io.serving import INSTANCES, PREDICTIONS, TEXT, predict_answer

PARENT = r"/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
TYPES = "type.googleapis.com/google.cloud.aiplatform.v1."
#: The metrics each model-evaluation schema defines, as Google publishes them: Vertex AI checks
#: an import's metrics against its schema ("400 Invalid Metrics Format",
#: googleapis/python-aiplatform#5570). The text-generation schema's YAML is not public; its
#: generated message is, in the Vertex AI API discovery document
#: (googleapis/google-api-python-client@01f367c3c9acd7001ea51f7af72352f23df8807b,
#: googleapiclient/discovery_cache/documents/aiplatform.v1.json,
#: GoogleCloudAiplatformV1SchemaModelevaluationMetricsGeneralTextGenerationEvaluationMetrics):
#: two properties, both "type": "number", "format": "float".
SCHEMA_FIELDS: dict[str, frozenset[str]] = {
    "gs://google-cloud-aiplatform/schema/modelevaluation/general_text_generation_metrics_1.0.0"
    ".yaml": frozenset({"bleu", "rougeLSum"}),
}
_LABEL_FILTER = re.compile(r'labels\.(?P<key>[a-z0-9_-]+)="(?P<value>[a-z0-9_-]*)"')


@dataclass
class VertexState:
    """Models (with versions) and endpoints, as the fake knows them."""

    project: str = ""
    location: str = ""
    models: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # id -> versions
    defaults: dict[str, str] = field(default_factory=dict)  # model id -> default version id
    # as imported, with the fake's own "model" and "version" keys
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    # statuses (400, 503) to answer the next evaluation imports with, then accept them again;
    # -503: import it, then answer 503 (the answer lost on its way back)
    import_failures: list[int] = field(default_factory=list)
    # statuses to answer the next listings of a version's evaluations with
    list_failures: list[int] = field(default_factory=list)
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    # deleted endpoints can still be read (the SDK reads them as it reports the deletion), as
    # while Vertex AI's delete operation runs; they are no longer listed
    deleted: dict[str, dict[str, Any]] = field(default_factory=dict)
    predict: Callable[[list[Any]], list[Any]] = lambda instances: predict_answer(
        [f"answer to {i.get(TEXT)}" for i in instances]
    )[PREDICTIONS]
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1001))

    def name(self, kind: str, ident: str) -> str:
        return f"projects/{self.project}/locations/{self.location}/{kind}/{ident}"

    def model(self, model_id: str, version: str | None = None) -> dict[str, Any]:
        versions = self.models[model_id]
        wanted = version or self.defaults[model_id]
        found = next(v for v in versions if v["versionId"] == wanted)
        aliases = ["default"] if wanted == self.defaults[model_id] else []
        return {**found, "versionAliases": aliases + found.get("versionAliases", [])}


def forwarding_to(predict_url: str) -> Callable[[list[Any]], list[Any]]:
    """An endpoint's ``predict`` that asks the server at ``predict_url`` (a ``yoda-serve``'s
    predict route), as Vertex AI hands a prediction request to the deployed container."""

    def predict(instances: list[Any]) -> list[Any]:
        body = json.dumps({INSTANCES: instances}).encode()
        with urllib.request.urlopen(predict_url, data=body, timeout=60) as response:
            predictions: list[Any] = json.loads(response.read())[PREDICTIONS]
        return predictions

    return predict


def _operation(state: VertexState, response: dict[str, Any], kind: str) -> dict[str, Any]:
    return {
        "name": state.name("operations", str(next(state.ids))),
        "done": True,
        "metadata": {"@type": f"{TYPES}{kind}Metadata"},
        "response": response,
    }


def _error(status: int, message: str) -> tuple[int, dict[str, Any]]:
    reasons = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 500: "INTERNAL", 503: "UNAVAILABLE"}
    reason = reasons[status]
    return status, {"error": {"code": status, "message": message, "status": reason}}


def _import_evaluation(
    state: VertexState, model_id: str, version: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """The request parsed strictly (an unknown field is a 400, as on Google's side), then its
    metrics against the fields of its schema; ``import_failures`` answer first when set."""
    from google.cloud.aiplatform_v1 import ImportModelEvaluationRequest
    from google.protobuf import json_format

    try:
        json_format.ParseDict(body, ImportModelEvaluationRequest.pb(ImportModelEvaluationRequest()))
    except json_format.ParseError as error:
        return _error(400, f"Invalid JSON payload received. {error}")
    evaluation = body["modelEvaluation"]
    fields = SCHEMA_FIELDS.get(evaluation.get("metricsSchemaUri", ""))
    metrics = evaluation.get("metrics")
    if fields is None:
        return _error(400, f"unknown metrics schema {evaluation.get('metricsSchemaUri')!r}")
    if (not isinstance(metrics, dict) or not metrics or not set(metrics) <= fields
            or not all(type(value) in (int, float) for value in metrics.values())):  # fmt: skip
        return _error(400, "Invalid Metrics Format")
    status = state.import_failures.pop(0) if state.import_failures else 200
    if status > 200:
        return _error(status, {400: "Invalid Metrics Format", 503: "unavailable"}[status])
    name = state.name("models", f"{model_id}/evaluations/{next(state.ids)}")
    state.evaluations.append({**evaluation, "name": name, "model": model_id, "version": version})
    if status < 0:
        return _error(-status, "unavailable")
    return 200, {**evaluation, "name": name}


def _model_version_routes(
    state: VertexState, request: Recorded, model_id: str, version: str | None, rest: str
) -> tuple[int, dict[str, Any]] | None:
    """A model's versions (a label filter, strictly) and a version's evaluations."""
    if request.method == "GET" and rest == ":listVersions" and not version:
        wanted = (request.query.get("filter") or [""])[0]
        label = _LABEL_FILTER.fullmatch(wanted)
        if wanted and not label:
            return _error(400, f"fake Vertex AI: unsupported filter {wanted!r}")
        versions = [state.model(model_id, v["versionId"]) for v in state.models[model_id]]
        if label:
            versions = [v for v in versions
                        if v.get("labels", {}).get(label["key"]) == label["value"]]  # fmt: skip
        return 200, {"models": versions}
    version = version or state.defaults[model_id]
    if all(v["versionId"] != version for v in state.models[model_id]):
        return _error(404, f"fake Vertex AI: no version {version} of model {model_id}")
    if request.method == "POST" and rest == "/evaluations:import":
        return _import_evaluation(state, model_id, version, request.body)
    if request.method == "GET" and rest == "/evaluations":
        if state.list_failures:
            return _error(state.list_failures.pop(0), "fake Vertex AI: listing failed")
        found = [{k: v for k, v in e.items() if k not in ("model", "version")}
                 for e in state.evaluations
                 if (e["model"], e["version"]) == (model_id, version)]  # fmt: skip
        return 200, {"modelEvaluations": found}
    return None


def _respond(state: VertexState, request: Recorded) -> tuple[int, dict[str, Any]]:
    path, body = request.path, request.body
    match = re.match(PARENT, path)
    if match:
        state.project, state.location = match["project"], match["location"]
    rest = path[match.end() :] if match else path
    if request.method == "POST" and rest == "/models:upload":
        parent = body.get("parentModel", "")
        model_id = parent.rsplit("/", 1)[-1] if parent else str(next(state.ids))
        versions = state.models.setdefault(model_id, [])
        version_id = str(len(versions) + 1)
        # a custom serving container: Vertex AI deploys it on dedicated machines
        versions.append({**body["model"], "name": state.name("models", model_id),
                         "supportedDeploymentResourcesTypes": ["DEDICATED_RESOURCES"],
                         "versionId": version_id, "versionAliases": body["model"].get(
                             "versionAliases", [])})  # fmt: skip
        if not versions[:-1] or "default" in body["model"].get("versionAliases", []):
            state.defaults[model_id] = version_id
        response = {
            "@type": TYPES + "UploadModelResponse",
            "model": state.name("models", model_id),
            "modelVersionId": version_id,
        }
        return 200, _operation(state, response, "UploadModelOperation")
    if request.method == "GET" and rest == "/models":
        wanted = re.search(r'display_name="([^"]*)"', (request.query.get("filter") or [""])[0])
        models = [state.model(i) for i in state.models
                  if not wanted or state.model(i).get("displayName") == wanted[1]]  # fmt: skip
        return 200, {"models": models}
    found = re.fullmatch(r"/models/(?P<id>[^/@:]+)(@(?P<version>[^/:]+))?", rest)
    if request.method == "GET" and found and found["id"] in state.models:
        return 200, state.model(found["id"], found["version"])
    found = re.fullmatch(r"/models/(?P<id>[^/@:]+)(@(?P<version>[^/:]+))?(?P<rest>[/:].+)", rest)
    if found and found["id"] in state.models:
        answer = _model_version_routes(state, request, found["id"], found["version"], found["rest"])
        if answer:
            return answer
    if request.method == "GET" and rest == "/endpoints":
        wanted = re.search(r'display_name="([^"]*)"', (request.query.get("filter") or [""])[0])
        endpoints = [e for e in state.endpoints.values()
                     if not wanted or e["displayName"] == wanted[1]]  # fmt: skip
        return 200, {"endpoints": endpoints}
    if request.method == "POST" and rest == "/endpoints":
        endpoint_id = str(next(state.ids))
        state.endpoints[endpoint_id] = {**body, "name": state.name("endpoints", endpoint_id),
                                        "deployedModels": []}  # fmt: skip
        response = {"@type": TYPES + "Endpoint",
                    **state.endpoints[endpoint_id]}  # fmt: skip
        return 200, _operation(state, response, "CreateEndpointOperation")
    found = re.fullmatch(r"/endpoints/(?P<id>[^/:]+)(?P<verb>:\w+)?", rest)
    if request.method == "GET" and found and found["id"] in state.deleted:
        return 200, state.deleted[found["id"]]
    if found and found["id"] in state.endpoints:
        endpoint = state.endpoints[found["id"]]
        verb = found["verb"]
        if request.method == "GET" and not verb:
            return 200, endpoint
        if request.method == "DELETE" and not verb:
            state.deleted[found["id"]] = state.endpoints.pop(found["id"])
            return 200, _operation(state, {"@type": "type.googleapis.com/google.protobuf.Empty"},
                                   "DeleteOperation")  # fmt: skip
        if verb == ":deployModel":
            deployed = {**body["deployedModel"], "id": str(next(state.ids))}
            endpoint["deployedModels"].append(deployed)
            endpoint["trafficSplit"] = {deployed["id"]: 100}
            response = {"@type": TYPES + "DeployModelResponse",
                        "deployedModel": deployed}  # fmt: skip
            return 200, _operation(state, response, "DeployModelOperation")
        if verb == ":undeployModel":
            endpoint["deployedModels"] = [d for d in endpoint["deployedModels"]
                                          if d["id"] != body["deployedModelId"]]  # fmt: skip
            endpoint["trafficSplit"] = {}
            response = {"@type": TYPES + "UndeployModelResponse"}
            return 200, _operation(state, response, "UndeployModelOperation")
        if verb == ":predict":
            deployed = endpoint["deployedModels"]
            if not deployed:
                return 400, {"error": {"code": 400, "message": "no model deployed",
                                       "status": "FAILED_PRECONDITION"}}  # fmt: skip
            return 200, {"predictions": state.predict(body["instances"]),
                         "deployedModelId": deployed[0]["id"]}  # fmt: skip
    return 404, {"error": {"code": 404, "message": f"fake Vertex AI: no {request.method} {path}",
                           "status": "NOT_FOUND"}}  # fmt: skip


@contextmanager
def fake_vertex(state: VertexState | None = None) -> Iterator[tuple[FakeApi, VertexState]]:
    """Serve the stand-in on 127.0.0.1; yield the recording API and its state."""
    state = state or VertexState()
    with fake_google_api(lambda request: _respond(state, request)) as api:
        yield api, state
