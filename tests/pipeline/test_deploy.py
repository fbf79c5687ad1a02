"""The online endpoint of the registered default version (yoda_pipeline.deploy: `yoda-pipeline
deploy`, `ask-endpoint`, `undeploy`), with the real google-cloud-aiplatform client against the
local Vertex AI stand-in (tests/fake_vertex.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fake_vertex import fake_vertex
from google.cloud.aiplatform_v1 import AcceleratorType

from yoda_pipeline.cli import main as pipeline_main
from yoda_pipeline.settings import PipelineSettings
from yoda_registry.register import register_model

IMAGE = "europe-west4-docker.pkg.dev/yoda-project/yoda/yoda-inference@sha256:" + "ab" * 32


def register(api_url: str, score: float, run: str) -> None:
    """A version of yoda-phi3 in the stand-in, as the register step leaves it."""
    register_model(f"gs://yoda-bucket/{run}/model", {"rouge_l_mean": score, "samples": 72.0},
                   project="yoda-project", location="europe-west4", display_name="yoda-phi3",
                   serving_image=IMAGE, metric="rouge_l", run_name=run,
                   endpoint=api_url)  # fmt: skip


@pytest.fixture
def endpoint_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("YODA_PROJECT_ID", "yoda-project")
    monkeypatch.setenv("YODA_REGION", "europe-west4")


def test_deploy_ask_and_undeploy_the_default_version(
    endpoint_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with fake_vertex() as (api, state):
        monkeypatch.setenv("YODA_VERTEX_API_ENDPOINT", api.url)
        register(api.url, 0.80, "run-1")
        pipeline_main(["deploy"])
        out = capsys.readouterr().out
        assert "about 0.62 USD per hour while deployed" in out.splitlines()[0]
        (endpoint,) = state.endpoints.values()
        assert endpoint["displayName"] == "yoda-phi3-endpoint"
        (deploy_request,) = [r for r in api.requests if r.path.endswith(":deployModel")]
        deployed = deploy_request.body["deployedModel"]
        assert deployed["model"].endswith("/models/1001@1")
        machine = deployed["dedicatedResources"]["machineSpec"]
        accelerator = AcceleratorType(machine.pop("acceleratorType")).name  # sent as a number
        assert (machine, accelerator) == (
            {"machineType": "n1-standard-4", "acceleratorCount": 1}, "NVIDIA_TESLA_T4")  # fmt: skip
        register(api.url, 0.90, "run-2")
        pipeline_main(["deploy"])  # the same endpoint, the new default, the old one undeployed
        assert len(state.endpoints) == 1 and len(endpoint["deployedModels"]) == 1
        assert endpoint["deployedModels"][0]["model"].endswith("@2")
        capsys.readouterr()
        pipeline_main(["ask-endpoint", "The Force is strong.", "Hi."])
        assert capsys.readouterr().out == (
            "> The Force is strong.\nanswer to The Force is strong.\n\n> Hi.\nanswer to Hi.\n\n"
        )
        (predict,) = [r for r in api.requests if r.path.endswith(":predict")]
        assert predict.body["instances"] == [{"text": "The Force is strong."}, {"text": "Hi."}]
        pipeline_main(["undeploy"])
        assert state.endpoints == {}


def test_endpoint_commands_say_what_is_missing(
    endpoint_env: None, monkeypatch: pytest.MonkeyPatch, one_error_line: Callable[..., str]
) -> None:
    with fake_vertex() as (api, _):
        monkeypatch.setenv("YODA_VERTEX_API_ENDPOINT", api.url)
        for command, missing in ((["deploy"], "no model 'yoda-phi3'"),
                                 (["ask-endpoint", "Hi."], "no endpoint 'yoda-phi3-endpoint'"),
                                 (["undeploy"], "no endpoint 'yoda-phi3-endpoint'")):  # fmt: skip
            assert missing in one_error_line(pipeline_main, *command)
        # a region the Vertex AI client does not know (its own list): one line, before any call
        monkeypatch.setenv("YODA_REGION", "europe-west99")
        calls = len(api.requests)
        line = one_error_line(pipeline_main, "deploy", alone=True)
        assert line.startswith("error: YODA_REGION='europe-west99' ")
        assert "Vertex AI region" in line
        assert "(in that area: europe-central2, " in line and len(api.requests) == calls
    assert PipelineSettings(region="europe-west4").registry_model_name == "yoda-phi3"
