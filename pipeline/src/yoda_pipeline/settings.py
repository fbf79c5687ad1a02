"""Every setting in one pydantic-settings object, read when compiling or running, never on import.

Values come from the environment or a ``.env`` file (``YODA_`` prefix; see ``.env.example``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from yoda_pipeline.checks import allowed
from yoda_pipeline.parameters import PARAMETERS, ROWS, PipelineParameters

#: The offline image lock: placeholder digests, valid in form, never pulled (the local runner
#: executes each step's command on the host). Cloud Build writes the real one.
LOCAL_IMAGE_LOCK = Path("images/digests.local.json")
CLOUD_IMAGE_LOCK = Path("images/digests.lock.json")
#: The lock of the images built and pushed to a registry on 127.0.0.1 by `make build-images-local`.
DOCKER_IMAGE_LOCK = Path("images/digests.docker.json")

#: Kubernetes quantities as KFP takes them: CPUs (16, 8.5, 500m) and memory (50G, 64Gi).
_CPU = re.compile(r"^(?:\d+(?:\.\d+)?|\d+m)$")
_MEMORY = re.compile(r"^\d+(?:[EPTGMK]i?)?$")
_ACCELERATOR = re.compile(r"^[A-Z][A-Z0-9_]{1,63}$")


#: ``base_model=smollm2`` on this machine: the real small model, converted once into
#: ``smollm2_dir`` (yoda_pipeline.offline).
SMOLLM2 = "smollm2"


class SettingsError(ValueError):
    """A setting outside its allowed values; the one-line message names the variable."""


def sample_data_path() -> Path:
    """The small sample CSV shipped inside this package: the offline default raw data."""
    return Path(str(resources.files("yoda_pipeline") / "sample_data" / "yoda_sample.csv"))


def _nonzero(value: str) -> bool:
    return any(digit in "123456789" for digit in value.rstrip("EPTGMKim"))


#: setting -> why its value is refused (None: allowed); the parameters' own are in their table.
CHECKS: dict[str, Callable[[Any], str | None]] = {
    # its form only: a type Google adds is not refused here (checks.gpu_warnings warns)
    "accelerator_type": lambda v: (
        None if _ACCELERATOR.match(v) else "expected an accelerator type like NVIDIA_TESLA_T4"
    ),
    "cpu_limit": lambda v: (
        None if _CPU.match(v) and _nonzero(v) else "expected a CPU count like 16, 8.5 or 500m"
    ),
    "memory_limit": lambda v: (
        None if _MEMORY.match(v) and _nonzero(v) else "expected a memory size like 50G or 64Gi"
    ),
}


class PipelineSettings(PipelineParameters):
    """Every setting: the pipeline's parameters (their table) and how to compile, run and submit."""

    # no NaN or infinity: a KFP parameter is JSON, which has neither
    model_config = SettingsConfigDict(
        env_prefix="YODA_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        allow_inf_nan=False,
    )

    image_lock: Path = Field(CLOUD_IMAGE_LOCK, description="JSON file: step -> image@sha256")
    pipeline_name: str = "yoda-phi3-finetuning"
    local_runs_dir: Path = Path("local_runs")
    tiny_model_dir: Path = Field(Path("build/tiny-phi3"), description="offline base model")
    smollm2_dir: Path = Field(
        Path("build/smollm2-135m-instruct"), description="base_model=smollm2: the converted folder"
    )

    # Google Cloud: checked by `validate_for_cloud()` before any submission or cloud call.
    bucket: str = Field("", description="GCS bucket name (no gs://) for pipeline root and data")
    pipeline_root: str = Field("", description="default: gs://BUCKET/pipeline_root")
    artifact_repository: str = Field("yoda", description="Artifact Registry docker repository")
    service_account: str = Field("", description="runs the pipeline; default: compute SA")
    enable_caching: bool = True
    labels: str = Field("", description="k=v,k2=v2 labels of the PipelineJob")
    experiment: str = Field("", description="Vertex AI experiment to attach the run to")
    vertex_api_endpoint: str = Field("", description="Vertex API endpoint override")

    # Resources of the GPU tasks on Vertex AI (the local runner ignores them).
    # (the fine-tuning task's GPU count is a pipeline parameter, accelerator_count)
    accelerator_type: str = "NVIDIA_TESLA_T4"
    cpu_limit: str = "16"
    memory_limit: str = "50G"
    gpu_task_retries: int = Field(2, ge=0, le=10, description="retries of a failed GPU task")
    # A sweep's recipes fine-tuned at once: on Vertex AI each on its own GPUs (compiled in)
    sweep_parallelism: int = Field(4, ge=1, le=64, description="recipes fine-tuned at once")

    #: the pipeline's run parameters, in the order the pipeline declares them
    PARAMETERS: ClassVar[tuple[str, ...]] = PARAMETERS
    #: every row of the parameter table (the compiled ones too): what ``--set`` takes
    ROWS: ClassVar[tuple[str, ...]] = ROWS

    @field_validator(*CHECKS)
    @classmethod
    def _setting_allowed(cls, value: Any, info: ValidationInfo) -> Any:
        return allowed(CHECKS[str(info.field_name)](value), value)


def variable(name: str, value: object) -> str:
    """``YODA_NAME='value'``, and ``(--set name=)`` where that flag takes it."""
    flag = f" (--set {name}=)" if name in PipelineSettings.ROWS else ""
    shown = json.dumps(value) if isinstance(value, list | dict) else repr(value)
    return f"YODA_{name.upper()}={shown}{flag}"


def settings_error(error: ValidationError) -> SettingsError:
    """pydantic's report as one line: each bad value with its variable and what is allowed."""
    problems = []
    for detail in error.errors():
        message = str(detail["msg"]).removeprefix("Value error, ")
        message = message[:1].lower() + message[1:]
        if detail["loc"]:
            message = f"{variable(str(detail['loc'][0]), detail.get('input'))}: {message}"
        problems.append(message)
    return SettingsError("; ".join(problems))
