"""`yoda-pipeline check-gcp`: each missing piece of the Google Cloud set-up is named.

Bucket: the real storage client against fake-gcs-server. Service Usage and Artifact Registry:
a local HTTP server with their REST shapes (no local counterpart exists)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from fake_google_api import Recorded, fake_google_api, paged

from yoda_pipeline.gcp_check import (
    MAX_QUOTA_PAGES,
    REQUIRED_APIS,
    Endpoints,
    gpu_quota_metric,
    print_checks,
    run_checks,
)
from yoda_pipeline.settings import PipelineSettings

PROJECT, REGION = "yoda-project", "europe-west4"
T4_METRIC = "aiplatform.googleapis.com/custom_model_training_nvidia_t4_gpus"


def google_apis(
    disabled: set[str] = frozenset(),  # type: ignore[assignment]
    repository: dict[str, Any] | None = None,
    t4_limit: int = 1,
) -> Any:
    def respond(request: Recorded) -> tuple[int, dict[str, Any]]:
        path = request.path
        if path.startswith(f"/v1/projects/{PROJECT}/services/"):
            api = path.rsplit("/", 1)[-1]
            return 200, {"state": "DISABLED" if api in disabled else "ENABLED"}
        if path.endswith("/consumerQuotaMetrics"):
            if request.query.get("view") != ["BASIC"]:
                return 400, {"error": {"code": 400, "message": "view must be BASIC here"}}
            # two pages, as a project with many quotas gets them: the T4 quota only on the second
            buckets = [
                {"effectiveLimit": str(t4_limit), "dimensions": {"region": REGION}},
                {"effectiveLimit": "8", "dimensions": {"region": "us-central1"}},
            ]
            return paged(request, "metrics", [[
                {"metric": "aiplatform.googleapis.com/custom_model_training_nvidia_l4_gpus",
                 "consumerQuotaLimits": [{"quotaBuckets": [
                     {"effectiveLimit": "4", "dimensions": {"region": REGION}}]}]},
            ], [
                {"metric": T4_METRIC, "consumerQuotaLimits": [{"quotaBuckets": buckets}]},
            ]])  # fmt: skip
        if path.endswith("/repositories/yoda") and repository is not None:
            return 200, repository
        return 404, {"error": {"code": 404, "message": "not found"}}

    return fake_google_api(respond)


@pytest.fixture
def settings(gcs: Any) -> PipelineSettings:
    if gcs.lookup_bucket("yoda-check-bucket") is None:
        gcs.create_bucket("yoda-check-bucket", location=REGION)
    return PipelineSettings(project_id=PROJECT, region=REGION, bucket="yoda-check-bucket")


def run(settings: PipelineSettings, api_url: str) -> dict[str, tuple[bool, str]]:
    checks = run_checks(settings, endpoints=Endpoints(api_url, api_url), session=requests.Session())
    return {check.name: (check.ok, check.detail) for check in checks}


def test_everything_in_place(
    settings: PipelineSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    with google_apis(repository={"format": "DOCKER"}) as api:
        checks = run_checks(
            settings, endpoints=Endpoints(api.url, api.url), session=requests.Session()
        )
    assert all(check.ok for check in checks), checks
    assert [c.name for c in checks] == ["settings", "credentials", "APIs", "bucket",
                                        "Artifact Registry", "GPU quota"]  # fmt: skip
    assert print_checks(checks) == 0
    assert capsys.readouterr().out.rstrip().endswith("All set.")


def test_missing_pieces_are_named(settings: PipelineSettings) -> None:
    with google_apis(disabled={"aiplatform.googleapis.com"}, t4_limit=0) as api:
        results = run(settings.model_copy(update={"bucket": "no-such-bucket-here"}), api.url)
    ok, detail = results["APIs"]
    assert not ok and detail.endswith(": gcloud services enable aiplatform.googleapis.com")
    assert (
        not results["bucket"][0]
        and "gs://no-such-bucket-here does not exist" in results["bucket"][1]
    )
    assert not results["Artifact Registry"][0]
    assert "gcloud artifacts repositories create yoda" in results["Artifact Registry"][1]
    assert not results["GPU quota"][0]
    assert "NVIDIA_TESLA_T4 in europe-west4: limit 0, need 1" in results["GPU quota"][1]


def test_quota_follows_the_configured_accelerator(settings: PipelineSettings) -> None:
    l4 = settings.model_copy(update={"accelerator_type": "NVIDIA_L4", "accelerator_count": 2})
    with google_apis(repository={"format": "DOCKER"}) as api:
        assert run(l4, api.url)["GPU quota"] == (True, "NVIDIA_L4 in europe-west4: 4")
    assert gpu_quota_metric("NVIDIA_TESLA_T4") == "nvidia_t4"
    assert gpu_quota_metric("NVIDIA_H100_80GB") == "nvidia_h100"
    assert gpu_quota_metric("NVIDIA_A100_80GB") == "nvidia_a100_80gb"


def test_bad_settings_stop_before_any_call(tmp_path: Path) -> None:
    with google_apis() as api:
        results = run(PipelineSettings(project_id="", region=REGION, bucket="b"), api.url)
        assert api.requests == []
    assert list(results) == ["settings"]
    assert "YODA_PROJECT_ID=''" in results["settings"][1]
    assert "YODA_BUCKET='b'" in results["settings"][1]


def test_repository_of_the_wrong_format(settings: PipelineSettings) -> None:
    with google_apis(repository={"format": "MAVEN"}) as api:
        ok, detail = run(settings, api.url)["Artifact Registry"]
    assert not ok and detail.endswith("is MAVEN, not DOCKER")


def test_every_required_api_is_checked(settings: PipelineSettings) -> None:
    with google_apis(repository={"format": "DOCKER"}) as api:
        run(settings, api.url)
        asked = {r.path.rsplit("/", 1)[-1] for r in api.requests if "/services/" in r.path}
    assert set(REQUIRED_APIS) <= asked


def quota_requests(api: Any) -> list[dict[str, list[str]]]:
    return [r.query for r in api.requests if r.path.endswith("/consumerQuotaMetrics")]


def test_quota_on_the_second_page_is_found(settings: PipelineSettings) -> None:
    with google_apis(repository={"format": "DOCKER"}, t4_limit=2) as api:
        assert run(settings, api.url)["GPU quota"] == (True, "NVIDIA_TESLA_T4 in europe-west4: 2")
        asked = quota_requests(api)
    assert asked == [{"view": ["BASIC"]}, {"view": ["BASIC"], "pageToken": ["page-2"]}]


def test_a_server_that_never_stops_paging_is_cut_off(settings: PipelineSettings) -> None:
    def respond(request: Recorded) -> tuple[int, dict[str, Any]]:
        return 200, {"metrics": [], "nextPageToken": "again"}

    with fake_google_api(respond) as api:
        ok, detail = run(settings, api.url)["GPU quota"]
        asked = quota_requests(api)
    assert not ok and f"after {MAX_QUOTA_PAGES} pages" in detail, detail
    assert len(asked) == MAX_QUOTA_PAGES


def test_the_stand_in_refuses_an_unknown_page_token() -> None:
    with google_apis() as api:
        url = f"{api.url}/v1beta1/projects/{PROJECT}/services/aiplatform.googleapis.com"
        answer = requests.get(f"{url}/consumerQuotaMetrics?view=BASIC&pageToken=x", timeout=10)
    assert answer.status_code == 400
