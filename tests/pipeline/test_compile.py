"""The compiled pipeline spec: digest-only images, display names, parameters; lock refusals."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from yoda_pipeline.cli import main
from yoda_pipeline.compile import compile_pipeline, spec_images
from yoda_pipeline.images import STEPS, ImageLockError, load_image_lock
from yoda_pipeline.settings import LOCAL_IMAGE_LOCK, PipelineSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "ab" * 32
DIGEST_ONLY = re.compile(r"^[^@:]+(/[^@:]+)*@sha256:[0-9a-f]{64}$")


def write_lock(tmp_path: Path, **images: str) -> Path:
    lock = {step: f"europe-west4-docker.pkg.dev/p/yoda/{step}@{DIGEST}" for step in STEPS}
    lock.update(images)
    path = tmp_path / "lock.json"
    path.write_text(json.dumps(lock))
    return path


@pytest.fixture
def compiled(tmp_path: Path) -> dict[str, Any]:
    settings = PipelineSettings(
        image_lock=write_lock(tmp_path), raw_data_uri="gs://bucket/raw.csv", test_fraction=0.2
    )
    path = compile_pipeline(settings, tmp_path / "pipeline.yaml")
    spec: dict[str, Any] = yaml.safe_load(path.read_text())
    return spec


def test_every_image_is_a_digest_from_the_lock(compiled: dict[str, Any]) -> None:
    images = spec_images(compiled)
    assert images, "the spec has no executors"
    for image in images.values():
        assert DIGEST_ONLY.match(image), image
        assert image.endswith(DIGEST)


def test_tasks_have_display_names(compiled: dict[str, Any]) -> None:
    tasks = compiled["root"]["dag"]["tasks"]
    names = {name: task["taskInfo"]["name"] for name, task in tasks.items()}
    assert names == {
        "data-transformation-component": "Data transformation",
        "for-loop-1": "recipes",
        "champion-component": "Champion (validation loss)",
        "inference-component": "Inference",
        "evaluation-component": "Evaluation (ragas)",
        "report-component": "Report",
        "gate-component": "Quality gate",
        "condition-2": "gate-passed",
    }
    inner = compiled["components"]["comp-condition-2"]["dag"]["tasks"]
    assert inner["register-component"]["taskInfo"]["name"] == "Register in Model Registry"
    recipe = tuning_task(compiled)
    assert recipe["taskInfo"]["name"] == "Fine-tuning (QLoRA), one recipe"


def tuning_task(compiled: dict[str, Any]) -> dict[str, Any]:
    """The fine-tuning task: one per recipe, in the sweep's loop."""
    task: dict[str, Any] = compiled["components"]["comp-for-loop-1"]["dag"]["tasks"][
        "fine-tuning-component"
    ]
    return task


def test_the_sweep_fans_out_over_its_recipes_and_the_champion_gathers_them(
    compiled: dict[str, Any],
) -> None:
    """A loop over the run parameter ``sweep`` (each item a recipe, to ``--recipe``); the
    champion gathers every recipe's outcome (``dsl.Collected``) and hands on its Model."""
    loop = compiled["root"]["dag"]["tasks"]["for-loop-1"]
    assert loop["parameterIterator"]["items"] == {"inputParameter": "pipelinechannel--sweep"}
    assert loop["iteratorPolicy"] == {"parallelismLimit": 4}
    assert tuning_task(compiled)["inputs"]["parameters"]["recipe"] == {
        "componentInputParameter": "pipelinechannel--sweep-loop-item"}  # fmt: skip
    root = compiled["root"]["inputDefinitions"]["parameters"]["sweep"]
    assert (root["parameterType"], root["defaultValue"]) == ("LIST", [{}])
    champion = compiled["root"]["dag"]["tasks"]["champion-component"]["inputs"]["parameters"]
    outcomes = champion["outcomes"]["taskOutputParameter"]
    assert outcomes == {"outputParameterKey": "pipelinechannel--fine-tuning-component-outcome",
                        "producerTask": "for-loop-1"}  # fmt: skip


def test_evaluation_scores_the_predictions_without_a_gpu(compiled: dict[str, Any]) -> None:
    executor = compiled["deploymentSpec"]["executors"]["exec-evaluation-component"]["container"]
    assert executor["command"] == ["yoda-evaluation"]
    assert "accelerator" not in executor.get("resources", {})
    inputs = compiled["root"]["dag"]["tasks"]["evaluation-component"]["inputs"]["artifacts"]
    assert inputs["predictions"]["taskOutputArtifact"] == {
        "outputArtifactKey": "predictions", "producerTask": "inference-component"}  # fmt: skip
    assert inputs["base_predictions"]["taskOutputArtifact"] == {
        "outputArtifactKey": "base_predictions", "producerTask": "inference-component"}  # fmt: skip
    assert executor["args"][executor["args"].index("--base-predictions") + 1] == (
        "{{$.inputs.artifacts['base_predictions'].path}}"
    )
    outputs = compiled["components"]["comp-evaluation-component"]["outputDefinitions"]
    assert {name: a["artifactType"]["schemaTitle"] for name, a in outputs["artifacts"].items()} == {
        "evaluation_results": "system.Dataset",
        "metrics": "system.Metrics",
    }


def test_report_renders_html_and_markdown_from_evaluation_and_training(
    compiled: dict[str, Any],
) -> None:
    executor = compiled["deploymentSpec"]["executors"]["exec-report-component"]["container"]
    assert executor["command"] == ["yoda-report"]
    assert executor["image"] == spec_images(compiled)["exec-evaluation-component"]
    assert "accelerator" not in executor.get("resources", {})
    inputs = compiled["root"]["dag"]["tasks"]["report-component"]["inputs"]["artifacts"]
    assert {name: (i["taskOutputArtifact"]["producerTask"], i["taskOutputArtifact"]
                   ["outputArtifactKey"]) for name, i in inputs.items()} == {
        "evaluation_results": ("evaluation-component", "evaluation_results"),
        "evaluation_metrics": ("evaluation-component", "metrics"),
        "training_metrics": ("champion-component", "metrics"),
        "model": ("champion-component", "model"),
    }  # fmt: skip
    outputs = compiled["components"]["comp-report-component"]["outputDefinitions"]["artifacts"]
    assert {name: a["artifactType"]["schemaTitle"] for name, a in outputs.items()} == {
        "html": "system.HTML", "markdown": "system.Markdown"}  # fmt: skip


def test_registration_runs_only_when_the_gate_passes(compiled: dict[str, Any]) -> None:
    condition = compiled["root"]["dag"]["tasks"]["condition-2"]
    assert condition["triggerPolicy"]["condition"] == (
        "inputs.parameter_values['pipelinechannel--gate-component-passed'] == true"
    )
    gate = compiled["components"]["comp-gate-component"]["outputDefinitions"]
    assert gate["parameters"]["passed"]["parameterType"] == "BOOLEAN"
    assert gate["artifacts"]["decision"]["artifactType"]["schemaTitle"] == "system.Metrics"
    images = spec_images(compiled)
    assert images["exec-gate-component"] == images["exec-register-component"]
    register = compiled["deploymentSpec"]["executors"]["exec-register-component"]["container"]
    args = register["args"]
    # the serving container is the inference image, by digest; the model its gs:// URI
    assert args[args.index("--serving-image") + 1] == images["exec-inference-component"]
    assert args[args.index("--model-uri") + 1] == "{{$.inputs.artifacts['model'].uri}}"
    assert args[args.index("--run-name") + 1] == "{{$.pipeline_job_name}}"
    outputs = compiled["components"]["comp-register-component"]["outputDefinitions"]
    assert outputs["artifacts"]["vertex_model"]["artifactType"] == {
        "schemaTitle": "google.VertexModel", "schemaVersion": "0.0.1"}  # fmt: skip
    parameters = compiled["root"]["inputDefinitions"]["parameters"]
    assert parameters["gate_min_score"]["defaultValue"] == 0.5
    assert parameters["registry_model_name"]["defaultValue"] == "yoda-phi3"


def test_registration_is_retried_on_its_own(compiled: dict[str, Any]) -> None:
    """A transient Vertex AI error after the GPU work retries the register task alone; it is
    idempotent (tests/registry/test_register.py), so a retry adds no second version."""
    inner = compiled["components"]["comp-condition-2"]["dag"]["tasks"]
    assert inner["register-component"]["retryPolicy"] == {
        "maxRetryCount": 3, "backoffDuration": "30s", "backoffFactor": 2.0,
        "backoffMaxDuration": "3600s"}  # fmt: skip


def test_inference_answers_with_the_base_model_too_unless_turned_off(
    compiled: dict[str, Any],
) -> None:
    component = compiled["components"]["comp-inference-component"]
    outputs = component["outputDefinitions"]["artifacts"]
    assert outputs["base_predictions"]["artifactType"]["schemaTitle"] == "system.Dataset"
    task = compiled["root"]["dag"]["tasks"]["inference-component"]
    assert task["inputs"]["parameters"]["with_base_model"] == {
        "componentInputParameter": "with_base_model"}  # fmt: skip
    parameters = compiled["root"]["inputDefinitions"]["parameters"]
    assert parameters["with_base_model"]["defaultValue"] is True


def test_gpu_tasks_are_retried_and_only_they(compiled: dict[str, Any]) -> None:
    tasks = compiled["root"]["dag"]["tasks"]
    for task in (tuning_task(compiled), tasks["inference-component"]):
        retry = task["retryPolicy"]
        assert retry["maxRetryCount"] == 2 and retry["backoffDuration"] == "60s"
    assert "retryPolicy" not in tasks["evaluation-component"]
    executor = compiled["deploymentSpec"]["executors"]["exec-inference-component"]["container"]
    assert "--merge-adapter" in executor["args"]


def test_inference_gets_a_gpu_the_model_and_the_test_split(compiled: dict[str, Any]) -> None:
    executor = compiled["deploymentSpec"]["executors"]["exec-inference-component"]["container"]
    assert executor["resources"]["accelerator"]["resourceType"] == "NVIDIA_TESLA_T4"
    assert executor["resources"]["resourceCpuLimit"] == "16"
    assert executor["command"] == ["yoda-inference"]
    inputs = compiled["root"]["dag"]["tasks"]["inference-component"]["inputs"]["artifacts"]
    assert inputs["model"]["taskOutputArtifact"] == {
        "outputArtifactKey": "model", "producerTask": "champion-component"}  # fmt: skip
    assert inputs["test_dataset"]["taskOutputArtifact"] == {
        "outputArtifactKey": "test", "producerTask": "data-transformation-component"}  # fmt: skip


def test_fine_tuning_gets_a_gpu_and_the_train_split(compiled: dict[str, Any]) -> None:
    executor = compiled["deploymentSpec"]["executors"]["exec-fine-tuning-component"]["container"]
    resources = executor["resources"]
    assert resources["accelerator"]["resourceType"] == "NVIDIA_TESLA_T4"
    assert resources["accelerator"]["resourceCount"] == "1"
    assert (resources["resourceCpuLimit"], resources["resourceMemoryLimit"]) == ("16", "50G")
    assert executor["command"] == ["yoda-fine-tuning"]
    task = tuning_task(compiled)
    inference = compiled["deploymentSpec"]["executors"]["exec-inference-component"]["container"]
    assert inference["resources"]["accelerator"]["resourceCount"] == "1"
    artifact = task["inputs"]["artifacts"]["train_dataset"]["componentInputArtifact"]
    loop = compiled["root"]["dag"]["tasks"]["for-loop-1"]["inputs"]["artifacts"][artifact]
    assert loop["taskOutputArtifact"] == {
        "outputArtifactKey": "train",
        "producerTask": "data-transformation-component",
    }
    outputs = compiled["components"]["comp-fine-tuning-component"]["outputDefinitions"]
    assert {name: a["artifactType"]["schemaTitle"] for name, a in outputs["artifacts"].items()} == {
        "model": "system.Model",
        "metrics": "system.Metrics",
    }


def test_accelerator_is_configurable(tmp_path: Path) -> None:
    settings = PipelineSettings(
        image_lock=write_lock(tmp_path), accelerator_type="NVIDIA_L4", memory_limit="32G"
    )
    spec = yaml.safe_load(compile_pipeline(settings, tmp_path / "p.yaml").read_text())
    resources = spec["deploymentSpec"]["executors"]["exec-fine-tuning-component"]["container"][
        "resources"
    ]
    assert resources["accelerator"]["resourceType"] == "NVIDIA_L4"
    assert resources["resourceMemoryLimit"] == "32G"


def test_parameters_and_defaults_come_from_settings(compiled: dict[str, Any]) -> None:
    params = compiled["root"]["inputDefinitions"]["parameters"]
    defaults = {name: p["defaultValue"] for name, p in params.items()}
    assert set(defaults) == set(PipelineSettings.PARAMETERS)
    assert defaults == {**PipelineSettings().parameter_values(),
                        "raw_data_uri": "gs://bucket/raw.csv", "test_fraction": 0.2}  # fmt: skip
    assert defaults["base_model"] == "microsoft/Phi-3-mini-4k-instruct"
    assert (defaults["quantization"], defaults["lora_r"], defaults["learning_rate"]) == (
        "4bit", 8, 3e-4)  # fmt: skip
    assert compiled["pipelineInfo"]["name"] == "yoda-phi3-finetuning"


def test_data_step_command_and_executor_input(compiled: dict[str, Any]) -> None:
    container = compiled["deploymentSpec"]["executors"]["exec-data-transformation-component"][
        "container"
    ]
    assert container["command"] == ["yoda-data-transformation"]
    args = container["args"]
    assert args[args.index("--executor-input") + 1] == "{{$}}"
    assert args[args.index("--train-output") + 1] == "{{$.outputs.artifacts['train'].path}}"
    outputs = compiled["components"]["comp-data-transformation-component"]["outputDefinitions"]
    assert {name: a["artifactType"]["schemaTitle"] for name, a in outputs["artifacts"].items()} == {
        "train": "system.Dataset",
        "test": "system.Dataset",
    }


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("europe-docker.pkg.dev/p/yoda/data:latest", "a digest, not a tag"),
        (f"europe-docker.pkg.dev/p/yoda/data:v1@{DIGEST}", "both a tag and a digest"),
        ("europe-docker.pkg.dev/p/yoda/data@sha256:abc", "a digest, not a tag"),
    ],
)
def test_compile_refuses_non_digest_images(tmp_path: Path, image: str, message: str) -> None:
    settings = PipelineSettings(image_lock=write_lock(tmp_path, data_transformation=image))
    with pytest.raises(ImageLockError, match=message):
        compile_pipeline(settings, tmp_path / "pipeline.yaml")
    assert not (tmp_path / "pipeline.yaml").exists()


def test_registry_port_is_not_a_tag(tmp_path: Path) -> None:
    lock = load_image_lock(
        write_lock(tmp_path, data_transformation=f"localhost:5000/yoda/data@{DIGEST}")
    )
    assert lock.image("data_transformation") == f"localhost:5000/yoda/data@{DIGEST}"


def test_lock_missing_step_or_file(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    path.write_text("{}")
    with pytest.raises(ImageLockError, match="no image for step"):
        load_image_lock(path)
    with pytest.raises(ImageLockError, match="not found: run `make build-images`"):
        load_image_lock(tmp_path / "absent.json")


def test_committed_local_lock_is_valid() -> None:
    assert set(load_image_lock(REPO_ROOT / LOCAL_IMAGE_LOCK).images) == set(STEPS)


def test_compile_cli_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["compile", "--image-lock", str(tmp_path / "absent.json"),
              "--output", str(tmp_path / "p.yaml")])  # fmt: skip
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: image lock")


def test_the_spec_parses_strictly_as_kfp_pipeline_spec(compiled: dict[str, Any]) -> None:
    """What Vertex AI Pipelines reads: every field of the compiled YAML is one of PipelineSpec's
    (the GPU count of fine-tuning a placeholder of its run-time parameter included)."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    json_format.ParseDict(compiled, pipeline_spec_pb2.PipelineSpec())


def test_fine_tuning_asks_for_as_many_gpus_as_ranks(tmp_path: Path) -> None:
    """accelerator_count=4: the fine-tuning task asks Vertex AI for 4 GPUs and starts 4 ranks
    (a compiled constant); inference keeps one GPU; the spec still parses strictly."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    settings = PipelineSettings(image_lock=LOCAL_IMAGE_LOCK, accelerator_count=4)
    spec = yaml.safe_load(compile_pipeline(settings, tmp_path / "p.yaml").read_text())
    executors = spec["deploymentSpec"]["executors"]
    tuning = executors["exec-fine-tuning-component"]["container"]["resources"]["accelerator"]
    assert (tuning["resourceType"], tuning["resourceCount"]) == ("NVIDIA_TESLA_T4", "4")
    inference = executors["exec-inference-component"]["container"]["resources"]["accelerator"]
    assert inference["resourceCount"] == "1"
    task = tuning_task(spec)["inputs"]["parameters"]
    assert task["accelerator_count"] == {"runtimeValue": {"constant": 4}}  # compiled in
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())


def test_compile_does_not_overwrite_what_is_not_a_pipeline(
    tmp_path: Path, one_error_line: Callable[..., str]
) -> None:
    from yoda_pipeline.cli import main

    readme = tmp_path / "README.md"
    readme.write_text("# my notes\n")
    lock = Path(__file__).resolve().parents[2] / "images" / "digests.local.json"
    line = one_error_line(main, "compile", "--image-lock", str(lock), "--output", str(readme))
    assert "exists and is not a compiled pipeline" in line
    assert readme.read_text() == "# my notes\n"
    assert "is a folder" in one_error_line(main, "compile", "--image-lock", str(lock),
                                           "--output", str(tmp_path))  # fmt: skip
