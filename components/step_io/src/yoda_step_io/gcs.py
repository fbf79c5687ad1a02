"""The Cloud Storage client and ``gs://`` URIs.

The client honours ``STORAGE_EMULATOR_HOST`` (the tests point it at fake-gcs-server), in which case
it needs no credentials.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from yoda_step_io.cli import StepError
from yoda_step_io.files import outputs_in_place

if TYPE_CHECKING:
    from google.cloud.storage import Client as StorageClient

logger = logging.getLogger(__name__)

#: ``gs://BUCKET`` or ``gs://BUCKET/PATH`` (Cloud Storage bucket naming rules).
GS_URI = re.compile(r"^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/.*)?$")


def split_gs_uri(uri: str) -> tuple[str, str]:
    """``gs://bucket/some/key`` -> ``("bucket", "some/key")``.

    Raises:
        StepError: the URI is not a ``gs://`` URI with a bucket name.
    """
    if not uri.startswith("gs://"):
        raise StepError(f"{uri!r} is not a gs:// URI")
    bucket, _, key = uri[len("gs://") :].partition("/")
    if not bucket:
        raise StepError(f"{uri!r} has no bucket name: expected gs://BUCKET/PATH")
    return bucket, key


def read_location(location: str) -> bytes:
    """The bytes of a local file or a ``gs://`` object.

    Raises:
        FileNotFoundError: no such file, bucket or object.
        OSError: a local file that cannot be read.
    """
    if not location.startswith("gs://"):
        return Path(location).read_bytes()
    from google.api_core import exceptions

    bucket, key = split_gs_uri(location)
    try:
        return bytes(storage_client().bucket(bucket).blob(key).download_as_bytes())
    except exceptions.NotFound as error:
        raise FileNotFoundError(location) from error


def storage_client() -> StorageClient:
    """A storage client: anonymous against an emulator, default credentials otherwise."""
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud.storage import Client as StorageClient

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return StorageClient(project="emulator", credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    try:
        return StorageClient()
    except DefaultCredentialsError as error:
        raise StepError(
            "no Google Cloud credentials for gs:// access: run "
            "`gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS"
        ) from error


def safe_relative(name: str, prefix: str, target: Path) -> Path:
    """Where object ``name`` (under ``prefix``) goes inside ``target``.

    Raises:
        StepError: the name is absolute, has ``..``, ``.`` or empty parts, a backslash or a NUL,
            or resolves outside ``target`` (a symlink on the way): one line naming the object.
    """
    relative = name[len(prefix) :]
    parts = relative.split("/")
    root = target.resolve()
    unsafe = (
        any(part in ("", ".", "..") for part in parts)  # absolute names have an empty first part
        or "\\" in relative
        or "\0" in relative
    )
    resolved = root if unsafe else target.joinpath(*parts).resolve()
    if resolved == root or not resolved.is_relative_to(root):
        raise StepError(
            f"refusing object {name!r}: its name would write outside {target} (an absolute path, "
            "'..', '.' or an empty part): remove or rename it in the bucket"
        )
    return Path(*parts)


def download_prefix(
    uri: str,
    local_dir: Path,
    *,
    keep: Callable[[str], bool] = lambda _: True,
    owner: str | None = None,
) -> list[Path]:
    """Copy every object under the ``gs://`` directory ``uri`` into ``local_dir``.

    Relative paths are kept; ``keep(relative_path)`` filters. Every object's name is checked
    before anything is written (:func:`safe_relative`): nothing lands outside ``local_dir``.
    ``local_dir`` is written as an output (:func:`~yoda_step_io.files.outputs_in_place`: replaced
    only where this ``owner`` wrote it, removed again if the download fails).

    Returns:
        The local files written.

    Raises:
        StepError: no such bucket, no matching object under ``uri``, or an unsafe object name.
    """
    from google.api_core import exceptions

    bucket_name, key = split_gs_uri(uri)
    prefix = f"{key.rstrip('/')}/" if key.strip("/") else ""
    client = storage_client()
    try:
        blobs = [
            blob
            for blob in client.list_blobs(bucket_name, prefix=prefix)
            if not blob.name.endswith("/") and blob.name != prefix.rstrip("/")
        ]
    except exceptions.NotFound as error:
        raise StepError(f"cannot list {uri}: bucket {bucket_name} does not exist") from error
    planned = [(blob, safe_relative(blob.name, prefix, local_dir)) for blob in blobs]
    planned = [(blob, relative) for blob, relative in planned if keep(relative.as_posix())]
    if not planned:
        raise StepError(f"no files found under {uri}: check the URI (a directory prefix)")
    written: list[Path] = []
    with outputs_in_place(local_dir, owner=owner):
        local_dir.mkdir()
        for blob, relative in planned:
            target = local_dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(target))
            written.append(target)
    logger.info("downloaded %d file(s) from %s to %s", len(written), uri, local_dir)
    return written
