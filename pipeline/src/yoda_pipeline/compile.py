"""Compile the pipeline to YAML against an image lock, and check the result."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import yaml
from kfp import compiler

from yoda_pipeline.checks import cross_step_problems
from yoda_pipeline.components import build_components
from yoda_pipeline.images import ImageLockError, check_image_reference, load_image_lock
from yoda_pipeline.pipeline import build_pipeline
from yoda_pipeline.preflight import PreflightError, check_tasks
from yoda_pipeline.settings import PipelineSettings
from yoda_step_io import StepError
from yoda_step_io.files import write_text_atomic

logger = logging.getLogger(__name__)


def spec_images(spec: dict[str, Any]) -> dict[str, str]:
    """Executor label -> container image, from a compiled pipeline spec."""
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    return {label: executor["container"]["image"] for label, executor in executors.items()}


def check_compile_output(output: Path) -> None:
    """Refuse to overwrite anything but an earlier compiled pipeline.

    Raises:
        StepError: ``output`` is a folder, or a file that is not a KFP pipeline spec.
    """
    if output.is_dir() or (output.exists() and not output.is_file()):
        raise StepError(f"--output {output} is a folder: give the path of the pipeline YAML")
    if output.is_file():
        try:
            spec = yaml.safe_load(output.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError):
            spec = None
        if not (isinstance(spec, dict) and "pipelineInfo" in spec):
            raise StepError(
                f"--output {output} exists and is not a compiled pipeline: it is left as it is; "
                "give another path"
            )


def compile_spec(settings: PipelineSettings) -> str:
    """``model_training_pipeline`` compiled with the images of ``settings.image_lock``, as YAML
    text, its images checked (nothing written).

    Raises:
        ImageLockError: the lock is missing or invalid, or the spec holds a non-digest image.
    """
    lock = load_image_lock(settings.image_lock)
    pipeline = build_pipeline(build_components(lock), settings)
    with tempfile.TemporaryDirectory(prefix="yoda-compile-") as folder:
        path = Path(folder) / "pipeline.yaml"
        compiler.Compiler().compile(pipeline_func=pipeline, package_path=str(path))
        text = path.read_text(encoding="utf-8")
    for label, image in spec_images(yaml.safe_load(text)).items():
        check_image_reference(label, image)
    return text


def compile_pipeline(settings: PipelineSettings, output: Path, *, here: bool = False) -> Path:
    """Compile ``model_training_pipeline`` to ``output`` with the images of
    ``settings.image_lock``, once every task's arguments passed their step's checks
    (:mod:`.preflight`; ``here``: the tasks run on this machine).

    Raises:
        ImageLockError: the lock is missing or invalid, or the spec holds a non-digest image.
        PreflightError: a value a step would refuse (nothing is written then).
        StepError: ``output`` is something else than an earlier compiled pipeline.
    """
    check_compile_output(output)
    text = compile_spec(settings)
    preflight(settings, yaml.safe_load(text), here=here)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(output, text)
    logger.info("compiled %s with images from %s", output, settings.image_lock)
    return output


def preflight(settings: PipelineSettings, spec: dict[str, Any], *, here: bool) -> None:
    """Every task's arguments through its step's own checks
    (:func:`~yoda_pipeline.preflight.check_tasks`), then the checks no step can make alone
    (:mod:`.checks`).

    Raises:
        PreflightError: one line naming the first setting refused.
    """
    shown = {name: getattr(settings, name) for name in settings.ROWS}
    checked = check_tasks(spec, settings.parameter_values(), shown, here=here)
    problems = cross_step_problems(settings.gate_metric, settings.evaluation_metrics)
    if problems:
        raise PreflightError("; ".join(problems))
    logger.info("pre-flight: the arguments of %d tasks pass their steps' checks", checked)


__all__ = ["ImageLockError", "PreflightError", "compile_pipeline", "spec_images"]
