"""The Cloud Storage client and ``gs://`` URIs.

The client honours ``STORAGE_EMULATOR_HOST`` (the tests point it at fake-gcs-server), in which case
it needs no credentials.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from yoda_step_io.cli import StepError

if TYPE_CHECKING:
    from google.cloud import storage


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


def storage_client() -> storage.Client:
    """A storage client: anonymous against an emulator, default credentials otherwise."""
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project="emulator", credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    try:
        return storage.Client()
    except DefaultCredentialsError as error:
        raise StepError(
            "no Google Cloud credentials for gs:// access: run "
            "`gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS"
        ) from error
