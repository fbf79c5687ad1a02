"""`make cache-base-model`: the base model's files copied once into the bucket.

Every Vertex AI run would otherwise download Phi-3-mini (7.6 GB) from the Hugging Face hub twice,
once per GPU step. With ``YODA_BASE_MODEL=gs://BUCKET/models/…`` the steps read it through the
``/gcs`` mount instead (yoda_step_io.models), from the region the run is in, and a hub outage or a
changed ``main`` cannot touch a run.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from yoda_step_io import StepError
from yoda_step_io.gcs import split_gs_uri, storage_client

logger = logging.getLogger(__name__)

#: What a base model needs on the GPU steps: weights, configs, tokenizer (not the other formats
#: some hub repositories also carry).
PATTERNS = ("*.json", "*.safetensors", "*.model", "*.txt", "*.py", "*.jinja")


def default_destination(bucket: str, source: str) -> str:
    """``gs://BUCKET/models/microsoft--Phi-3-mini-4k-instruct`` for a hub id."""
    return f"gs://{bucket}/models/{source.strip('/').replace('/', '--')}"


def _fetch(source: str, folder: Path, revision: str | None) -> Path:
    """The model's files: a local folder as it is, a hub repository downloaded into ``folder``."""
    local = Path(source)
    if local.is_dir():
        return local
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return Path(snapshot_download(source, revision=revision, local_dir=folder,
                                      allow_patterns=list(PATTERNS)))  # fmt: skip
    except (HfHubHTTPError, OSError, ValueError) as error:
        raise StepError(f"cannot download {source} from the Hugging Face hub: {error}") from error


def cache_base_model(source: str, destination: str, revision: str | None = None) -> list[str]:
    """Copy the model at ``source`` (a hub id or a local folder) under ``destination``.

    Returns:
        The ``gs://`` URIs written.

    Raises:
        StepError: no such model, no ``config.json`` in it, or an unusable destination.
    """
    from google.api_core import exceptions

    bucket_name, prefix = split_gs_uri(destination)
    if not prefix.strip("/"):
        raise StepError(f"{destination}: give a folder in the bucket, e.g. gs://BUCKET/models/NAME")
    with tempfile.TemporaryDirectory(prefix="yoda-base-model-") as tmp:
        folder = _fetch(source, Path(tmp), revision)
        files = sorted(p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.parts)
        if not any(p.name == "config.json" for p in files):
            raise StepError(f"{source} holds no config.json: not a transformers model")
        bucket = storage_client().bucket(bucket_name)
        written = []
        try:
            for path in files:
                key = f"{prefix.strip('/')}/{path.relative_to(folder).as_posix()}"
                logger.info("uploading %s (%.1f MB)", key, path.stat().st_size / 2**20)
                bucket.blob(key).upload_from_filename(str(path))
                written.append(f"gs://{bucket_name}/{key}")
        except exceptions.NotFound as error:
            raise StepError(
                f"cannot write to {destination}: bucket {bucket_name} not found"
            ) from error
    return written
