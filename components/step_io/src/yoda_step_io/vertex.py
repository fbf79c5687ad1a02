"""The Vertex AI client, set up for Google or for a local stand-in endpoint.

Needs ``google-cloud-aiplatform``, which the packages that talk to Vertex AI install (the
pipeline's submit and deploy commands, the registry steps); imported on use only.
"""

from __future__ import annotations

import os
from typing import Any

from yoda_step_io.cli import StepError

#: A Vertex AI API endpoint other than Google's (``http://127.0.0.1:…``: tests, a recording
#: proxy); ``YODA_VERTEX_API_ENDPOINT`` in the environment or ``.env``.
ENDPOINT_VARIABLE = "YODA_VERTEX_API_ENDPOINT"


def is_local(endpoint: str | None) -> bool:
    """A plain-HTTP endpoint: a stand-in on this machine, which needs no credentials."""
    return (endpoint or "").startswith("http://")


def init_vertex(project: str, location: str, endpoint: str | None = None) -> Any:
    """``aiplatform``, initialised for ``project`` and ``location``.

    ``endpoint`` (default ``$YODA_VERTEX_API_ENDPOINT``): a local one is reached over REST with
    anonymous credentials; Google's with the application-default credentials.

    Raises:
        StepError: no project or location, or no credentials for Google's endpoint.
    """
    import google.auth
    from google.auth.credentials import AnonymousCredentials, Credentials
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import aiplatform

    if not project or not location:
        raise StepError("no Google Cloud project or region: set YODA_PROJECT_ID and YODA_REGION")
    endpoint = endpoint or os.environ.get(ENDPOINT_VARIABLE) or None
    credentials: Credentials
    if is_local(endpoint):
        credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
    else:
        try:
            credentials, _ = google.auth.default()
        except DefaultCredentialsError as error:
            raise StepError(
                "no Google Cloud credentials: run `gcloud auth application-default login`"
            ) from error
    aiplatform.init(
        project=project,
        location=location,
        credentials=credentials,
        api_endpoint=endpoint,
        api_transport="rest" if endpoint else None,
    )
    return aiplatform
