"""A stateful stand-in for Vertex AI's Model Registry and online endpoints (REST, v1): no local
counterpart exists, so the real google-cloud-aiplatform client talks to this on 127.0.0.1 and the
tests read the requests it recorded. Long-running operations finish at once."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fake_google_api import FakeApi, Recorded, fake_google_api

PARENT = r"/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
TYPES = "type.googleapis.com/google.cloud.aiplatform.v1."


@dataclass
class VertexState:
    """Models (with versions) and endpoints, as the fake knows them."""

    project: str = ""
    location: str = ""
    models: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # id -> versions
    defaults: dict[str, str] = field(default_factory=dict)  # model id -> default version id
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    # deleted endpoints can still be read (the SDK reads them as it reports the deletion), as
    # while Vertex AI's delete operation runs; they are no longer listed
    deleted: dict[str, dict[str, Any]] = field(default_factory=dict)
    predict: Callable[[list[Any]], list[Any]] = lambda instances: [
        {"response": f"answer to {i.get('text')}"} for i in instances
    ]
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1001))

    def name(self, kind: str, ident: str) -> str:
        return f"projects/{self.project}/locations/{self.location}/{kind}/{ident}"

    def model(self, model_id: str, version: str | None = None) -> dict[str, Any]:
        versions = self.models[model_id]
        wanted = version or self.defaults[model_id]
        found = next(v for v in versions if v["versionId"] == wanted)
        aliases = ["default"] if wanted == self.defaults[model_id] else []
        return {**found, "versionAliases": aliases + found.get("versionAliases", [])}


def _operation(state: VertexState, response: dict[str, Any], kind: str) -> dict[str, Any]:
    return {
        "name": state.name("operations", str(next(state.ids))),
        "done": True,
        "metadata": {"@type": f"{TYPES}{kind}Metadata"},
        "response": response,
    }


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
    found = re.fullmatch(r"/models/(?P<id>[^/@]+)@(?P<version>[^/]+)/evaluations:import", rest)
    if request.method == "POST" and found:
        evaluation = {**body["modelEvaluation"], "model": found["id"], "version": found["version"],
                      "name": state.name("models", f"{found['id']}/evaluations/1")}  # fmt: skip
        state.evaluations.append(evaluation)
        return 200, evaluation
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
