"""Read the raw data set's bytes from a local path, ``gs://`` or ``hf://`` URI."""

from __future__ import annotations

import logging
from pathlib import Path

from yoda_step_io import StepError
from yoda_step_io.gcs import split_gs_uri, storage_client

logger = logging.getLogger(__name__)


def _read_gcs(uri: str) -> bytes:
    from google.api_core import exceptions

    bucket_name, key = split_gs_uri(uri)
    if not key:
        raise StepError(f"{uri!r} names a bucket, not a file: expected gs://BUCKET/path/file.csv")
    client = storage_client()
    try:
        return bytes(client.bucket(bucket_name).blob(key).download_as_bytes())
    except exceptions.NotFound as error:
        raise StepError(
            f"cannot read {uri}: no such bucket or object (check the bucket name and path)"
        ) from error
    except exceptions.GoogleAPICallError as error:
        raise StepError(f"cannot read {uri}: {error.message}") from error


def _read_hf(uri: str) -> bytes:
    """``hf://datasets/OWNER/NAME/FILE`` through the Hugging Face hub (needs a network)."""
    from huggingface_hub import HfFileSystem

    try:
        with HfFileSystem().open(uri, "rb") as handle:
            data: bytes = handle.read()
            return data
    except Exception as error:  # the hub raises many kinds: offline, 404, auth
        raise StepError(f"cannot read {uri} from the Hugging Face hub: {error}") from error


def read_bytes(uri: str) -> bytes:
    """Return the bytes behind ``uri`` (a local path, ``gs://…`` or ``hf://…``).

    Raises:
        StepError: the source does not exist or cannot be read.
    """
    if uri.startswith("gs://"):
        data = _read_gcs(uri)
    elif uri.startswith("hf://"):
        data = _read_hf(uri)
    elif "://" in uri:
        raise StepError(f"unsupported URI scheme in {uri!r}: use a local path, gs:// or hf://")
    else:
        path = Path(uri)
        if not path.is_file():
            raise StepError(f"raw data file {uri} does not exist (or is not a file)")
        try:
            data = path.read_bytes()
        except OSError as error:
            raise StepError(f"cannot read {uri}: {error.strerror}") from error
    logger.info("read %d bytes from %s", len(data), uri)
    return data
