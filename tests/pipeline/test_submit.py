"""`yoda-pipeline submit`: settings checked before any network call, and the real
google-cloud-aiplatform client's CreatePipelineJob request checked against a local endpoint."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_google_api import Recorded, fake_google_api
from google.cloud import aiplatform_v1
from google.protobuf import json_format

from yoda_pipeline.cli import main
from yoda_pipeline.cloud import CloudSettingsError, parse_labels, validate_for_cloud
from yoda_pipeline.images import STEPS
from yoda_pipeline.settings import PipelineSettings
from yoda_pipeline.submit import submit_pipeline

DIGEST = "sha256:" + "cd" * 32
REGISTRY = "europe-west4-docker.pkg.dev/yoda-project/yoda"
SWEEP = [{"learning_rate": 0.001}, {"learning_rate": 0.002, "lora_r": 16}]


def cloud_lock(tmp_path: Path) -> Path:
    path = tmp_path / "digests.lock.json"
    path.write_text(json.dumps({s: f"{REGISTRY}/{s.replace('_', '-')}@{DIGEST}" for s in STEPS}))
    return path


def cloud_settings(tmp_path: Path, **changes: Any) -> PipelineSettings:
    values: dict[str, Any] = {
        "project_id": "yoda-project",
        "region": "europe-west4",
        "bucket": "yoda-bucket",
        "service_account": "pipelines@yoda-project.iam.gserviceaccount.com",
        "raw_data_uri": "gs://yoda-bucket/data/yoda_sentences.csv",
        "image_lock": cloud_lock(tmp_path),
        "labels": "team=ml,stage=dev",
        "enable_caching": False,
        "lora_r": 16,
    }
    values.update(changes)
    return PipelineSettings(**values)


def test_submit_sends_the_expected_create_pipeline_job(tmp_path: Path) -> None:
    """The local-endpoint mode is self-contained: no stub, and nothing but the endpoint is asked
    (the SDK's bucket check would otherwise try Cloud Storage and retry for minutes offline)."""
    from google.cloud.aiplatform.utils import gcs_utils

    bucket_check = gcs_utils.create_gcs_bucket_for_pipeline_artifacts_if_it_does_not_exist

    def respond(request: Recorded) -> tuple[int, dict[str, Any]]:
        name = f"{request.path.removeprefix('/v1/')}/{request.query['pipelineJobId'][0]}"
        return 200, {"name": name, "displayName": request.body.get("displayName"),
                     "state": "PIPELINE_STATE_PENDING"}  # fmt: skip

    with fake_google_api(respond) as api:
        settings = cloud_settings(tmp_path, vertex_api_endpoint=api.url, sweep=SWEEP)
        url = submit_pipeline(settings, tmp_path / "pipeline.yaml")

    creates = [r for r in api.requests if r.method == "POST"]
    assert len(creates) == 1
    request = creates[0]
    assert request.path == "/v1/projects/yoda-project/locations/europe-west4/pipelineJobs"
    (job_id,) = request.query["pipelineJobId"]
    assert re.fullmatch(r"yoda-phi3-finetuning-\d{8}-\d{6}", job_id)
    body = request.body
    # strictly a PipelineJob: an unknown field would be a 400 on Google's side
    json_format.ParseDict(body, aiplatform_v1.PipelineJob.pb(aiplatform_v1.PipelineJob()))
    assert body["displayName"] == "yoda-phi3-finetuning"
    assert body["serviceAccount"] == "pipelines@yoda-project.iam.gserviceaccount.com"
    assert body["labels"]["team"] == "ml" and body["labels"]["stage"] == "dev"
    runtime = body["runtimeConfig"]
    assert runtime["gcsOutputDirectory"] == "gs://yoda-bucket/pipeline_root"
    values = runtime["parameterValues"]
    assert values["raw_data_uri"] == "gs://yoda-bucket/data/yoda_sentences.csv"
    assert values["lora_r"] == 16 and values["base_model"] == "microsoft/Phi-3-mini-4k-instruct"
    assert values["quantization"] == "4bit" and values["sweep"] == SWEEP
    spec = body["pipelineSpec"]
    executors = spec["deploymentSpec"]["executors"]
    images = {label: e["container"]["image"] for label, e in executors.items()}
    # eight tasks in five images: the report in the evaluation image, the champion, gate and
    # registration in the registry image
    assert len(images) == 8 and len(set(images.values())) == len(STEPS) == 5
    assert all(image.startswith(REGISTRY) and image.endswith(DIGEST) for image in images.values())
    for gpu_step in ("exec-fine-tuning-component", "exec-inference-component"):
        resources = executors[gpu_step]["container"]["resources"]
        assert resources["accelerator"]["resourceType"] == "NVIDIA_TESLA_T4"
        assert resources["resourceMemoryLimit"] == "50G"
    caching = {t["taskInfo"]["name"]: t.get("cachingOptions", {}).get("enableCache", False)
               for t in spec["root"]["dag"]["tasks"].values()}  # fmt: skip
    assert not any(caching.values())
    assert url == (
        "https://console.cloud.google.com/vertex-ai/locations/europe-west4/pipelines/runs/"
        f"{job_id}?project=yoda-project"
    )
    compiled = yaml.safe_load((tmp_path / "pipeline.yaml").read_text())
    assert compiled["pipelineInfo"]["name"] == "yoda-phi3-finetuning"
    # the SDK is as it was after the submission
    assert gcs_utils.create_gcs_bucket_for_pipeline_artifacts_if_it_does_not_exist is bucket_check


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        ({"project_id": ""}, "YODA_PROJECT_ID=''"),
        ({"project_id": "Yoda_Project"}, "YODA_PROJECT_ID='Yoda_Project' is not a project id"),
        ({"region": "europe"}, "YODA_REGION='europe' is not a region"),
        (
            {"region": "europe-west99"},
            "YODA_REGION='europe-west99' is not a Vertex AI region google-cloud-aiplatform ",
        ),
        (
            {"pipeline_name": "Yoda_Run"},
            "YODA_PIPELINE_NAME='Yoda_Run' is not a Vertex AI pipeline name",
        ),
        ({"bucket": "gs://yoda-bucket"}, "YODA_BUCKET='gs://yoda-bucket' is not a bucket name"),
        ({"pipeline_root": "/tmp/root"}, "YODA_PIPELINE_ROOT='/tmp/root' must be a gs:// URI"),
        ({"service_account": "me"}, "YODA_SERVICE_ACCOUNT='me' is not a service account email"),
        ({"raw_data_uri": "data/yoda.csv"}, "YODA_RAW_DATA_URI='data/yoda.csv' must be a gs://"),
        ({"base_model": "/models/tiny"}, "YODA_BASE_MODEL='/models/tiny' is a local path"),
        ({"labels": "Team=ML"}, "YODA_LABELS entry 'Team=ML'"),
        (
            {"image_lock": Path("images/digests.local.json")},
            "holds local images, on a loopback registry (localhost) that Vertex AI cannot pull",
        ),
        ({"checkpoint_dir": "/tmp/ck"}, "YODA_CHECKPOINT_DIR='/tmp/ck': a local folder of a cloud"),
        ({"base_model": "pipeline/src"}, "YODA_BASE_MODEL='pipeline/src' is a local path"),
        ({"base_model": "smollm2"}, "YODA_BASE_MODEL='smollm2' is the offline alias"),
        (
            {"image_lock": Path("/no/lock.json")},
            "YODA_IMAGE_LOCK: image lock /no/lock.json not found",
        ),
    ],
)
def test_bad_settings_are_refused_before_any_network_call(
    tmp_path: Path, changes: dict[str, Any], variable: str
) -> None:
    settings = cloud_settings(tmp_path, vertex_api_endpoint="http://127.0.0.1:9", **changes)
    with pytest.raises(CloudSettingsError) as error:
        submit_pipeline(settings, tmp_path / "pipeline.yaml")
    assert variable in str(error.value)
    assert not (tmp_path / "pipeline.yaml").exists()


def test_a_tag_in_the_lock_is_refused(tmp_path: Path) -> None:
    lock = json.loads(cloud_lock(tmp_path).read_text())
    lock["inference"] = f"{REGISTRY}/inference:latest"
    (tmp_path / "tagged.json").write_text(json.dumps(lock))
    with pytest.raises(CloudSettingsError, match="a digest, not a tag"):
        validate_for_cloud(cloud_settings(tmp_path, image_lock=tmp_path / "tagged.json"))


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    with pytest.raises(CloudSettingsError) as error:
        validate_for_cloud(cloud_settings(tmp_path, project_id="", region="", bucket=""))
    message = str(error.value)
    assert "YODA_PROJECT_ID" in message and "YODA_REGION" in message and "YODA_BUCKET" in message


def test_labels() -> None:
    assert parse_labels(" team=ml , stage=dev,") == {"team": "ml", "stage": "dev"}
    assert parse_labels("") == {}
    with pytest.raises(CloudSettingsError):
        parse_labels("novalue")


def test_cli_submit_error_is_one_line_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("YODA_REGION", "europe-west4")
    with pytest.raises(SystemExit) as exit_info:
        main(["submit", "--output", str(tmp_path / "p.yaml")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: YODA_PROJECT_ID='' is not a project id")
    assert "YODA_BUCKET" in err[0] and "YODA_REGION" not in err[0]


def test_the_price_per_hour_is_said_before_a_run() -> None:
    from yoda_pipeline.prices import run_price_line

    line = run_price_line(PipelineSettings(accelerator_count=2))
    assert "fine-tuning on 2 x NVIDIA_TESLA_T4, about 1.46 USD/hour" in line
    assert "inference on 1 x NVIDIA_TESLA_T4, about 1.11 USD/hour" in line
    # a sweep: every recipe is its own fine-tuning task
    assert "1.46 USD/hour each, 2 recipes;" in run_price_line(
        PipelineSettings(accelerator_count=2, sweep=SWEEP)
    )
    assert "no price on record" in run_price_line(
        PipelineSettings(accelerator_type="NVIDIA_H100_80GB")
    )


def test_the_documented_prices_are_the_ones_said_before_a_run() -> None:
    """docs/scaling.md shows the prices the submission says (prices.py)."""
    from yoda_pipeline.prices import USD_PER_HOUR

    root = Path(__file__).resolve().parents[2]
    scaling = (root / "docs" / "scaling.md").read_text(encoding="utf-8")
    short = {"NVIDIA_TESLA_T4": "T4", "NVIDIA_L4": "L4"}
    for (gpu, count), usd in USD_PER_HOUR.items():
        row = re.search(rf"^\| {count} {short[gpu]} \|.*= ([\d.]+) \|$", scaling, re.MULTILINE)
        assert row is not None and float(row.group(1)) == usd, (gpu, count)
