"""The wiring: every compiled container's arguments parse with its step's own CLI, every row of
the parameter table reaches its flags, every step flag is wired or declared fixed, and each
default in the table is the step's own."""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import re
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml

from yoda_pipeline.compile import compile_pipeline
from yoda_pipeline.parameters import FIXED, PARAMETERS, PipelineParameters
from yoda_pipeline.reference import parameters_page
from yoda_pipeline.settings import LOCAL_IMAGE_LOCK, PipelineSettings
from yoda_pipeline.signatures import routes

REPO_ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDER = re.compile(r"\{\{\$[^}]*\}\}")
INPUT_PARAMETER = re.compile(r"^\{\{\$\.inputs\.parameters\['(\w+)'\]\}\}$")


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    output = tmp_path_factory.mktemp("wiring") / "pipeline.yaml"
    # the defaults, whatever a developer's .env says
    compile_pipeline(PipelineSettings(image_lock=LOCAL_IMAGE_LOCK, _env_file=None), output)
    loaded: dict[str, Any] = yaml.safe_load(output.read_text(encoding="utf-8"))
    return loaded


def step_of(executor: str) -> str:
    """``exec-fine-tuning-component`` -> ``fine_tuning`` (a StepComponents field)."""
    return executor.removeprefix("exec-").removesuffix("-component").replace("-", "_")


def step_parser(command: str) -> argparse.ArgumentParser:
    """The ``build_parser()`` of the module behind the console script ``command``."""
    (entry,) = metadata.entry_points(group="console_scripts", name=command)
    parser: argparse.ArgumentParser = importlib.import_module(entry.module).build_parser()
    return parser


def launcher_text(definition: dict[str, Any]) -> str:
    """A parameter's default as KFP's launcher puts it on a command line: the spec keeps every
    number as a double, the launcher writes an integer parameter as an integer."""
    value, kind = definition["defaultValue"], definition["parameterType"]
    if kind == "NUMBER_INTEGER":
        return str(int(value))
    return value if isinstance(value, str) else json.dumps(value)


def resolve(arg: str, definitions: dict[str, Any], tmp: Path) -> str:
    """A placeholder as the launcher fills it: a parameter's default, an artifact's path."""
    parameter = INPUT_PARAMETER.match(arg)
    if parameter:
        return launcher_text(definitions[parameter.group(1)])
    if arg == "{{$}}":
        return "{}"
    if arg == "{{$.pipeline_job_name}}":
        return "job-123"
    if ".uri}}" in arg:
        return "gs://bucket/root/artifact"
    if PLACEHOLDER.fullmatch(arg):
        return str(tmp / re.sub(r"\W+", "_", arg).strip("_"))
    return arg


def wiring_problems(spec: dict[str, Any], tmp: Path) -> list[str]:
    """Every way the compiled spec and the steps' CLIs disagree, one line each."""
    definitions = spec["root"]["inputDefinitions"]["parameters"]
    problems = []
    wired: set[tuple[str, str, str]] = set()
    for label, executor in spec["deploymentSpec"]["executors"].items():
        step, (command,) = step_of(label), executor["container"]["command"]
        parser, args = step_parser(command), executor["container"]["args"]
        flags = [arg for arg in args if arg.startswith("--")]
        try:
            parsed = parser.parse_args([resolve(arg, definitions, tmp) for arg in args])
        except SystemExit:
            problems.append(f"{step}: its container args do not parse with {command}'s CLI")
            continue
        for flag, value in itertools.pairwise(args):
            parameter = INPUT_PARAMETER.match(str(value))
            if not (flag.startswith("--") and parameter):
                continue
            wired.add((parameter.group(1), step, flag))
            action = next(a for a in parser._actions if flag in a.option_strings)
            if not action.required and getattr(parsed, action.dest) != action.default:
                problems.append(
                    f"{step} {flag}: the table's default "
                    f"{launcher_text(definitions[parameter.group(1)])} is "
                    f"not the step's own {action.default!r}"
                )
        fixed = FIXED.get(step, {})  # type: ignore[call-overload]
        for action in parser._actions:
            flag = action.option_strings[0] if action.option_strings else ""
            if flag and flag not in ("-h", "--help") and flag not in flags and flag not in fixed:
                problems.append(f"{step} {flag}: neither wired nor declared fixed")
        problems += [f"{step} {flag}: declared fixed but wired" for flag in fixed if flag in flags]
    for name in PARAMETERS:
        if not routes(name):
            problems.append(f"{name}: goes to no step")
        for route in routes(name):
            if (name, route.step, route.flag) not in wired:
                problems.append(f"{name}: not passed to {route.step} {route.flag}")
    return problems


def test_the_compiled_pipeline_and_the_step_clis_agree(
    spec: dict[str, Any], tmp_path: Path
) -> None:
    assert wiring_problems(spec, tmp_path) == []


def test_the_pipeline_parameters_are_the_table(spec: dict[str, Any]) -> None:
    declared = spec["root"]["inputDefinitions"]["parameters"]
    assert list(PipelineParameters.model_fields) == list(PARAMETERS)
    assert set(declared) == set(PARAMETERS)
    for name in PARAMETERS:
        assert PipelineParameters.model_fields[name].description, f"{name}: no help"


def test_fixed_flags_exist_and_give_a_reason() -> None:
    for step, flags in FIXED.items():
        command = "yoda-" + step.replace("_", "-")
        options = {option for a in step_parser(command)._actions for option in a.option_strings}
        for flag, reason in flags.items():
            assert flag in options, f"{step} {flag}: no such flag"
            assert len(reason) > 20, f"{step} {flag}: say why it is fixed"


def _args(spec: dict[str, Any], label: str) -> list[str]:
    args: list[str] = spec["deploymentSpec"]["executors"][label]["container"]["args"]
    return args


@pytest.mark.parametrize(
    ("break_it", "problem"),
    [
        # a row whose flag the step does not know
        (lambda args: args.__setitem__(args.index("--lora-r"), "--lora-rank"),
         "fine_tuning: its container args do not parse"),
        # a row dropped from the component: the step flag is no longer wired
        (lambda args: args.__delitem__(slice(args.index("--optim"), args.index("--optim") + 2)),
         "fine_tuning --optim: neither wired nor declared fixed"),
        # a flag given the wrong parameter: its default is not the step's
        (lambda args: args.__setitem__(args.index("--lora-r") + 1,
                                       "{{$.inputs.parameters['lora_alpha']}}"),
         "fine_tuning --lora-r: the table's default 16 is not the step's own 8"),
    ],
)  # fmt: skip
def test_the_wiring_check_catches_a_broken_row(
    spec: dict[str, Any], tmp_path: Path, break_it: Any, problem: str
) -> None:
    broken = json.loads(json.dumps(spec))
    break_it(_args(broken, "exec-fine-tuning-component"))
    assert any(problem in line for line in wiring_problems(broken, tmp_path)), problem


def test_the_parameter_page_is_the_table() -> None:
    page = REPO_ROOT / "docs" / "parameters.md"
    assert page.read_text(encoding="utf-8") == parameters_page(), "run `make parameters-doc`"


def test_env_example_names_real_settings_and_every_other_setting() -> None:
    text = (REPO_ROOT / ".env.example").read_text(encoding="utf-8")
    named = set(re.findall(r"^#? ?YODA_(\w+)=", text, flags=re.MULTILINE))
    settings = {name.upper() for name in PipelineSettings.model_fields}
    make_only = {"BUILD_SERVICE_ACCOUNT"}  # read by cloud.mk's `make trigger`, not by Python
    assert named - settings - make_only == set()
    others = settings - {name.upper() for name in PARAMETERS}
    assert others - named == set(), "describe each setting that is not a parameter there"
