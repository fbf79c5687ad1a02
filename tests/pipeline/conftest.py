"""Fixtures of the pipeline package's tests: settings a Vertex AI submission accepts, given as
values or as the environment of an in-process `yoda-pipeline`."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from yoda_pipeline.images import STEPS
from yoda_pipeline.settings import PipelineSettings

REGISTRY = "europe-west4-docker.pkg.dev/yoda-project/yoda"
DIGEST = "sha256:" + "cd" * 32


@pytest.fixture
def cloud_lock(tmp_path: Path) -> Path:
    """An image lock of Artifact Registry images, by digest."""
    path = tmp_path / "digests.lock.json"
    path.write_text(json.dumps({s: f"{REGISTRY}/{s.replace('_', '-')}@{DIGEST}" for s in STEPS}))
    return path


@pytest.fixture
def cloud_settings(cloud_lock: Path) -> Callable[..., PipelineSettings]:
    """Settings a submission accepts, with ``changes``."""

    def make(**changes: Any) -> PipelineSettings:
        values: dict[str, Any] = {
            "project_id": "yoda-project",
            "region": "europe-west4",
            "bucket": "yoda-bucket",
            "service_account": "pipelines@yoda-project.iam.gserviceaccount.com",
            "raw_data_uri": "gs://yoda-bucket/data/yoda_sentences.csv",
            "image_lock": cloud_lock,
            "labels": "team=ml,stage=dev",
        }
        return PipelineSettings(**{**values, **changes})

    return make


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No .env (the working folder is tmp_path) and no YODA_ variable of the caller's."""
    monkeypatch.chdir(tmp_path)
    for name in [name for name in os.environ if name.startswith("YODA_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def cloud_env(clean_env: None, cloud_lock: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings a submission accepts, in the environment."""
    values = {
        "PROJECT_ID": "yoda-project",
        "REGION": "europe-west4",
        "BUCKET": "yoda-bucket",
        "RAW_DATA_URI": "gs://yoda-bucket/data/yoda.csv",
        "IMAGE_LOCK": str(cloud_lock),
    }
    for name, value in values.items():
        monkeypatch.setenv(f"YODA_{name}", value)
