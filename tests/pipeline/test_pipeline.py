"""The pipeline's wiring (yoda_pipeline.pipeline), read from the compiled spec: each task's
display name, inputs, outputs, resources and retries, the sweep's loop and the gate's condition;
then every compiled container's arguments, filled as KFP's launcher fills them, parse and pass
their step's own checks; every row of the parameter table reaches its flags; every step flag is
wired or declared fixed; and each default in the table is the step's own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from yoda_pipeline.compile import compile_pipeline, compile_spec, spec_images
from yoda_pipeline.parameters import (
    FIXED,
    PARAMETERS,
    ROWS,
    PipelineParameters,
    is_compiled,
)
from yoda_pipeline.preflight import Task, step_of, tasks
from yoda_pipeline.settings import LOCAL_IMAGE_LOCK, PipelineSettings
from yoda_pipeline.signatures import routes


@pytest.fixture(scope="module")
def settings() -> PipelineSettings:
    return PipelineSettings(image_lock=LOCAL_IMAGE_LOCK, _env_file=None)  # the defaults


@pytest.fixture(scope="module")
def spec(settings: PipelineSettings) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(compile_spec(settings))
    return loaded


def test_tasks_have_display_names(spec: dict[str, Any]) -> None:
    tasks = spec["root"]["dag"]["tasks"]
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
    inner = spec["components"]["comp-condition-2"]["dag"]["tasks"]
    assert inner["register-component"]["taskInfo"]["name"] == "Register in Model Registry"
    recipe = tuning_task(spec)
    assert recipe["taskInfo"]["name"] == "Fine-tuning (QLoRA), one recipe"


def tuning_task(spec: dict[str, Any]) -> dict[str, Any]:
    """The fine-tuning task: one per recipe, in the sweep's loop."""
    task: dict[str, Any] = spec["components"]["comp-for-loop-1"]["dag"]["tasks"][
        "fine-tuning-component"
    ]
    return task


def test_the_sweep_fans_out_over_its_recipes_and_the_champion_gathers_them(
    spec: dict[str, Any],
) -> None:
    """A loop over the run parameter ``sweep`` (each item a recipe, to ``--recipe``); the
    champion gathers every recipe's outcome (``dsl.Collected``) and hands on its Model."""
    loop = spec["root"]["dag"]["tasks"]["for-loop-1"]
    assert loop["parameterIterator"]["items"] == {"inputParameter": "pipelinechannel--sweep"}
    assert loop["iteratorPolicy"] == {"parallelismLimit": 4}
    assert tuning_task(spec)["inputs"]["parameters"]["recipe"] == {
        "componentInputParameter": "pipelinechannel--sweep-loop-item"}  # fmt: skip
    root = spec["root"]["inputDefinitions"]["parameters"]["sweep"]
    assert (root["parameterType"], root["defaultValue"]) == ("LIST", [{}])
    champion = spec["root"]["dag"]["tasks"]["champion-component"]["inputs"]["parameters"]
    outcomes = champion["outcomes"]["taskOutputParameter"]
    assert outcomes == {"outputParameterKey": "pipelinechannel--fine-tuning-component-outcome",
                        "producerTask": "for-loop-1"}  # fmt: skip


def test_evaluation_scores_the_predictions_without_a_gpu(spec: dict[str, Any]) -> None:
    executor = spec["deploymentSpec"]["executors"]["exec-evaluation-component"]["container"]
    assert executor["command"] == ["yoda-evaluation"]
    assert "accelerator" not in executor.get("resources", {})
    inputs = spec["root"]["dag"]["tasks"]["evaluation-component"]["inputs"]["artifacts"]
    assert inputs["predictions"]["taskOutputArtifact"] == {
        "outputArtifactKey": "predictions", "producerTask": "inference-component"}  # fmt: skip
    assert inputs["base_predictions"]["taskOutputArtifact"] == {
        "outputArtifactKey": "base_predictions", "producerTask": "inference-component"}  # fmt: skip
    assert executor["args"][executor["args"].index("--base-predictions") + 1] == (
        "{{$.inputs.artifacts['base_predictions'].path}}"
    )
    outputs = spec["components"]["comp-evaluation-component"]["outputDefinitions"]
    assert {name: a["artifactType"]["schemaTitle"] for name, a in outputs["artifacts"].items()} == {
        "evaluation_results": "system.Dataset",
        "metrics": "system.Metrics",
    }


def test_report_renders_html_and_markdown_from_evaluation_and_training(
    spec: dict[str, Any],
) -> None:
    executor = spec["deploymentSpec"]["executors"]["exec-report-component"]["container"]
    assert executor["command"] == ["yoda-report"]
    assert executor["image"] == spec_images(spec)["exec-evaluation-component"]
    assert "accelerator" not in executor.get("resources", {})
    inputs = spec["root"]["dag"]["tasks"]["report-component"]["inputs"]["artifacts"]
    assert {name: (i["taskOutputArtifact"]["producerTask"], i["taskOutputArtifact"]
                   ["outputArtifactKey"]) for name, i in inputs.items()} == {
        "evaluation_results": ("evaluation-component", "evaluation_results"),
        "evaluation_metrics": ("evaluation-component", "metrics"),
        "training_metrics": ("champion-component", "metrics"),
        "model": ("champion-component", "model"),
    }  # fmt: skip
    outputs = spec["components"]["comp-report-component"]["outputDefinitions"]["artifacts"]
    assert {name: a["artifactType"]["schemaTitle"] for name, a in outputs.items()} == {
        "html": "system.HTML", "markdown": "system.Markdown"}  # fmt: skip


def test_registration_runs_only_when_the_gate_passes(spec: dict[str, Any]) -> None:
    condition = spec["root"]["dag"]["tasks"]["condition-2"]
    assert condition["triggerPolicy"]["condition"] == (
        "inputs.parameter_values['pipelinechannel--gate-component-passed'] == true"
    )
    gate = spec["components"]["comp-gate-component"]["outputDefinitions"]
    assert gate["parameters"]["passed"]["parameterType"] == "BOOLEAN"
    assert gate["artifacts"]["decision"]["artifactType"]["schemaTitle"] == "system.Metrics"
    images = spec_images(spec)
    assert images["exec-gate-component"] == images["exec-register-component"]
    register = spec["deploymentSpec"]["executors"]["exec-register-component"]["container"]
    args = register["args"]
    # the serving container is the inference image, by digest; the model its gs:// URI
    assert args[args.index("--serving-image") + 1] == images["exec-inference-component"]
    assert args[args.index("--model-uri") + 1] == "{{$.inputs.artifacts['model'].uri}}"
    assert args[args.index("--run-name") + 1] == "{{$.pipeline_job_name}}"
    outputs = spec["components"]["comp-register-component"]["outputDefinitions"]
    assert outputs["artifacts"]["vertex_model"]["artifactType"] == {
        "schemaTitle": "google.VertexModel", "schemaVersion": "0.0.1"}  # fmt: skip
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert parameters["gate_min_score"]["defaultValue"] == 0.5
    assert parameters["registry_model_name"]["defaultValue"] == "yoda-phi3"


def test_registration_is_retried_on_its_own(spec: dict[str, Any]) -> None:
    """A transient Vertex AI error after the GPU work retries the register task alone; it is
    idempotent (tests/registry/test_register.py), so a retry adds no second version."""
    inner = spec["components"]["comp-condition-2"]["dag"]["tasks"]
    assert inner["register-component"]["retryPolicy"] == {
        "maxRetryCount": 3, "backoffDuration": "30s", "backoffFactor": 2.0,
        "backoffMaxDuration": "3600s"}  # fmt: skip


def test_inference_answers_with_the_base_model_too_unless_turned_off(
    spec: dict[str, Any],
) -> None:
    component = spec["components"]["comp-inference-component"]
    outputs = component["outputDefinitions"]["artifacts"]
    assert outputs["base_predictions"]["artifactType"]["schemaTitle"] == "system.Dataset"
    task = spec["root"]["dag"]["tasks"]["inference-component"]
    assert task["inputs"]["parameters"]["with_base_model"] == {
        "componentInputParameter": "with_base_model"}  # fmt: skip
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert parameters["with_base_model"]["defaultValue"] is True


def test_gpu_tasks_are_retried_and_only_they(spec: dict[str, Any]) -> None:
    tasks = spec["root"]["dag"]["tasks"]
    for task in (tuning_task(spec), tasks["inference-component"]):
        retry = task["retryPolicy"]
        assert retry["maxRetryCount"] == 2 and retry["backoffDuration"] == "60s"
    assert "retryPolicy" not in tasks["evaluation-component"]
    executor = spec["deploymentSpec"]["executors"]["exec-inference-component"]["container"]
    assert "--merge-adapter" in executor["args"]


def test_inference_gets_a_gpu_the_model_and_the_test_split(spec: dict[str, Any]) -> None:
    executor = spec["deploymentSpec"]["executors"]["exec-inference-component"]["container"]
    assert executor["resources"]["accelerator"]["resourceType"] == "NVIDIA_TESLA_T4"
    assert executor["resources"]["resourceCpuLimit"] == "16"
    assert executor["command"] == ["yoda-inference"]
    inputs = spec["root"]["dag"]["tasks"]["inference-component"]["inputs"]["artifacts"]
    assert inputs["model"]["taskOutputArtifact"] == {
        "outputArtifactKey": "model", "producerTask": "champion-component"}  # fmt: skip
    assert inputs["test_dataset"]["taskOutputArtifact"] == {
        "outputArtifactKey": "test", "producerTask": "data-transformation-component"}  # fmt: skip


def test_fine_tuning_gets_a_gpu_and_the_train_split(spec: dict[str, Any]) -> None:
    executor = spec["deploymentSpec"]["executors"]["exec-fine-tuning-component"]["container"]
    resources = executor["resources"]
    assert resources["accelerator"]["resourceType"] == "NVIDIA_TESLA_T4"
    assert resources["accelerator"]["resourceCount"] == "1"
    assert (resources["resourceCpuLimit"], resources["resourceMemoryLimit"]) == ("16", "50G")
    assert executor["command"] == ["yoda-fine-tuning"]
    task = tuning_task(spec)
    inference = spec["deploymentSpec"]["executors"]["exec-inference-component"]["container"]
    assert inference["resources"]["accelerator"]["resourceCount"] == "1"
    artifact = task["inputs"]["artifacts"]["train_dataset"]["componentInputArtifact"]
    loop = spec["root"]["dag"]["tasks"]["for-loop-1"]["inputs"]["artifacts"][artifact]
    assert loop["taskOutputArtifact"] == {
        "outputArtifactKey": "train",
        "producerTask": "data-transformation-component",
    }
    outputs = spec["components"]["comp-fine-tuning-component"]["outputDefinitions"]
    assert {name: a["artifactType"]["schemaTitle"] for name, a in outputs["artifacts"].items()} == {
        "model": "system.Model",
        "metrics": "system.Metrics",
    }


def test_accelerator_is_configurable(tmp_path: Path) -> None:
    settings = PipelineSettings(
        image_lock=LOCAL_IMAGE_LOCK, accelerator_type="NVIDIA_L4", memory_limit="32G"
    )
    spec = yaml.safe_load(compile_pipeline(settings, tmp_path / "p.yaml").read_text())
    resources = spec["deploymentSpec"]["executors"]["exec-fine-tuning-component"]["container"][
        "resources"
    ]
    assert resources["accelerator"]["resourceType"] == "NVIDIA_L4"
    assert resources["resourceMemoryLimit"] == "32G"


def test_parameters_and_defaults_come_from_settings(tmp_path: Path) -> None:
    settings = PipelineSettings(
        image_lock=LOCAL_IMAGE_LOCK, raw_data_uri="gs://bucket/raw.csv", test_fraction=0.2
    )
    spec = yaml.safe_load(compile_pipeline(settings, tmp_path / "p.yaml").read_text())
    params = spec["root"]["inputDefinitions"]["parameters"]
    defaults = {name: p["defaultValue"] for name, p in params.items()}
    assert set(defaults) == set(PipelineSettings.PARAMETERS)
    assert defaults == {**PipelineSettings().parameter_values(),
                        "raw_data_uri": "gs://bucket/raw.csv", "test_fraction": 0.2}  # fmt: skip
    assert defaults["base_model"] == "microsoft/Phi-3-mini-4k-instruct"
    assert (defaults["quantization"], defaults["lora_r"], defaults["learning_rate"]) == (
        "4bit", 8, 3e-4)  # fmt: skip
    assert spec["pipelineInfo"]["name"] == "yoda-phi3-finetuning"


def test_data_step_command_and_executor_input(spec: dict[str, Any]) -> None:
    container = spec["deploymentSpec"]["executors"]["exec-data-transformation-component"][
        "container"
    ]
    assert container["command"] == ["yoda-data-transformation"]
    args = container["args"]
    assert args[args.index("--executor-input") + 1] == "{{$}}"
    assert args[args.index("--train-output") + 1] == "{{$.outputs.artifacts['train'].path}}"
    outputs = spec["components"]["comp-data-transformation-component"]["outputDefinitions"]
    assert {name: a["artifactType"]["schemaTitle"] for name, a in outputs["artifacts"].items()} == {
        "train": "system.Dataset",
        "test": "system.Dataset",
    }


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


def step_name(task: Task) -> str:
    """``yoda-fine-tuning`` -> ``fine_tuning`` (a StepComponents field)."""
    return task.command.removeprefix("yoda-").replace("-", "_")


def wiring_problems(spec: dict[str, Any], settings: PipelineSettings, tmp: Path) -> list[str]:
    """Every way the compiled spec and the steps' CLIs disagree, one line each."""
    problems = []
    wired: set[tuple[str, str, str]] = set()
    for task in tasks(spec, settings.parameter_values(), tmp):
        step, parser = step_name(task), step_of(task.command).parser()
        try:
            parsed = step_of(task.command).arguments(task.args, here=False)
        except Exception as error:
            problems.append(f"{step}: its container args do not pass its CLI: {error}")
            continue
        flags = [arg for arg in task.args if arg.startswith("--")]
        for flag, name in task.sources.items():
            wired.add((name, step, flag))
            action = next(a for a in parser._actions if flag in a.option_strings)
            default = action.default
            if isinstance(default, str) and callable(action.type):
                default = action.type(default)  # argparse parses a text default too
            places = [(route.step, route.flag) for route in routes(name)]
            if (step, flag) not in places:
                problems.append(f"{step} {flag}: given {name}, which the table sends elsewhere")
            owner = places[0] == (step, flag)  # the step whose default the table copies
            if owner and not action.required and getattr(parsed, action.dest) != default:
                problems.append(
                    f"{step} {flag}: the table's default {getattr(settings, name)!r} is not "
                    f"the step's own {action.default!r}"
                )
        fixed = FIXED.get(step, {})  # type: ignore[call-overload]
        for action in parser._actions:
            flag = action.option_strings[0] if action.option_strings else ""
            if flag and flag not in ("-h", "--help") and flag not in flags and flag not in fixed:
                problems.append(f"{step} {flag}: neither wired nor declared fixed")
        problems += [f"{step} {flag}: declared fixed but wired" for flag in fixed if flag in flags]
    for name in ROWS:
        if not routes(name):
            problems.append(f"{name}: goes to no step")
        for route in routes(name):
            if (name, route.step, route.flag) not in wired:
                problems.append(f"{name}: not passed to {route.step} {route.flag}")
    return problems


def test_the_compiled_pipeline_and_the_step_clis_agree(
    spec: dict[str, Any], settings: PipelineSettings, tmp_path: Path
) -> None:
    assert wiring_problems(spec, settings, tmp_path) == []


def test_the_pipeline_parameters_are_the_tables_run_parameters(spec: dict[str, Any]) -> None:
    declared = spec["root"]["inputDefinitions"]["parameters"]
    assert list(PipelineParameters.model_fields) == list(ROWS)
    assert set(declared) == set(PARAMETERS) == {n for n in ROWS if not is_compiled(n)}
    for name in ROWS:
        assert PipelineParameters.model_fields[name].description, f"{name}: no help"


def test_a_compiled_row_is_a_constant_of_its_task_not_a_run_parameter(
    spec: dict[str, Any],
) -> None:
    """accelerator_count: the GPU request is fixed when compiling, so the Vertex AI console
    does not offer it as a run parameter (a run-time value there would not change the GPUs)."""
    assert "accelerator_count" not in spec["root"]["inputDefinitions"]["parameters"]
    task = spec["components"]["comp-for-loop-1"]["dag"]["tasks"]["fine-tuning-component"]
    assert task["inputs"]["parameters"]["accelerator_count"] == {"runtimeValue": {"constant": 1}}
    resources = spec["deploymentSpec"]["executors"]["exec-fine-tuning-component"]["container"]
    assert resources["resources"]["accelerator"]["resourceCount"] == "1"


@pytest.mark.parametrize(
    ("break_it", "problem"),
    [
        # a row whose flag the step does not know
        (lambda args: args.__setitem__(args.index("--lora-r"), "--lora-rank"),
         "fine_tuning: its container args do not pass"),
        # a row dropped from the component: the step flag is no longer wired
        (lambda args: args.__delitem__(slice(args.index("--optim"), args.index("--optim") + 2)),
         "fine_tuning --optim: neither wired nor declared fixed"),
        # a flag given the wrong parameter: its default is not the step's
        (lambda args: args.__setitem__(args.index("--lora-r") + 1,
                                       "{{$.inputs.parameters['lora_alpha']}}"),
         "fine_tuning --lora-r: given lora_alpha, which the table sends elsewhere"),
    ],
)  # fmt: skip
def test_the_wiring_check_catches_a_broken_row(
    spec: dict[str, Any], settings: PipelineSettings, tmp_path: Path, break_it: Any, problem: str
) -> None:
    broken = json.loads(json.dumps(spec))
    break_it(
        broken["deploymentSpec"]["executors"]["exec-fine-tuning-component"]["container"]["args"]
    )
    assert any(problem in line for line in wiring_problems(broken, settings, tmp_path)), problem
