"""The offline runs: the embedded sample and a generated tiny Phi-3 by default, or the real small
model SmolLM2-135M-Instruct (``base_model=smollm2``) on the full data set; KFP's local runners.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import yaml

from yoda_pipeline.artifacts import run_output
from yoda_pipeline.compile import compile_pipeline, compile_spec, preflight
from yoda_pipeline.local_run import INPUTS_FOLDER, Runner, run_compiled_pipeline
from yoda_pipeline.parameters import PUBLIC_DATA
from yoda_pipeline.report import (
    EVALUATION_TASK,
    format_run_summary,
    gate_outcome,
    html_report,
    read_aggregates,
)
from yoda_pipeline.settings import SMOLLM2, PipelineSettings, sample_data_path
from yoda_step_io import StepError
from yoda_step_io.contract import EVALUATION_RESULTS

logger = logging.getLogger(__name__)

#: Host variables handed to the step containers of ``make run-docker``: some machines set
#: OpenBLAS's processor settings, and thread counts change floating-point sums.
CONTAINER_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def ensure_generated(directory: Path, module: str, what: str) -> Path:
    """The model folder ``directory``, made by ``python -m module directory`` (a generator of
    the fine-tuning package, which this package does not import) unless it is already there.

    Raises:
        StepError: the generator failed; its own one-line reason is passed on.
    """
    if not (directory / "config.json").is_file():
        logger.info("making %s in %s (once)", what, directory)
        command = [sys.executable, "-m", module, str(directory)]
        done = subprocess.run(command, stderr=subprocess.PIPE, text=True, check=False)
        if done.returncode:
            lines = done.stderr.strip().splitlines() or ["no message"]
            reason = next((ln for ln in reversed(lines) if ln.startswith("error: ")), lines[-1])
            raise StepError(
                f"could not make {what} in {directory}: {reason.removeprefix('error: ')}"
            )
    return directory.resolve()


def ensure_tiny_model(directory: Path) -> Path:
    """Generate the tiny Phi-3 model (``yoda-make-tiny-model``) unless it is already there."""
    return ensure_generated(directory, "yoda_devmodels.tiny_model", "the tiny Phi-3 model")


#: Its CPU recipe (docs/benchmarks.md, "SmolLM2-135M-Instruct on the CPU"), where the user set
#: nothing else; the pipeline's own defaults stay the Phi-3/T4 recipe of the article.
SMOLLM2_CPU_RECIPE: dict[str, object] = {
    # the champion of `make bench-sweep` (docs/benchmarks.md): the loss on the answers alone,
    # unpacked, 60 steps at 3e-3; test ROUGE-L 0.805 (0.750 for 30 packed steps at 2e-3)
    "max_steps": 60,
    "learning_rate": 3e-3,
    "per_device_train_batch_size": 16,
    "max_seq_length": 128,
    "packing": False,
    "completion_only_loss": True,
    "gradient_checkpointing": False,  # 8.6 s/step instead of 12.0 on 2 cores, the same scores
    "lora_r": 8,
    "lora_alpha": 16,
    "max_new_tokens": 32,
}
FULL_DATA_HINT = (
    f"base_model=smollm2 learns from the full data set: pass RAW_DATA={PUBLIC_DATA} (a "
    "network), or a local or gs:// copy of that CSV (the tests use "
    "RAW_DATA=../shared/data/yoda_sentences.csv)"
)


def ensure_smollm2(directory: Path) -> Path:
    """Convert SmolLM2-135M-Instruct (``yoda-make-smollm2``, about 30 s) unless it is there."""
    return ensure_generated(directory, "yoda_devmodels.smollm2", "SmolLM2-135M-Instruct")


def smollm2_settings(settings: PipelineSettings) -> dict[str, object]:
    """What ``base_model=smollm2`` changes: the converted folder, and the CPU recipe for what
    the user did not set.

    Raises:
        StepError: no raw data given (the embedded sample is too small to learn from).
    """
    if "raw_data_uri" not in settings.model_fields_set:
        raise StepError(FULL_DATA_HINT)
    explicit = settings.model_fields_set
    recipe = {name: value for name, value in SMOLLM2_CPU_RECIPE.items() if name not in explicit}
    return {"base_model": str(ensure_smollm2(settings.smollm2_dir)), **recipe}


def offline_settings(settings: PipelineSettings) -> PipelineSettings:
    """Fill in what an offline run needs, where the user did not set it themselves.

    - raw data: the embedded sample CSV (not the public data set on the hub);
    - base model: the tiny Phi-3 (no hub download), generated on first use; ``smollm2``: the
      real small model, converted on first use, with its CPU recipe (:func:`smollm2_settings`);
    - quantization: ``auto`` (4-bit only where CUDA exists; the step logs the fallback).
    """
    explicit = settings.model_fields_set
    updates: dict[str, object] = {}
    if settings.base_model == SMOLLM2:
        updates.update(smollm2_settings(settings))
    if "raw_data_uri" not in explicit:
        updates["raw_data_uri"] = str(sample_data_path())
    if "base_model" not in explicit:
        updates["base_model"] = str(ensure_tiny_model(settings.tiny_model_dir))
    if "quantization" not in explicit:
        updates["quantization"] = "auto"
    for name, value in updates.items():
        logger.info("offline run: %s = %s", name, value)
    return settings.model_copy(update=updates)


def stage_inputs(settings: PipelineSettings, inputs_dir: Path) -> PipelineSettings:
    """Copy the local raw CSV and base model under ``inputs_dir``, where containers can read them.

    KFP's ``DockerRunner`` mounts only the pipeline root; ``gs://``, ``hf://`` and hub ids are
    left as they are.
    """
    updates: dict[str, object] = {}
    raw = Path(settings.raw_data_uri)
    if "://" not in settings.raw_data_uri and raw.is_file():
        inputs_dir.mkdir(parents=True, exist_ok=True)
        updates["raw_data_uri"] = str(Path(shutil.copy2(raw, inputs_dir / raw.name)).resolve())
    base = Path(settings.base_model)
    if base.is_dir():
        target = inputs_dir / base.name
        shutil.copytree(base, target)
        updates["base_model"] = str(target.resolve())
    for name, value in updates.items():
        logger.info("docker run: %s = %s (copied under the mounted pipeline root)", name, value)
    return settings.model_copy(update=updates)


def _container_env() -> dict[str, str]:
    """The host settings that change numeric results, passed on so both runs compute alike."""
    return {name: os.environ[name] for name in CONTAINER_ENV if name in os.environ}


def run_local(settings: PipelineSettings, *, runner: Runner = "subprocess") -> Path:
    """Compile against ``settings.image_lock`` and run the pipeline in a fresh run folder.

    ``runner="docker"`` runs each step in its image (``make run-docker``) instead of this
    environment (``make run-local``).
    """
    settings = offline_settings(settings)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    run_dir = settings.local_runs_dir / f"run-{stamp}"
    if runner == "docker":
        preflight(settings, yaml.safe_load(compile_spec(settings)), here=True)  # before copying
        settings = stage_inputs(settings, run_dir / "outputs" / INPUTS_FOLDER)
    pipeline_yaml = compile_pipeline(settings, run_dir / "pipeline.yaml", here=True)
    logger.info("running %s on %s", pipeline_yaml, settings.raw_data_uri)
    artifacts = run_compiled_pipeline(
        pipeline_yaml,
        settings.parameter_values(),
        run_dir / "outputs",
        runner=runner,
        container_env=_container_env(),
    )
    where = "in the step images" if runner == "docker" else "in this environment"
    print(f"\nLocal run finished ({where}): {run_dir}")
    for artifact in artifacts:
        print(f"  {artifact.parent.name}/{artifact.name}: {artifact}")
    results = run_output(run_dir, EVALUATION_TASK, EVALUATION_RESULTS)
    aggregates = read_aggregates(str(results)) if results else None
    print(f"\n{format_run_summary(aggregates, html_report(run_dir), gate_outcome(run_dir))}")
    return run_dir
