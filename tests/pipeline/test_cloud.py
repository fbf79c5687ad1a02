"""The settings a Vertex AI submission needs (yoda_pipeline.cloud): each one that cannot work is
refused before anything is compiled or any network call, all at once, each naming its variable;
`yoda-pipeline submit` says so in one line. A GPU the catalog copied here lacks only warns."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from yoda_pipeline.cli import main
from yoda_pipeline.cloud import (
    CloudSettingsError,
    catalog_warnings,
    parse_labels,
    validate_for_cloud,
)
from yoda_pipeline.images import STEPS
from yoda_pipeline.settings import LOCAL_IMAGE_LOCK, PipelineSettings
from yoda_pipeline.submit import submit_pipeline

Settings = Callable[..., PipelineSettings]


@pytest.fixture(autouse=True)
def _no_submission(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused setting must stop before Vertex AI is called: calling it is the failure here."""

    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("Vertex AI was called with settings that should have been refused")

    monkeypatch.setattr("yoda_pipeline.submit.init_vertex", refuse)


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"project_id": ""}, ["YODA_PROJECT_ID=''"]),
        ({"project_id": "Yoda_Project"}, ["YODA_PROJECT_ID='Yoda_Project'"]),
        ({"region": "europe"}, ["YODA_REGION='europe'", "not a region"]),
        ({"region": "europe-west99"}, ["YODA_REGION='europe-west99'", "not a Vertex AI region"]),
        ({"pipeline_name": "Yoda_Run"}, ["YODA_PIPELINE_NAME='Yoda_Run'"]),
        ({"bucket": "gs://yoda-bucket"}, ["YODA_BUCKET='gs://yoda-bucket'"]),
        ({"pipeline_root": "/tmp/root"}, ["YODA_PIPELINE_ROOT='/tmp/root'"]),
        ({"service_account": "me"}, ["YODA_SERVICE_ACCOUNT='me'"]),
        ({"raw_data_uri": "data/yoda.csv"}, ["YODA_RAW_DATA_URI='data/yoda.csv'"]),
        ({"base_model": "/models/tiny"}, ["YODA_BASE_MODEL='/models/tiny'", "local path"]),
        ({"base_model": "pipeline/src"}, ["YODA_BASE_MODEL='pipeline/src'", "local path"]),
        ({"base_model": "smollm2"}, ["YODA_BASE_MODEL='smollm2'", "offline alias"]),
        ({"labels": "Team=ML"}, ["YODA_LABELS", "'Team=ML'"]),
        ({"checkpoint_dir": "/tmp/ck"}, ["YODA_CHECKPOINT_DIR='/tmp/ck'"]),
        ({"image_lock": LOCAL_IMAGE_LOCK}, [f"YODA_IMAGE_LOCK={LOCAL_IMAGE_LOCK}", "(localhost)"]),
        ({"image_lock": Path("/no/lock.json")}, ["YODA_IMAGE_LOCK", "/no/lock.json not found"]),
    ],
)
def test_bad_settings_are_refused_before_any_network_call(
    tmp_path: Path, cloud_settings: Settings, changes: dict[str, Any], said: list[str]
) -> None:
    settings = cloud_settings(vertex_api_endpoint="http://127.0.0.1:9", **changes)
    with pytest.raises(CloudSettingsError) as error:
        submit_pipeline(settings, tmp_path / "pipeline.yaml")
    assert all(part in str(error.value) for part in said), str(error.value)
    assert not (tmp_path / "pipeline.yaml").exists()


def test_a_tag_in_the_lock_is_refused(
    tmp_path: Path, cloud_lock: Path, cloud_settings: Settings
) -> None:
    lock = json.loads(cloud_lock.read_text())
    lock["inference"] = lock["inference"].split("@")[0] + ":latest"
    (tmp_path / "tagged.json").write_text(json.dumps(lock))
    with pytest.raises(CloudSettingsError, match="a digest, not a tag") as error:
        validate_for_cloud(cloud_settings(image_lock=tmp_path / "tagged.json"))
    assert lock["inference"] in str(error.value)


def test_every_problem_is_listed_at_once(cloud_settings: Settings) -> None:
    with pytest.raises(CloudSettingsError) as error:
        validate_for_cloud(cloud_settings(project_id="", region="", bucket=""))
    message = str(error.value)
    assert "YODA_PROJECT_ID" in message and "YODA_REGION" in message and "YODA_BUCKET" in message


def test_labels() -> None:
    assert parse_labels(" team=ml , stage=dev,") == {"team": "ml", "stage": "dev"}
    assert parse_labels("") == {}
    with pytest.raises(CloudSettingsError):
        parse_labels("novalue")


@pytest.mark.parametrize(
    ("changes", "warned"),
    [
        ({"accelerator_type": "NVIDIA_TESLA_T99"}, ["YODA_ACCELERATOR_TYPE='NVIDIA_TESLA_T99'",
                                                    "GPU types", "https://"]),
        ({"accelerator_count": 8}, ["YODA_ACCELERATOR_COUNT=8 (--set accelerator_count=):",
                                    "1, 2, 4 of NVIDIA_TESLA_T4", "copied on", "https://"]),
    ],
)  # fmt: skip
def test_a_value_the_copied_catalogs_lack_is_a_warning_not_a_refusal(
    changes: dict[str, object], warned: list[str]
) -> None:
    """Google adds GPUs and shapes: the catalog copied here only warns, with its source and
    date; a clean setting warns of nothing."""
    base = {"region": "europe-west4", "accelerator_type": "NVIDIA_TESLA_T4"}
    (warning,) = catalog_warnings(PipelineSettings(**{**base, **changes}))
    assert warning.startswith(warned[0]) and all(part in warning for part in warned), warning
    assert catalog_warnings(PipelineSettings(**base)) == []


@pytest.mark.usefixtures("clean_env")
def test_cli_submit_error_is_one_line_naming_each_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, one_error_line: Callable[..., str]
) -> None:
    monkeypatch.setenv("YODA_REGION", "europe-west4")
    line = one_error_line(main, "submit", "--output", str(tmp_path / "p.yaml"), alone=True)
    assert line.startswith("error: YODA_PROJECT_ID='' ")
    assert "YODA_BUCKET=''" in line and "YODA_REGION" not in line
    assert not (tmp_path / "p.yaml").exists()


@pytest.mark.parametrize(
    ("name", "value"),
    [("base_model", "/models/phi3"), ("checkpoint_dir", "/tmp/checkpoints")],
)
@pytest.mark.usefixtures("cloud_env")
def test_submit_refuses_local_folders(
    tmp_path: Path, one_error_line: Callable[..., str], name: str, value: str
) -> None:
    output = tmp_path / "p.yaml"
    line = one_error_line(
        main, "submit", "--output", str(output), "--set", f"{name}={value}", alone=True
    )
    assert line.startswith(f"error: YODA_{name.upper()}={value!r}")
    assert not output.exists()


@pytest.mark.usefixtures("cloud_env")
def test_submit_refuses_a_lock_on_a_loopback_registry(
    tmp_path: Path, one_error_line: Callable[..., str]
) -> None:
    lock = tmp_path / "digests.docker.json"
    lock.write_text(json.dumps({step: f"127.0.0.1:5000/yoda/{step}@sha256:{'ab' * 32}"
                                for step in STEPS}))  # fmt: skip
    output = tmp_path / "pipeline.yaml"
    line = one_error_line(
        main, "submit", "--image-lock", str(lock), "--output", str(output), alone=True
    )
    assert line.startswith(f"error: YODA_IMAGE_LOCK={lock} ") and "(127.0.0.1:5000)" in line
    assert not output.exists()
