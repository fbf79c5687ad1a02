"""Compile the pipeline to YAML against an image lock, and check the result."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml
from kfp import compiler

from yoda_pipeline.components import build_components
from yoda_pipeline.images import ImageLockError, check_image_reference, load_image_lock
from yoda_pipeline.pipeline import build_pipeline
from yoda_pipeline.settings import PipelineSettings
from yoda_step_io import StepError

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


def compile_pipeline(settings: PipelineSettings, output: Path) -> Path:
    """Compile ``model_training_pipeline`` to ``output`` with the images of ``settings.image_lock``.

    Raises:
        ImageLockError: the lock is missing or invalid, or the spec holds a non-digest image.
        StepError: ``output`` is something else than an earlier compiled pipeline.
    """
    check_compile_output(output)
    lock = load_image_lock(settings.image_lock)
    pipeline = build_pipeline(build_components(lock), settings)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.with_name(f".{output.stem}.partial.yaml")
    try:
        compiler.Compiler().compile(pipeline_func=pipeline, package_path=str(staging))
        spec = yaml.safe_load(staging.read_text(encoding="utf-8"))
        for label, image in spec_images(spec).items():
            check_image_reference(label, image)
        staging.replace(output)
    finally:
        staging.unlink(missing_ok=True)
    logger.info("compiled %s with images from %s", output, settings.image_lock)
    return output


__all__ = ["ImageLockError", "compile_pipeline", "spec_images"]
