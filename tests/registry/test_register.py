"""Registration (yoda_registry.register, `yoda-register`): the Model Registry's champion/challenger
versions with the evaluation attached, and a retry that never registers twice, with the real
google-cloud-aiplatform client against the local Vertex AI stand-in (tests/fake_vertex.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fake_vertex import fake_vertex

from yoda_registry.model_evaluation import SCHEMA_URI, version_description
from yoda_registry.register import (
    artifact_label,
    becomes_default,
    label_value,
    register_model,
    score_from_labels,
)
from yoda_registry.register_cli import main as register_main
from yoda_step_io import StepError
from yoda_step_io.serving import SERVING
from yoda_step_io.vertex import ENDPOINT_VARIABLE

IMAGE = "europe-west4-docker.pkg.dev/yoda-project/yoda/yoda-inference@sha256:" + "ab" * 32
GOOD = {"rouge_l_mean": 0.8, "base_rouge_l_mean": 0.55, "echo_rouge_l_mean": 0.6,
        "rouge_l_uplift_vs_base": 0.25, "rouge_l_uplift_vs_echo": 0.2, "samples": 72.0}  # fmt: skip


def test_labels_and_champion_challenger_rules() -> None:
    assert label_value("Yoda_Phi3 run 2026.11.29") == "yoda_phi3-run-2026-11-29"
    assert len(label_value("x" * 80)) == 63
    assert score_from_labels({"yoda_metric": "rouge_l", "yoda_score": "8123"}, "rouge_l") == 0.8123
    assert score_from_labels({"yoda_metric": "bleu", "yoda_score": "8123"}, "rouge_l") is None
    assert becomes_default(0.7, None) and becomes_default(0.81, 0.8)
    assert not becomes_default(0.8, 0.8)


def register(api_url: str, score: float, run: str) -> Any:
    aggregates = {**GOOD, "rouge_l_mean": score, "bleu_mean": 0.31}
    return register_model(f"gs://yoda-bucket/{run}/model", aggregates, project="yoda-project",
                          location="europe-west4", display_name="yoda-phi3", serving_image=IMAGE,
                          metric="rouge_l", run_name=run, endpoint=api_url)  # fmt: skip


def test_versions_of_one_model_and_only_a_better_one_becomes_the_default() -> None:
    with fake_vertex() as (api, state):
        first = register(api.url, 0.80, "run-1")
        worse = register(api.url, 0.70, "run-2")
        better = register(api.url, 0.85, "run-3")
    assert (first.version_id, worse.version_id, better.version_id) == ("1", "2", "3")
    assert (first.is_default, worse.is_default, better.is_default) == (True, False, True)
    assert (worse.replaced_score, better.replaced_score) == (0.8, 0.8)
    (model_id,) = state.models
    assert state.defaults[model_id] == "3"
    uploads = [r.body for r in api.requests if r.path.endswith("/models:upload")]
    assert "parentModel" not in uploads[0]
    assert uploads[1]["parentModel"] == uploads[2]["parentModel"] == state.name("models", model_id)
    assert "default" not in uploads[1]["model"].get("versionAliases", [])
    spec = uploads[0]["model"]["containerSpec"]
    assert spec["imageUri"] == IMAGE and spec["command"] == list(SERVING.command)
    assert uploads[0]["model"]["artifactUri"] == "gs://yoda-bucket/run-1/model"
    labels = {"yoda_run": "run-3", "yoda_metric": "rouge_l", "yoda_score": "8500",
              "yoda_echo_score": "6000",
              "yoda_artifact": artifact_label("gs://yoda-bucket/run-3/model")}  # fmt: skip
    assert uploads[2]["model"]["labels"] == labels
    assert uploads[2]["model"]["versionDescription"] == (
        "run run-3: rouge_l 0.8500; base 0.5500 (uplift +0.2500); echo 0.6000 (uplift +0.2000)"
    )
    assert [e["version"] for e in state.evaluations] == ["1", "2", "3"]
    # the stand-in took them under the schema's fields (tests/fake_vertex.py, SCHEMA_FIELDS);
    # the full set, the baselines and uplifts with it, rides along as free-form metadata
    evaluation = state.evaluations[0]
    assert evaluation["metricsSchemaUri"] == SCHEMA_URI
    assert evaluation["metrics"] == {"bleu": 0.31, "rougeLSum": 0.8}
    assert evaluation["metadata"]["pipeline_job_id"] == "run-1"
    assert evaluation["metadata"]["yoda_metrics"]["rouge_l_uplift_vs_echo"] == pytest.approx(0.2)


def run_register_step(tmp_path: Path, run: str = "run-1", recipe: str = "{}") -> dict[str, Any]:
    """``yoda-register`` as the pipeline runs it (the stand-in's URL in the environment), its
    Model carrying the champion's ``recipe``; the metadata of its ``vertex_model`` output."""
    (tmp_path / "metrics").mkdir(exist_ok=True)
    (tmp_path / "metrics" / "metrics.json").write_text(json.dumps({**GOOD, "bleu_mean": 0.31}))
    out = tmp_path / "executor_output.json"
    model = {"artifacts": [{"metadata": {"recipe": recipe}}]}
    executor = {"inputs": {"artifacts": {"model": model}},
                "outputs": {"artifacts": {"vertex_model": {"artifacts": [{"name": "m"}]}},
                            "outputFile": str(out)}}  # fmt: skip
    register_main(["--model-uri", f"gs://yoda-bucket/{run}/model", "--project", "yoda-project",
                   "--location", "europe-west4", "--run-name", run, "--serving-image", IMAGE,
                   "--evaluation-metrics", str(tmp_path / "metrics"),
                   "--executor-input", json.dumps(executor)])  # fmt: skip
    artifact = json.loads(out.read_text())["artifacts"]["vertex_model"]["artifacts"][0]
    metadata: dict[str, Any] = artifact["metadata"]
    return metadata


def test_a_refused_import_fails_the_step_and_the_retry_imports_it_without_a_new_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Registration cannot half-succeed: the version whose import was refused is found again by
    the task's retry, which imports its evaluation and uploads nothing; one more run adds
    nothing either."""
    with fake_vertex() as (api, state):
        monkeypatch.setenv(ENDPOINT_VARIABLE, api.url)
        state.import_failures.append(400)
        with pytest.raises(SystemExit) as exit_info:
            run_register_step(tmp_path)
        assert exit_info.value.code == 2
        (line,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error:")]
        assert "projects/yoda-project/locations/europe-west4/models/1001@1" in line
        assert "without its evaluation" in line and "(400 Invalid Metrics Format)" in line
        assert state.evaluations == []
        retried = run_register_step(tmp_path)
        again = run_register_step(tmp_path)
    uploads = [r for r in api.requests if r.path.endswith("/models:upload")]
    imports = [r for r in api.requests if r.path.endswith("/evaluations:import")]
    assert len(uploads) == 1 and len(imports) == 2
    assert [len(versions) for versions in state.models.values()] == [1]
    (evaluation,) = state.evaluations
    assert (evaluation["version"], evaluation["metrics"]) == ("1", {"bleu": 0.31, "rougeLSum": 0.8})
    assert retried["version_id"] == again["version_id"] == "1"
    assert retried["reused"] is again["reused"] is True and retried["is_default_version"] is True


def test_a_failed_look_up_of_the_evaluations_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before importing, registration looks for an evaluation the version has already; that
    call failing is the step's one line too, not a traceback."""
    with fake_vertex() as (api, state):
        monkeypatch.setenv(ENDPOINT_VARIABLE, api.url)
        state.list_failures.append(500)
        with pytest.raises(SystemExit) as exit_info:
            run_register_step(tmp_path)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert [line for line in err if line.startswith("error:")] == err[-1:]
    assert "answered 500" in err[-1] and f"YODA_VERTEX_API_ENDPOINT='{api.url}'" in err[-1]
    assert not any(line.startswith("Traceback") for line in err)


def test_a_transient_import_failure_is_retried_within_the_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fake_vertex() as (api, state):
        monkeypatch.setenv(ENDPOINT_VARIABLE, api.url)
        state.import_failures.append(503)
        metadata = run_register_step(tmp_path, recipe='{"learning_rate": 0.001}')
    assert [r.path.rsplit("/", 1)[-1] for r in api.requests if r.method == "POST"] == [
        "models:upload", "evaluations:import", "evaluations:import"]  # fmt: skip
    assert len(state.evaluations) == 1 and metadata["reused"] is False
    # the champion's recipe, with the version
    assert json.loads(metadata["recipe"]) == {"learning_rate": 0.001}
    (version,) = [v for versions in state.models.values() for v in versions]
    assert version["versionDescription"].endswith('; recipe {"learning_rate": 0.001}')


def test_an_import_whose_answer_is_lost_is_not_imported_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The import is stored, but its answer is a 503: the retry finds it and imports nothing."""
    with fake_vertex() as (api, state):
        monkeypatch.setenv(ENDPOINT_VARIABLE, api.url)
        state.import_failures.append(-503)
        run_register_step(tmp_path)
    assert [r.path.rsplit("/", 1)[-1] for r in api.requests if r.method == "POST"] == [
        "models:upload", "evaluations:import"]  # fmt: skip
    assert len(state.evaluations) == 1


def test_the_stand_in_refuses_metrics_outside_the_schema() -> None:
    """The schema check is live: the project's own names, as sent before, are refused."""
    from google.api_core.exceptions import BadRequest
    from google.cloud import aiplatform

    with fake_vertex() as (api, state):
        registered = register(api.url, 0.8, "run-1")
        client = aiplatform.Model(registered.resource_name).api_client
        with pytest.raises(BadRequest, match="Invalid Metrics Format"):
            client.import_model_evaluation(parent=registered.resource_name, model_evaluation={
                "metrics_schema_uri": SCHEMA_URI, "metrics": {"rouge_l_mean": 0.8}})  # fmt: skip
    assert len(state.evaluations) == 1


def test_no_schema_metric_registers_without_an_evaluation() -> None:
    aggregates = {"levenshtein_similarity_mean": 0.7}
    with fake_vertex() as (api, state):
        registered = register_model("gs://b/m", aggregates, project="yoda-project",
                                    location="europe-west4", display_name="yoda-phi3",
                                    serving_image=IMAGE, metric="levenshtein_similarity",
                                    run_name="r", endpoint=api.url)  # fmt: skip
    assert registered.version_id == "1" and state.evaluations == []
    assert version_description(aggregates, "levenshtein_similarity", "r", {}) == (
        "run r: levenshtein_similarity 0.7000"
    )


def test_the_offline_placeholder_image_never_reaches_google() -> None:
    with pytest.raises(StepError, match="is the offline placeholder"):
        register_model("gs://b/m", GOOD, project="yoda-project", location="europe-west4",
                       display_name="yoda-phi3", metric="rouge_l", run_name="r",
                       serving_image="localhost/yoda/inference@sha256:" + "0" * 64,
                       endpoint="https://europe-west4-aiplatform.googleapis.com")  # fmt: skip


def test_an_offline_run_passes_the_gate_without_registering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No project and no Vertex endpoint (make run-local): the register step says why it did not
    register and ends well, so a model that passed the gate does not fail the run."""
    from yoda_registry.register_cli import NOT_REGISTERED
    from yoda_registry.register_cli import main as register_main
    from yoda_step_io.vertex import ENDPOINT_VARIABLE

    monkeypatch.delenv(ENDPOINT_VARIABLE, raising=False)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "metrics.json").write_text(json.dumps(GOOD))
    out = tmp_path / "executor_output.json"
    executor = {"outputs": {"artifacts": {"vertex_model": {"artifacts": [{"name": "m"}]}},
                            "outputFile": str(out)}}  # fmt: skip
    register_main(["--model-uri", str(tmp_path), "--evaluation-metrics", str(tmp_path / "metrics"),
                   "--serving-image", IMAGE, "--executor-input", json.dumps(executor)])  # fmt: skip
    metadata = json.loads(out.read_text())["artifacts"]["vertex_model"]["artifacts"][0]["metadata"]
    assert metadata == {"registered": False, "reason": NOT_REGISTERED}
