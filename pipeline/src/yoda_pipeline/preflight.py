"""The pre-flight: before anything is compiled to disk or any task runs, every container task's
arguments are filled in as KFP's launcher fills them (KFP's own local placeholder code) and
run through that task's step: its parser and its ``check`` (:class:`yoda_step_io.Step`). A
value any step would refuse is refused here, in seconds, in one line naming its setting.

Steps are found by their console scripts, the command of each container; importing their
command lines imports no torch, transformers or ragas (those are the steps' ``run`` extras).
"""

from __future__ import annotations

import importlib
import itertools
import json
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from yoda_step_io import BadValueError, Step, StepError

#: ``{{$.inputs.parameters['name']}}``: a component's parameter input in its container's args.
INPUT_PARAMETER = re.compile(r"^\{\{\$\.inputs\.parameters\['([\w-]+)'\]\}\}$")


#: What a task input that another task gives stands in as, by its KFP type, before the run.
UNKNOWN: dict[str, Any] = {"STRING": "", "NUMBER_INTEGER": 0, "NUMBER_DOUBLE": 0.0,
                           "BOOLEAN": False, "LIST": [], "STRUCT": {}}  # fmt: skip


class PreflightError(ValueError):
    """A value a step would refuse, in one line naming its setting."""


@dataclass(frozen=True)
class Task:
    """A container task as it would run: its name, command, filled arguments, and for each
    flag fed by a pipeline parameter (or a compiled row), that parameter's name."""

    name: str
    command: str
    args: list[str]
    sources: dict[str, str]


@cache
def step_of(command: str) -> Step:
    """The :class:`~yoda_step_io.Step` of the console script ``command`` (its module's
    ``STEP``)."""
    (entry,) = metadata.entry_points(group="console_scripts", name=command)
    step: Step = importlib.import_module(entry.module).STEP
    return step


def _value(
    spec: Mapping[str, Any], values: Mapping[str, Any], origin: Mapping[str, str], outer: str
) -> tuple[Any, str | None]:
    """A task input's value and the root parameter (or compiled row) it comes from."""
    if "componentInputParameter" in spec:
        name = spec["componentInputParameter"]
        return values.get(name), origin.get(name)
    if "runtimeValue" in spec:
        return spec["runtimeValue"]["constant"], outer
    return None, None  # another task's output: not known before the run


def tasks(
    pipeline_spec: Mapping[str, Any], values: Mapping[str, Any], scratch: Path
) -> Iterator[Task]:
    """Every container task of ``pipeline_spec`` with the run parameters ``values``, its inputs
    and outputs placed under ``scratch`` (nothing is written there), sub-DAGs and loops
    included (one task per loop item)."""
    root = pipeline_spec["root"]
    yield from _dag_tasks(pipeline_spec, root["dag"], dict(values), {n: n for n in values}, scratch)


def _dag_tasks(
    spec: Mapping[str, Any],
    dag: Mapping[str, Any],
    values: dict[str, Any],
    origin: dict[str, str],
    scratch: Path,
) -> Iterator[Task]:
    for name, task in dag["tasks"].items():
        component = spec["components"][task["componentRef"]["name"]]
        given: dict[str, Any] = {}
        sources: dict[str, str] = {}
        declared = component.get("inputDefinitions", {}).get("parameters", {})
        for key, input_spec in task.get("inputs", {}).get("parameters", {}).items():
            given[key], source = _value(input_spec, values, origin, key)
            if given[key] is None:  # another task's output: an empty value of its type
                given[key] = UNKNOWN[declared.get(key, {}).get("parameterType", "STRING")]
            if source:
                sources[key] = source
        if "dag" in component:
            yield from _loop(spec, task, component["dag"], given, sources, scratch)
            continue
        yield _container_task(spec, name, component, given, sources, scratch / name)


def _loop(
    spec: Mapping[str, Any],
    task: Mapping[str, Any],
    dag: Mapping[str, Any],
    given: dict[str, Any],
    sources: dict[str, str],
    scratch: Path,
) -> Iterator[Task]:
    """A sub-DAG (a condition, or a loop: once per item of its list parameter)."""
    iterator = task.get("parameterIterator")
    if iterator is None:
        yield from _dag_tasks(spec, dag, given, sources, scratch)
        return
    items = given.get(iterator["items"]["inputParameter"])
    items = json.loads(items) if isinstance(items, str) else items
    item_name = iterator["itemInput"]
    for number, item in enumerate(items or []):
        each = {**given, item_name: item}
        origin = {**sources, item_name: sources.get(iterator["items"]["inputParameter"], "")}
        yield from _dag_tasks(spec, dag, each, origin, scratch / f"item-{number}")


def _container_task(
    spec: Mapping[str, Any],
    name: str,
    component: Mapping[str, Any],
    given: dict[str, Any],
    sources: dict[str, str],
    root: Path,
) -> Task:
    """One task's command line, filled as KFP's local launcher fills it."""
    from google.protobuf import json_format
    from kfp import dsl
    from kfp.local import executor_input_utils, placeholder_utils
    from kfp.pipeline_spec import pipeline_spec_pb2

    component_spec = json_format.ParseDict(component, pipeline_spec_pb2.ComponentSpec())
    arguments = dict(given)
    for artifact in component.get("inputDefinitions", {}).get("artifacts", {}):
        arguments[artifact] = dsl.Artifact(name=artifact, uri=str(root / "inputs" / artifact))
    executor_input = executor_input_utils.construct_executor_input(
        component_spec, arguments, str(root), block_input_artifact=False
    )
    executor_input_dict = executor_input_utils.executor_input_to_dict(
        executor_input, component_spec
    )
    container = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
    template = [*container["command"], *container.get("args", [])]
    argv = placeholder_utils.replace_placeholders(
        template, executor_input_dict, "preflight", name, str(root), "preflight"
    )
    flags = {
        flag: sources[match.group(1)]
        for flag, placeholder in itertools.pairwise(template)
        if (match := INPUT_PARAMETER.match(str(placeholder))) and match.group(1) in sources
    }
    return Task(name, argv[0], argv[1:], flags)


def check_tasks(
    pipeline_spec: Mapping[str, Any],
    values: Mapping[str, Any],
    shown: Mapping[str, Any],
    *,
    here: bool,
) -> int:
    """Run every task's arguments through its step's checks (``here``: the tasks run on this
    machine, so its files, mounts and cores count too); the number of tasks checked.

    Args:
        shown: each setting's value as the user gave it, for the error line.

    Raises:
        PreflightError: the first value a step refuses, naming ``YODA_X`` (``--set x=``).
    """
    from yoda_pipeline.settings import variable

    checked = 0
    with tempfile.TemporaryDirectory(prefix="yoda-preflight-") as scratch:
        for task in tasks(pipeline_spec, values, Path(scratch)):
            try:
                step_of(task.command).arguments(task.args, here=here)
            except BadValueError as error:
                source = task.sources.get(error.flag)
                if source is None:
                    raise PreflightError(f"{task.name}: {error}") from None
                where = f"{task.command} {error.flag}"
                raise PreflightError(
                    f"{variable(source, shown.get(source))}: {error.problem} ({where})"
                ) from None
            except StepError as error:
                raise PreflightError(f"{task.name}: {error}") from None
            checked += 1
    return checked
