"""Run a compiled pipeline on this machine with KFP's own local runners.

- ``SubprocessRunner`` (``make run-local``, no Docker) executes each task's command as a
  subprocess, but refuses container components and warns about non-Python images. Our container
  commands are console scripts installed in this project's environment, so :func:`host_commands`
  lifts those two checks for the duration of a run. That touches KFP's private
  ``subprocess_task_handler`` module: kfp is pinned (``pipeline/pyproject.toml``) and
  ``tests/e2e/test_local_run.py`` runs the whole pipeline through it.
- ``DockerRunner`` (``make run-docker``) runs each task in its image, pulled by digest; it
  bind-mounts only the pipeline root (at the same path), so whatever a container reads must lie
  under it (:data:`INPUTS_FOLDER`).
- Both runners evaluate the quality gate's ``dsl.If`` through :func:`task_output_conditions`.
"""

from __future__ import annotations

import builtins
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, Literal

from kfp import components, local
from kfp.local import subprocess_task_handler
from kfp.local.orchestrator import enhanced_dag_orchestrator

from yoda_pipeline.run_log import watched_output

logger = logging.getLogger(__name__)

#: The folder under a pipeline root that holds a run's local inputs (not an artifact).
INPUTS_FOLDER = "inputs"
Runner = Literal["subprocess", "docker"]


class _HostCommandTaskHandler(subprocess_task_handler.SubprocessTaskHandler):  # type: ignore[misc]
    """Runs a container component's command on the host instead of refusing it."""

    def validate_image(self, image: str) -> None:
        """The image is not pulled: the step's console script comes from this environment."""

    def validate_not_container_component(self, full_command: list[str]) -> None:
        """Container components are exactly what we run."""


@contextmanager
def host_commands() -> Iterator[None]:
    """Let KFP's subprocess runner execute container commands from this environment's ``bin``."""
    original_handler = subprocess_task_handler.SubprocessTaskHandler
    original_path = os.environ.get("PATH", "")
    subprocess_task_handler.SubprocessTaskHandler = _HostCommandTaskHandler
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), original_path])
    try:
        yield
    finally:
        subprocess_task_handler.SubprocessTaskHandler = original_handler
        os.environ["PATH"] = original_path


@contextmanager
def task_output_conditions() -> Iterator[None]:
    """Let KFP's local runner evaluate a ``dsl.If`` on any task output, as Vertex AI does.

    kfp 2.17's ``ConditionEvaluator`` finds a task's output only when it is named ``Output`` (a
    lightweight component's return value) or the channel holds ``--``; a container component's
    ``passed`` output (``pipelinechannel--gate-component-passed``) is then taken for a missing
    pipeline input and the condition for false. This tries ``<task>-<output>`` first. Private API
    like :func:`host_commands`: kfp is pinned and the tests run both outcomes of the gate.
    """
    evaluator = enhanced_dag_orchestrator.ConditionEvaluator
    original = evaluator._resolve_pipeline_channel

    def resolve(channel_ref: str, io_store: Any) -> Any:
        name = channel_ref.removeprefix("pipelinechannel--")
        for cut in (i for i, char in enumerate(name) if char == "-"):
            try:
                return io_store.get_task_output(name[:cut], name[cut + 1 :])
            except (KeyError, ValueError):
                continue
        return original(channel_ref, io_store)

    evaluator._resolve_pipeline_channel = staticmethod(resolve)
    try:
        yield
    finally:
        evaluator._resolve_pipeline_channel = staticmethod(original)


@contextmanager
def kept_print() -> Iterator[None]:
    """``print`` as it was before the run. KFP's local runner indents a task's output by
    replacing ``builtins.print`` for the task and putting back what it found; tasks run side by
    side (a sweep's loop) put back each other's indenting print, which would then stay."""
    original = builtins.print
    try:
        yield
    finally:
        builtins.print = original


def run_compiled_pipeline(
    pipeline_yaml: Path,
    arguments: dict[str, Any],
    pipeline_root: Path,
    *,
    runner: Runner = "subprocess",
    container_env: Mapping[str, str] | None = None,
) -> list[Path]:
    """Run ``pipeline_yaml`` locally under ``pipeline_root``, on the host or in the images.

    Args:
        container_env: environment of the containers (``runner="docker"`` only).

    Returns:
        Every output artifact file or directory the run wrote, sorted.

    Raises:
        StepFailedError: a task failed; the message names it and repeats its own reason.
    """
    pipeline_root.mkdir(parents=True, exist_ok=True)
    setting: AbstractContextManager[None]
    if runner == "docker":
        pipeline_root = pipeline_root.resolve()  # mounted at the same (absolute) path
        kfp_runner: Any = local.DockerRunner(environment=dict(container_env or {}))
        setting = nullcontext()
    else:
        kfp_runner = local.SubprocessRunner(use_venv=False)
        setting = host_commands()
    local.init(runner=kfp_runner, pipeline_root=str(pipeline_root), raise_on_error=True)
    pipeline = components.load_component_from_file(str(pipeline_yaml))
    with (
        setting,
        task_output_conditions(),
        warnings.catch_warnings(),
        watched_output() as log,
        kept_print(),
    ):
        # Vertex shows display names and applies resources; the local runner ignores both.
        warnings.filterwarnings("ignore", message=".*have no effect in the current local runner")
        try:
            pipeline(**arguments)
        except RuntimeError as error:
            raise log.explain(error) from error
    return list_artifacts(pipeline_root)


#: The folder of one iteration of a loop (a sweep's recipe) in a local run: it holds tasks.
LOOP_ITERATION = "for-loop-*"


def list_artifacts(pipeline_root: Path) -> list[Path]:
    """Output artifacts of a local run (``<root>/<run>/<task>/<output>``, and in a loop's
    iteration ``<root>/<run>/for-loop-…/<task>/<output>``), no bookkeeping."""
    found = [*pipeline_root.glob("*/*/*"), *pipeline_root.glob(f"*/{LOOP_ITERATION}/*/*")]
    return sorted(
        path
        for path in found
        if path.name != "executor_output.json"
        and not path.name.startswith(".")
        and not path.parent.match(LOOP_ITERATION)
        and path.relative_to(pipeline_root).parts[0] != INPUTS_FOLDER
    )
