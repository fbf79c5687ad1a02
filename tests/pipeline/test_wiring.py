"""The wiring: every compiled container's arguments, filled as KFP's launcher fills them, parse
and pass their step's own checks; every row of the parameter table reaches its flags; every
step flag is wired or declared fixed; and each default in the table is the step's own."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from yoda_pipeline.compile import compile_spec
from yoda_pipeline.parameters import (
    FIXED,
    PARAMETERS,
    ROWS,
    PipelineParameters,
    is_compiled,
)
from yoda_pipeline.preflight import Task, step_of, tasks
from yoda_pipeline.reference import parameters_page
from yoda_pipeline.settings import LOCAL_IMAGE_LOCK, PipelineSettings
from yoda_pipeline.signatures import routes

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def settings() -> PipelineSettings:
    return PipelineSettings(image_lock=LOCAL_IMAGE_LOCK, _env_file=None)  # the defaults


@pytest.fixture(scope="module")
def spec(settings: PipelineSettings) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(compile_spec(settings))
    return loaded


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


def test_the_parameter_page_is_the_table() -> None:
    page = REPO_ROOT / "docs" / "parameters.md"
    assert page.read_text(encoding="utf-8") == parameters_page(), "run `make parameters-doc`"


def test_env_example_names_real_settings_and_every_other_setting() -> None:
    text = (REPO_ROOT / ".env.example").read_text(encoding="utf-8")
    named = set(re.findall(r"^#? ?YODA_(\w+)=", text, flags=re.MULTILINE))
    settings = {name.upper() for name in PipelineSettings.model_fields}
    make_only = {"BUILD_SERVICE_ACCOUNT"}  # read by cloud.mk's `make trigger`, not by Python
    assert named - settings - make_only == set()
    others = settings - {name.upper() for name in ROWS}
    assert others - named == set(), "describe each setting that is not a parameter there"
