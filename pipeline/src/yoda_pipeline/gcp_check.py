"""`yoda-pipeline check-gcp`: is the Google Cloud project ready for this pipeline?

Checks, each reported on its own line with what to do when it fails: the settings, credentials,
the APIs the pipeline needs, the bucket (and its region), the Artifact Registry repository, and
the Vertex AI custom-training quota for the chosen GPU in the chosen region.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from yoda_pipeline.cloud import cloud_problems
from yoda_pipeline.settings import PipelineSettings

logger = logging.getLogger(__name__)

REQUIRED_APIS = (
    "aiplatform.googleapis.com",
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "storage.googleapis.com",
)


@dataclass(frozen=True)
class Endpoints:
    """REST roots of the Google APIs the checks call (a test points them at a local server)."""

    service_usage: str = "https://serviceusage.googleapis.com"
    artifact_registry: str = "https://artifactregistry.googleapis.com"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _get(session: Any, url: str) -> tuple[int, dict[str, Any]]:
    response = session.get(url, timeout=30)
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        body = {}
    return int(response.status_code), body if isinstance(body, dict) else {}


def check_apis(session: Any, settings: PipelineSettings, endpoints: Endpoints) -> Check:
    disabled = []
    for api in REQUIRED_APIS:
        url = f"{endpoints.service_usage}/v1/projects/{settings.project_id}/services/{api}"
        status, body = _get(session, url)
        if status != 200 or body.get("state") != "ENABLED":
            disabled.append(api)
    if disabled:
        return Check("APIs", False, f"enable them: gcloud services enable {' '.join(disabled)}")
    return Check("APIs", True, ", ".join(REQUIRED_APIS))


def check_bucket(settings: PipelineSettings) -> Check:
    from google.api_core import exceptions

    from yoda_step_io.gcs import storage_client

    try:
        bucket = storage_client().lookup_bucket(settings.bucket)
    except exceptions.GoogleAPICallError as error:
        return Check("bucket", False, f"gs://{settings.bucket}: {error.message}")
    if bucket is None:
        return Check(
            "bucket",
            False,
            f"gs://{settings.bucket} does not exist: gcloud storage buckets create "
            f"gs://{settings.bucket} --location={settings.region}",
        )
    location = (bucket.location or "").lower()
    if location not in (settings.region, ""):
        return Check(
            "bucket", True, f"gs://{settings.bucket} is in {location}, not {settings.region}"
        )
    return Check("bucket", True, f"gs://{settings.bucket} ({location or 'location unknown'})")


def check_repository(session: Any, settings: PipelineSettings, endpoints: Endpoints) -> Check:
    name = (
        f"projects/{settings.project_id}/locations/{settings.region}"
        f"/repositories/{settings.artifact_repository}"
    )
    status, body = _get(session, f"{endpoints.artifact_registry}/v1/{name}")
    if status != 200:
        return Check(
            "Artifact Registry",
            False,
            f"{name} not found: gcloud artifacts repositories create "
            f"{settings.artifact_repository} --repository-format=docker "
            f"--location={settings.region}",
        )
    if body.get("format") != "DOCKER":
        return Check("Artifact Registry", False, f"{name} is {body.get('format')}, not DOCKER")
    return Check("Artifact Registry", True, name)


def gpu_quota_metric(accelerator_type: str) -> str:
    """``NVIDIA_TESLA_T4`` -> ``nvidia_t4``: the GPU's part of Vertex's quota metric names
    (``NVIDIA_H100_80GB``'s is ``nvidia_h100``, as Google's vertex-ai-samples
    notebook_util/common_util.py@1ab9e4b names it)."""
    return accelerator_type.lower().replace("tesla_", "").replace("h100_80gb", "h100")


#: Pages of quota metrics read at most: a server that always sends a next page cannot loop us.
MAX_QUOTA_PAGES = 100


def _quota_metrics(session: Any, url: str) -> list[dict[str, Any]] | str:
    """Every page of ``services.consumerQuotaMetrics.list`` (``metrics``, then ``nextPageToken`` as
    the next ``pageToken``; Service Usage v1beta1, googleapis/google-api-python-client@00fb49d8,
    googleapiclient/discovery_cache/documents/serviceusage.v1beta1.json), or what went wrong."""
    metrics: list[dict[str, Any]] = []
    token = ""
    for _ in range(MAX_QUOTA_PAGES):
        query = urlencode({"view": "BASIC", **({"pageToken": token} if token else {})})
        status, body = _get(session, f"{url}?{query}")
        if status != 200:
            return f"cannot read Vertex AI quotas (HTTP {status})"
        metrics += [m for m in body.get("metrics", []) if isinstance(m, dict)]
        token = str(body.get("nextPageToken") or "")
        if not token:
            return metrics
    return f"cannot read Vertex AI quotas: still a next page after {MAX_QUOTA_PAGES} pages"


def check_gpu_quota(session: Any, settings: PipelineSettings, endpoints: Endpoints) -> Check:
    """Vertex AI custom training quota for the accelerator in the region (Service Usage)."""
    gpu = gpu_quota_metric(settings.accelerator_type)
    url = (
        f"{endpoints.service_usage}/v1beta1/projects/{settings.project_id}"
        "/services/aiplatform.googleapis.com/consumerQuotaMetrics"
    )
    metrics = _quota_metrics(session, url)
    if isinstance(metrics, str):
        return Check("GPU quota", False, metrics)
    limit = 0
    for metric in metrics:
        name = str(metric.get("metric", ""))
        if not name.endswith(f"/custom_model_training_{gpu}_gpus"):  # not a100_80gb for a100
            continue
        for quota_limit in metric.get("consumerQuotaLimits", []):
            for bucket in quota_limit.get("quotaBuckets", []):
                if bucket.get("dimensions", {}).get("region") == settings.region:
                    limit = max(limit, int(bucket.get("effectiveLimit", 0)))
    needed = settings.accelerator_count
    if limit < needed:
        return Check(
            "GPU quota",
            False,
            f"custom training {settings.accelerator_type} in {settings.region}: limit {limit}, "
            f"need {needed}; request an increase (IAM & Admin > Quotas) or pick another region",
        )
    return Check("GPU quota", True, f"{settings.accelerator_type} in {settings.region}: {limit}")


def run_checks(
    settings: PipelineSettings,
    *,
    skip: set[str] | None = None,
    endpoints: Endpoints | None = None,
    session: Any = None,
) -> list[Check]:
    """Run every check (stopping early where later ones cannot mean anything)."""
    skip = skip or set()
    endpoints = endpoints or Endpoints()
    setting_problems = [
        p for p in cloud_problems(settings) if p.split("=")[0] in {
            "YODA_PROJECT_ID", "YODA_REGION", "YODA_BUCKET", "YODA_SERVICE_ACCOUNT"}
    ]  # fmt: skip
    checks = [Check("settings", not setting_problems, "; ".join(setting_problems) or "ok")]
    if setting_problems:
        return checks
    if session is None:
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError
        from google.auth.transport.requests import AuthorizedSession

        try:
            credentials, _ = google.auth.default()
        except DefaultCredentialsError:
            checks.append(
                Check("credentials", False, "run `gcloud auth application-default login`")
            )
            return checks
        session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
    checks.append(Check("credentials", True, "application default credentials found"))
    steps: dict[str, Callable[[], Check]] = {
        "apis": lambda: check_apis(session, settings, endpoints),
        "bucket": lambda: check_bucket(settings),
        "repository": lambda: check_repository(session, settings, endpoints),
        "quota": lambda: check_gpu_quota(session, settings, endpoints),
    }
    checks += [run() for name, run in steps.items() if name not in skip]
    return checks


def print_checks(checks: list[Check]) -> int:
    """Print one line per check; return the exit status (0 when all passed)."""
    for check in checks:
        print(f"[{'ok' if check.ok else 'MISSING'}] {check.name}: {check.detail}")
    failed = [check.name for check in checks if not check.ok]
    print("All set." if not failed else f"Fix: {', '.join(failed)}.")
    return 1 if failed else 0


def add_check_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--skip", action="append", default=[], help="a check to skip")


def check_gcp_command(args: argparse.Namespace, settings: PipelineSettings) -> int:
    """check-gcp: one line per check; exit status 1 when one failed."""
    return print_checks(run_checks(settings, skip=set(args.skip)))
