"""Every setting in one pydantic-settings object, read when compiling or running, never on import.

Values come from the environment or a ``.env`` file (``YODA_`` prefix; see ``.env.example``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from yoda_step_io.vocabulary import (
    BASE_MODEL_FORMS,
    CHECKPOINT_SCHEMES,
    GPU_TYPES,
    METRIC_NAMES,
    RAW_DATA_SCHEMES,
    base_model_problem,
    is_local_path,
    lora_modules_problem,
    metric_names_problem,
    split_names,
    uri_problem,
)

#: The offline image lock: placeholder digests, valid in form, never pulled (the local runner
#: executes each step's command on the host). Cloud Build writes the real one.
LOCAL_IMAGE_LOCK = Path("images/digests.local.json")
CLOUD_IMAGE_LOCK = Path("images/digests.lock.json")
#: The lock of the images built and pushed to a registry on 127.0.0.1 by `make build-images-local`.
DOCKER_IMAGE_LOCK = Path("images/digests.docker.json")

#: Kubernetes quantities as KFP takes them: CPUs (16, 8.5, 500m) and memory (50G, 64Gi).
_CPU = re.compile(r"^(?:\d+(?:\.\d+)?|\d+m)$")
_MEMORY = re.compile(r"^\d+(?:[EPTGMK]i?)?$")
#: A Model Registry display name (the endpoint's too).
REGISTRY_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


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


def _one_of(allowed: tuple[str, ...], what: str) -> Callable[[str], str | None]:
    return lambda value: None if value in allowed else f"expected {what}: {', '.join(allowed)}"


#: setting -> why its value is refused (None: allowed); the pydantic types check the rest.
CHECKS: dict[str, Callable[[Any], str | None]] = {
    "raw_data_uri": lambda v: uri_problem(v, RAW_DATA_SCHEMES, file=True),
    "base_model": base_model_problem,
    "max_steps": lambda v: None if v == -1 or v > 0 else "expected -1 (use the epochs) or > 0",
    "checkpoint_dir": lambda v: uri_problem(v, CHECKPOINT_SCHEMES),
    "evaluation_metrics": metric_names_problem,
    "gate_metric": _one_of(METRIC_NAMES, "one of"),
    "registry_model_name": lambda v: (
        None if REGISTRY_NAME.match(v) else "expected letters, digits, _ and -, at most 100"
    ),
    "accelerator_type": _one_of(GPU_TYPES, "a Vertex AI GPU"),
    "cpu_limit": lambda v: (
        None if _CPU.match(v) and _nonzero(v) else "expected a CPU count like 16, 8.5 or 500m"
    ),
    "memory_limit": lambda v: (
        None if _MEMORY.match(v) and _nonzero(v) else "expected a memory size like 50G or 64Gi"
    ),
}


def _gate_metric_problem(value: str, others: Mapping[str, Any]) -> str | None:
    evaluated = split_names(str(others.get("evaluation_metrics", "")))
    if evaluated and value not in evaluated:
        return (
            f"not among YODA_EVALUATION_METRICS={','.join(evaluated)!r}: the gate needs its "
            "scores; add it there, or gate on one of those"
        )
    return None


#: setting -> why its value is refused given the settings declared before it (None: allowed).
CROSS_CHECKS: dict[str, Callable[[Any, Mapping[str, Any]], str | None]] = {
    "lora_target_modules": lambda v, others: lora_modules_problem(
        v, str(others.get("base_model", ""))
    ),
    "gate_metric": _gate_metric_problem,
}


class PipelineSettings(BaseSettings):
    """Pipeline settings; the defaults of the compiled pipeline's parameters come from here."""

    model_config = SettingsConfigDict(
        env_prefix="YODA_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    image_lock: Path = Field(CLOUD_IMAGE_LOCK, description="JSON file: step -> image@sha256")
    pipeline_name: str = "yoda-phi3-finetuning"
    raw_data_uri: str = Field("", description="raw CSV: local path, gs:// or hf:// URI")
    target_column: Literal["translation_extra", "translation"] = "translation_extra"
    test_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    split_seed: int = 42
    local_runs_dir: Path = Path("local_runs")
    tiny_model_dir: Path = Field(Path("build/tiny-phi3"), description="offline base model")
    smollm2_dir: Path = Field(
        Path("build/smollm2-135m-instruct"), description="base_model=smollm2: the converted folder"
    )

    # Fine-tuning: the article's recipe (components/fine_tuning/.../hyperparams.py holds the same
    # defaults; tests/test_fine_tuning_config.py checks that they agree).
    base_model: str = "microsoft/Phi-3-mini-4k-instruct"
    quantization: Literal["4bit", "auto", "none"] = "4bit"
    # auto: bfloat16 where the GPU has it, else float16; bfloat16 on a T4 is refused
    compute_dtype: Literal["auto", "float16", "bfloat16", "float32"] = "float16"
    lora_r: int = Field(8, gt=0)
    lora_alpha: int = Field(16, gt=0)
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    # auto: the base model's own (Phi-3: the article's o_proj,qkv_proj,gate_up_proj,down_proj)
    lora_target_modules: str = "auto"
    learning_rate: float = Field(3e-4, gt=0.0)
    num_train_epochs: float = Field(10.0, gt=0.0)
    max_steps: int = -1
    per_device_train_batch_size: int = Field(16, gt=0)
    max_seq_length: int = Field(64, gt=0)
    # recompute activations in the backward pass: less GPU memory, about a third more compute
    gradient_checkpointing: bool = True
    validation_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    training_seed: int = 42
    checkpoint_dir: str = Field("", description="empty: beside the model artifact")

    # Inference: greedy decoding by default; sampling knobs apply only with do_sample.
    inference_batch_size: int = Field(16, gt=0)
    max_new_tokens: int = Field(64, gt=0)
    do_sample: bool = False
    temperature: float = Field(1.0, gt=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    # The base model's answers too (the adapter switched off, one load): the report's baseline.
    with_base_model: bool = True
    # Fold the adapter into a full-precision base before generating (quantization none/auto on a
    # CPU; never into a 4-bit base). Off until GPU figures show it pays (make bench-gpu).
    merge_adapter: bool = False

    # Evaluation: comma-separated ragas metric names; empty = all (see yoda_evaluation.metrics).
    evaluation_metrics: str = ""

    # Quality gate: registration only when the fine-tuned model's mean on gate_metric beats the
    # base model's and the echo baseline's by these margins and reaches the floor.
    gate_metric: str = "rouge_l"
    gate_min_uplift_vs_base: float = Field(0.05, ge=-1.0, le=1.0)
    gate_min_uplift_vs_echo: float = Field(0.05, ge=-1.0, le=1.0)
    gate_min_score: float = Field(0.5, ge=0.0, le=1.0)
    registry_model_name: str = Field("yoda-phi3", description="Model Registry display name")

    # Google Cloud: checked by `validate_for_cloud()` before any submission or cloud call.
    project_id: str = Field("", description="Google Cloud project id")
    region: str = Field("", description="Vertex AI region with T4 quota, e.g. europe-west4")
    bucket: str = Field("", description="GCS bucket name (no gs://) for pipeline root and data")
    pipeline_root: str = Field("", description="default: gs://BUCKET/pipeline_root")
    artifact_repository: str = Field("yoda", description="Artifact Registry docker repository")
    service_account: str = Field("", description="runs the pipeline; default: compute SA")
    enable_caching: bool = True
    labels: str = Field("", description="k=v,k2=v2 labels of the PipelineJob")
    experiment: str = Field("", description="Vertex AI experiment to attach the run to")
    vertex_api_endpoint: str = Field("", description="Vertex API endpoint override")

    # Resources of the GPU tasks on Vertex AI (the local runner ignores them).
    accelerator_type: str = "NVIDIA_TESLA_T4"
    accelerator_count: int = Field(1, gt=0)
    cpu_limit: str = "16"
    memory_limit: str = "50G"
    gpu_task_retries: int = Field(2, ge=0, le=10, description="retries of a failed GPU task")

    #: the pipeline parameters, in the order the pipeline declares them
    PARAMETERS: ClassVar[tuple[str, ...]] = (
        "raw_data_uri",
        "target_column",
        "test_fraction",
        "split_seed",
        "base_model",
        "quantization",
        "compute_dtype",
        "lora_r",
        "lora_alpha",
        "lora_dropout",
        "lora_target_modules",
        "learning_rate",
        "num_train_epochs",
        "max_steps",
        "per_device_train_batch_size",
        "max_seq_length",
        "gradient_checkpointing",
        "validation_fraction",
        "training_seed",
        "checkpoint_dir",
        "inference_batch_size",
        "max_new_tokens",
        "do_sample",
        "temperature",
        "top_p",
        "with_base_model",
        "merge_adapter",
        "evaluation_metrics",
        "gate_metric",
        "gate_min_uplift_vs_base",
        "gate_min_uplift_vs_echo",
        "gate_min_score",
        "registry_model_name",
        "project_id",
        "region",
    )

    @field_validator(*CHECKS)
    @classmethod
    def _allowed(cls, value: Any, info: ValidationInfo) -> Any:
        problem = CHECKS[str(info.field_name)](value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator(*CROSS_CHECKS)
    @classmethod
    def _allowed_beside(cls, value: Any, info: ValidationInfo) -> Any:
        problem = CROSS_CHECKS[str(info.field_name)](value, info.data)
        if problem:
            raise ValueError(problem)
        return value

    def parameter_values(self) -> dict[str, Any]:
        """The pipeline's parameter values, by pipeline parameter name."""
        return {name: getattr(self, name) for name in self.PARAMETERS}


def variable(name: str, value: object) -> str:
    """``YODA_NAME='value'``, and ``(--set name=)`` where that flag takes it."""
    flag = f" (--set {name}=)" if name in PipelineSettings.PARAMETERS else ""
    return f"YODA_{name.upper()}={value!r}{flag}"


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


def local_problems(settings: PipelineSettings) -> list[str]:
    """What a run on this machine (run-local, run-docker) cannot use, each naming its variable."""
    from yoda_step_io.models import gcs_mount_path  # only here: it imports the storage client

    problems: list[str] = []
    base = settings.base_model
    if is_local_path(base) and not Path(base).is_dir():
        problems.append(
            f"{variable('base_model', base)}: no such folder; expected a model folder, "
            f"{BASE_MODEL_FORMS}"
        )
    checkpoints = settings.checkpoint_dir
    bucket = checkpoints.removeprefix("gs://").split("/", 1)[0]
    if checkpoints.startswith("gs://") and not gcs_mount_path(f"gs://{bucket}").is_dir():
        problems.append(
            f"{variable('checkpoint_dir', checkpoints)}: gs:// checkpoints are written through "
            "Vertex AI's Cloud Storage mount, which this machine lacks: give a local folder or "
            "leave it empty"
        )
    return problems
