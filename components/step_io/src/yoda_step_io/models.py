"""Where a base model's files come from: a hub id, a local folder, or ``gs://`` (one copy per
bucket, made once by ``make cache-base-model``, instead of a hub download in every GPU step).

On Vertex AI a bucket is mounted under ``/gcs/<bucket>/…`` (Cloud Storage FUSE): a ``gs://``
model is read from there where the mount exists, else downloaded once into a local cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from yoda_step_io.gcs import download_prefix, split_gs_uri

logger = logging.getLogger(__name__)


def gcs_mount_path(uri: str) -> Path:
    """``gs://bucket/key`` -> ``/gcs/bucket/key`` (whether or not the mount exists); the mount
    point is Vertex AI's ``/gcs`` unless ``$YODA_GCS_MOUNT`` says otherwise."""
    bucket, key = split_gs_uri(uri)
    return Path(os.environ.get("YODA_GCS_MOUNT", "/gcs")) / bucket / key


def model_cache_dir() -> Path:
    """Where ``gs://`` models are downloaded when no mount exists (``$YODA_MODEL_CACHE``)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "yoda-phi3/models"
    return Path(os.environ.get("YODA_MODEL_CACHE", default))


def resolve_model(name_or_uri: str) -> str:
    """What ``from_pretrained`` should load: a hub id or folder as given; for ``gs://…`` the
    mounted folder, or a local copy (downloaded on first use, reused after).

    Raises:
        StepError: a ``gs://`` location holds no files (or its bucket does not exist).
    """
    if not name_or_uri.startswith("gs://"):
        return name_or_uri
    mounted = gcs_mount_path(name_or_uri)
    if (mounted / "config.json").is_file():
        logger.info("reading %s through the Cloud Storage FUSE mount %s", name_or_uri, mounted)
        return str(mounted)
    digest = hashlib.sha256(name_or_uri.rstrip("/").encode()).hexdigest()[:16]
    local = model_cache_dir() / digest
    complete = local / ".download-complete"  # a killed download is not mistaken for a copy
    if not complete.is_file():
        logger.info("downloading %s into %s (once)", name_or_uri, local)
        download_prefix(name_or_uri.rstrip("/"), local)
        complete.touch()
    return str(local)
