"""Every setting in one pydantic-settings object, read when compiling or running, never on import.

Values come from the environment or a ``.env`` file (``YODA_`` prefix; see ``.env.example``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The offline image lock: placeholder digests, valid in form, never pulled (the local runner
#: executes each step's command on the host). Cloud Build writes the real one.
LOCAL_IMAGE_LOCK = Path("images/digests.local.json")
CLOUD_IMAGE_LOCK = Path("images/digests.lock.json")


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

    def parameter_values(self) -> dict[str, Any]:
        """The pipeline's parameter values, by pipeline parameter name."""
        return {
            "raw_data_uri": self.raw_data_uri,
            "target_column": self.target_column,
            "test_fraction": self.test_fraction,
            "split_seed": self.split_seed,
        }
