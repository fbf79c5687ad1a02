"""The offline default: the embedded sample, a generated tiny Phi-3, KFP's local runner."""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from yoda_pipeline.compile import compile_pipeline
from yoda_pipeline.local_run import run_compiled_pipeline
from yoda_pipeline.settings import PipelineSettings, sample_data_path

logger = logging.getLogger(__name__)


def ensure_tiny_model(directory: Path) -> Path:
    """Generate the tiny Phi-3 model (``yoda-make-tiny-model``) unless it is already there."""
    if not (directory / "config.json").is_file():
        logger.info("generating the tiny Phi-3 model in %s", directory)
        command = [sys.executable, "-m", "yoda_fine_tuning.tiny_model", str(directory)]
        subprocess.run(command, check=True)
    return directory.resolve()


def offline_settings(settings: PipelineSettings) -> PipelineSettings:
    """Fill in what an offline run needs, where the user did not set it themselves.

    - raw data: the embedded sample CSV;
    - base model: the tiny Phi-3 (no hub download), generated on first use;
    - quantization: ``auto`` (4-bit only where CUDA exists; the step logs the fallback).
    """
    explicit = settings.model_fields_set
    updates: dict[str, object] = {}
    if not settings.raw_data_uri:
        updates["raw_data_uri"] = str(sample_data_path())
    if "base_model" not in explicit:
        updates["base_model"] = str(ensure_tiny_model(settings.tiny_model_dir))
    if "quantization" not in explicit:
        updates["quantization"] = "auto"
    for name, value in updates.items():
        logger.info("offline run: %s = %s", name, value)
    return settings.model_copy(update=updates)


def run_local(settings: PipelineSettings) -> Path:
    """Compile against ``settings.image_lock`` and run the pipeline in a fresh run folder."""
    settings = offline_settings(settings)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    run_dir = settings.local_runs_dir / f"run-{stamp}"
    pipeline_yaml = compile_pipeline(settings, run_dir / "pipeline.yaml")
    logger.info("running %s on %s", pipeline_yaml, settings.raw_data_uri)
    artifacts = run_compiled_pipeline(
        pipeline_yaml, settings.parameter_values(), run_dir / "outputs"
    )
    print(f"\nLocal run finished: {run_dir}")
    for artifact in artifacts:
        print(f"  {artifact.parent.name}/{artifact.name}: {artifact}")
    return run_dir
