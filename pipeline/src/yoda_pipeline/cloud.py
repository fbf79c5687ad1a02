"""Checks on the settings that a cloud submission needs, before any network call; the
`yoda-pipeline submit` command that makes them."""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

from yoda_pipeline.checks import gpu_warnings
from yoda_pipeline.images import ImageLockError, load_image_lock, loopback_images
from yoda_pipeline.settings import SMOLLM2, PipelineSettings
from yoda_step_io.gcs import GS_URI
from yoda_step_io.models import BASE_MODEL_FORMS, is_hub_id, is_local_path
from yoda_step_io.vertex import region_problem

logger = logging.getLogger(__name__)

_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
_SERVICE_ACCOUNT = re.compile(r"^[a-z0-9-]+@[a-z0-9.-]+\.gserviceaccount\.com$")
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
#: Vertex AI Pipelines' rule for a pipeline (and its runs') name.
_PIPELINE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")


class CloudSettingsError(ValueError):
    """Settings that cannot work on Vertex AI; the message names each variable to fix."""


def parse_labels(text: str) -> dict[str, str]:
    """``"team=ml,stage=dev"`` -> ``{"team": "ml", "stage": "dev"}`` (Vertex label rules).

    Raises:
        CloudSettingsError: a pair is not ``key=value`` or breaks the label rules.
    """
    labels: dict[str, str] = {}
    for pair in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = pair.partition("=")
        if not sep or not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
            raise CloudSettingsError(
                f"YODA_LABELS entry {pair!r}: expected key=value, lowercase letters, digits, "
                "_ and -, key starting with a letter, at most 63 characters each"
            )
        labels[key] = value
    return labels


def place_problems(settings: PipelineSettings) -> list[str]:
    """The project and the region: what every call to Vertex AI needs."""
    problems: list[str] = []
    if not _PROJECT.match(settings.project_id):
        problems.append(f"YODA_PROJECT_ID={settings.project_id!r} is not a project id")
    if not _REGION.match(settings.region):
        problems.append(f"YODA_REGION={settings.region!r} is not a region (e.g. europe-west4)")
    elif problem := region_problem(settings.region):
        problems.append(problem)
    return problems


def catalog_warnings(settings: PipelineSettings) -> list[str]:
    """What the GPU catalog copied here says against the pipeline's GPUs: warnings with their
    source, never a refusal (the region is the Vertex AI client's to check: its own list)."""
    return gpu_warnings(settings.accelerator_type, settings.accelerator_count)


def endpoint_problems(settings: PipelineSettings) -> list[str]:
    """What `make deploy`, `make ask-endpoint` and `make undeploy` need."""
    return place_problems(settings)  # the model's name is checked with every setting


def cloud_problems(settings: PipelineSettings) -> list[str]:
    """Everything that would make a Vertex AI submission fail, each naming its variable."""
    problems = place_problems(settings)
    if not _PIPELINE_NAME.match(settings.pipeline_name):
        problems.append(
            f"YODA_PIPELINE_NAME={settings.pipeline_name!r} is not a Vertex AI pipeline name: "
            "lowercase letters, digits and -, starting with a letter or digit, at most 128"
        )
    if not _BUCKET.match(settings.bucket):
        problems.append(f"YODA_BUCKET={settings.bucket!r} is not a bucket name (no gs://)")
    if settings.pipeline_root and not settings.pipeline_root.startswith("gs://"):
        problems.append(f"YODA_PIPELINE_ROOT={settings.pipeline_root!r} must be a gs:// URI")
    if settings.service_account and not _SERVICE_ACCOUNT.match(settings.service_account):
        problems.append(
            f"YODA_SERVICE_ACCOUNT={settings.service_account!r} is not a service account email"
        )
    if not settings.raw_data_uri.startswith(("gs://", "hf://")):
        problems.append(
            f"YODA_RAW_DATA_URI={settings.raw_data_uri!r} must be a gs:// (or hf://) URI: "
            "the data step runs in the cloud"
        )
    problems.extend(_model_problems(settings))
    try:
        parse_labels(settings.labels)
    except CloudSettingsError as error:
        problems.append(str(error))
    problems.extend(_lock_problems(settings.image_lock))
    return problems


def _model_problems(settings: PipelineSettings) -> list[str]:
    """The base model and the checkpoints: where the cloud tasks read and write them."""
    problems: list[str] = []
    base = settings.base_model
    if base == SMOLLM2:
        problems.append(
            f"YODA_BASE_MODEL={base!r} is the offline alias of a converted local folder: for "
            "Vertex AI, copy that folder to gs:// (make cache-base-model SOURCE=…) and pass its "
            "URI, or a hub id (HuggingFaceTB/SmolLM2-135M-Instruct)"
        )
    elif is_local_path(base) or Path(base).exists():
        problems.append(
            f"YODA_BASE_MODEL={base!r} is a local path: use {BASE_MODEL_FORMS} "
            "(its copy: make cache-base-model)"
        )
    elif not (is_hub_id(base) or GS_URI.match(base)):
        problems.append(f"YODA_BASE_MODEL={base!r}: expected {BASE_MODEL_FORMS}")
    if settings.checkpoint_dir and not settings.checkpoint_dir.startswith(("gs://", "/gcs/")):
        problems.append(
            f"YODA_CHECKPOINT_DIR={settings.checkpoint_dir!r}: a local folder of a cloud task is "
            "lost with it (and the retries resume from there): give gs://BUCKET/PATH or leave "
            "it empty"
        )
    return problems


def _lock_problems(path: Path) -> list[str]:
    """A lock Vertex AI can pull: digests, none on a loopback registry."""
    try:
        local = loopback_images(load_image_lock(path))
    except ImageLockError as error:
        return [f"YODA_IMAGE_LOCK: {error}"]
    if not local:
        return []
    return [
        f"YODA_IMAGE_LOCK={path} holds local images, on a loopback registry "
        f"({', '.join(sorted(set(local.values())))}) that Vertex AI cannot pull: run "
        "`make build-images` (Cloud Build) for a cloud lock"
    ]


def _refuse(problems: list[str]) -> None:
    if problems:
        raise CloudSettingsError("; ".join(problems))


def validate_for_cloud(settings: PipelineSettings) -> None:
    """Raise :class:`CloudSettingsError` listing every problem; say each catalog warning."""
    _refuse(cloud_problems(settings))
    for warning in catalog_warnings(settings):
        logger.warning("%s", warning)


def validate_for_endpoint(settings: PipelineSettings) -> None:
    """As :func:`validate_for_cloud`, for the endpoint commands."""
    _refuse(endpoint_problems(settings))


def pipeline_root(settings: PipelineSettings) -> str:
    return settings.pipeline_root or f"gs://{settings.bucket}/pipeline_root"


def submit_command(args: argparse.Namespace, settings: PipelineSettings) -> None:
    """submit (:mod:`yoda_pipeline.submit`, which imports kfp and the Vertex AI client): the
    run's console URL."""
    from yoda_pipeline.prices import run_price_line
    from yoda_pipeline.submit import submit_pipeline

    validate_for_cloud(settings)  # before the price: a refused run costs nothing
    print(run_price_line(settings))
    print(f"Submitted: {submit_pipeline(settings, args.output)}")
