"""Every setting in one pydantic-settings object, read when compiling or running, never on import.

Values come from the environment or a ``.env`` file (``YODA_`` prefix; see ``.env.example``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The offline image lock: placeholder digests, valid in form, never pulled (the local runner
#: executes each step's command on the host). Cloud Build writes the real one.
LOCAL_IMAGE_LOCK = Path("images/digests.local.json")
CLOUD_IMAGE_LOCK = Path("images/digests.lock.json")
#: The lock of the images built and pushed to a registry on 127.0.0.1 by `make build-images-local`.
DOCKER_IMAGE_LOCK = Path("images/digests.docker.json")


def sample_data_path() -> Path:
    """The small sample CSV shipped inside this package: the offline default raw data."""
    return Path(str(resources.files("yoda_pipeline") / "sample_data" / "yoda_sample.csv"))


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

    # Fine-tuning: the article's recipe (components/fine_tuning/.../hyperparams.py holds the same
    # defaults; tests/test_fine_tuning_config.py checks that they agree).
    base_model: str = "microsoft/Phi-3-mini-4k-instruct"
    quantization: Literal["4bit", "auto", "none"] = "4bit"
    # auto: bfloat16 where the GPU has it, else float16; bfloat16 on a T4 is refused
    compute_dtype: Literal["auto", "float16", "bfloat16", "float32"] = "float16"
    lora_r: int = Field(8, gt=0)
    lora_alpha: int = Field(16, gt=0)
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    lora_target_modules: str = "o_proj,qkv_proj,gate_up_proj,down_proj"
    learning_rate: float = Field(3e-4, gt=0.0)
    num_train_epochs: float = Field(10.0, gt=0.0)
    max_steps: int = -1
    per_device_train_batch_size: int = Field(16, gt=0)
    max_seq_length: int = Field(64, gt=0)
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
    gate_min_uplift_vs_base: float = 0.05
    gate_min_uplift_vs_echo: float = 0.05
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

    def parameter_values(self) -> dict[str, Any]:
        """The pipeline's parameter values, by pipeline parameter name."""
        return {name: getattr(self, name) for name in self.PARAMETERS}
