"""`yoda-pipeline submit` (yoda_pipeline.submit): the real google-cloud-aiplatform client's
CreatePipelineJob request, checked against a local endpoint. (The settings it checks first:
test_cloud.py; the price it says: test_prices.py.)"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from fake_google_api import Recorded, fake_google_api
from google.cloud import aiplatform_v1
from google.protobuf import json_format

from yoda_pipeline.images import STEPS, load_image_lock
from yoda_pipeline.settings import PipelineSettings
from yoda_pipeline.submit import submit_pipeline

SWEEP = [{"learning_rate": 0.001}, {"learning_rate": 0.002, "lora_r": 16}]


def test_submit_sends_the_expected_create_pipeline_job(
    tmp_path: Path, cloud_settings: Callable[..., PipelineSettings]
) -> None:
    """The local-endpoint mode is self-contained: no stub, and nothing but the endpoint is asked
    (the SDK's bucket check would otherwise try Cloud Storage and retry for minutes offline)."""
    from google.cloud.aiplatform.utils import gcs_utils

    bucket_check = gcs_utils.create_gcs_bucket_for_pipeline_artifacts_if_it_does_not_exist

    def respond(request: Recorded) -> tuple[int, dict[str, Any]]:
        name = f"{request.path.removeprefix('/v1/')}/{request.query['pipelineJobId'][0]}"
        return 200, {"name": name, "displayName": request.body.get("displayName"),
                     "state": "PIPELINE_STATE_PENDING"}  # fmt: skip

    with fake_google_api(respond) as api:
        settings = cloud_settings(
            vertex_api_endpoint=api.url, sweep=SWEEP, enable_caching=False, lora_r=16
        )
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
    assert set(images.values()) == set(load_image_lock(settings.image_lock).images.values())
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
