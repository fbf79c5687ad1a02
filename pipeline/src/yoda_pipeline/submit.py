"""Submit the compiled pipeline to Vertex AI Pipelines as an ``aiplatform.PipelineJob``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from yoda_pipeline.cloud import parse_labels, pipeline_root, validate_for_cloud
from yoda_pipeline.compile import compile_pipeline
from yoda_pipeline.settings import PipelineSettings
from yoda_step_io.vertex import init_vertex, is_local, vertex_errors

logger = logging.getLogger(__name__)


def job_id(settings: PipelineSettings, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"{settings.pipeline_name}-{stamp}"[:128]


def console_url(settings: PipelineSettings, run_id: str) -> str:
    return (
        f"https://console.cloud.google.com/vertex-ai/locations/{settings.region}"
        f"/pipelines/runs/{run_id}?project={settings.project_id}"
    )


@contextmanager
def local_endpoint_only(endpoint: str | None) -> Iterator[None]:
    """With a local endpoint (``http://…``: tests, a recording proxy), keep the SDK off Google.

    ``PipelineJob.submit`` first gets or creates the pipeline root's bucket through Cloud Storage
    and the Resource Manager, which a local endpoint does not serve: in that mode the root is
    taken as it is. With Google's own endpoint nothing changes.
    """
    if not is_local(endpoint):
        yield
        return
    from google.cloud.aiplatform.utils import gcs_utils  # what PipelineJob.submit calls

    name = "create_gcs_bucket_for_pipeline_artifacts_if_it_does_not_exist"
    original = getattr(gcs_utils, name)

    def as_given(output_artifacts_gcs_dir: str | None = None, **_: object) -> str | None:
        return output_artifacts_gcs_dir

    setattr(gcs_utils, name, as_given)
    try:
        yield
    finally:
        setattr(gcs_utils, name, original)


def submit_pipeline(settings: PipelineSettings, template: Path) -> str:
    """Validate the settings, compile against the image lock, submit; return the console URL.

    Raises:
        CloudSettingsError: a setting cannot work on Vertex AI (raised before any network call).
        StepError: no credentials.
    """
    validate_for_cloud(settings)
    compile_pipeline(settings, template)

    endpoint = settings.vertex_api_endpoint or None
    aiplatform = init_vertex(settings.project_id, settings.region, endpoint)
    run_id = job_id(settings)
    job = aiplatform.PipelineJob(
        display_name=settings.pipeline_name,
        template_path=str(template),
        job_id=run_id,
        pipeline_root=pipeline_root(settings),
        parameter_values=settings.parameter_values(),
        enable_caching=settings.enable_caching,
        labels=parse_labels(settings.labels),
        project=settings.project_id,
        location=settings.region,
    )
    with local_endpoint_only(endpoint), vertex_errors("submitting the run", endpoint):
        job.submit(
            service_account=settings.service_account or None,
            experiment=settings.experiment or None,
        )
    url = console_url(settings, run_id)
    logger.info("submitted %s", run_id)
    return url
