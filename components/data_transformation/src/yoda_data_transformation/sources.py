"""Read the raw data set's bytes from a local path, ``gs://`` or ``hf://`` URI."""

from __future__ import annotations

import logging
from pathlib import Path

from yoda_step_io import BadValueError, StepError
from yoda_step_io.gcs import GS_URI, split_gs_uri, storage_client
from yoda_step_io.values import text

logger = logging.getLogger(__name__)

SCHEMES = ("gs://", "hf://")


def uri_problem(value: str) -> str | None:
    """Why ``value`` is neither a local path nor a ``gs://BUCKET/PATH/FILE`` or ``hf://…`` URI."""
    if "://" not in value:
        return None if value.strip() else "expected a local path, gs:// or hf:// URI"
    scheme = value.split("://", 1)[0] + "://"
    path = value.removeprefix(scheme).strip("/")
    if scheme not in SCHEMES:
        return f"unsupported scheme {scheme}: expected a local path or {', '.join(SCHEMES)}"
    if scheme == "gs://" and (not GS_URI.match(value) or "/" not in path):
        return "expected gs://BUCKET/PATH/FILE (a bucket name, a path)"
    return None if path else f"expected {scheme}… with a path after the scheme"


#: ``--raw-data-uri``: a local CSV, or one on Cloud Storage or the Hugging Face hub.
RAW_DATA = text("the raw CSV: a local path, gs://BUCKET/PATH/FILE or hf://…", uri_problem)


def check_local_source(uri: str) -> None:
    """A local raw CSV must exist (where the step runs).

    Raises:
        BadValueError: it does not, or is not a file.
    """
    if "://" not in uri and not Path(uri).is_file():
        raise BadValueError("--raw-data-uri", uri, "no such file")


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
    else:
        path = Path(uri)
        check_local_source(uri)
        try:
            data = path.read_bytes()
        except OSError as error:
            raise StepError(f"cannot read {uri}: {error.strerror}") from error
    logger.info("read %d bytes from %s", len(data), uri)
    return data
