"""The Vertex AI client, set up for Google or for a local stand-in endpoint.

Needs ``google-cloud-aiplatform``, which the packages that talk to Vertex AI install (the
pipeline's submit and deploy commands, the registry steps); imported on use only.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from yoda_step_io.cli import StepError

#: How long the API's host may take to accept a connection before a command gives up on it.
CONNECT_SECONDS = 10.0
#: A Vertex AI API endpoint other than Google's (``http://127.0.0.1:…``: tests, a recording
#: proxy); ``YODA_VERTEX_API_ENDPOINT`` in the environment or ``.env``.
ENDPOINT_VARIABLE = "YODA_VERTEX_API_ENDPOINT"


def is_local(endpoint: str | None) -> bool:
    """A plain-HTTP endpoint: a stand-in on this machine, which needs no credentials."""
    return (endpoint or "").startswith("http://")


def _where(endpoint: str | None) -> str:
    return f"{ENDPOINT_VARIABLE}={endpoint!r}" if endpoint else "Google's endpoint"


def check_reachable(endpoint: str | None, location: str) -> None:
    """One connection to the API's host, within :data:`CONNECT_SECONDS`: a dead or wrong host
    is one line at once, not minutes of the client's retries and tracebacks.

    Raises:
        StepError: the host does not take the connection; the line names the setting.
    """
    parts = urlsplit(endpoint if endpoint and "://" in endpoint else f"https://{endpoint or ''}")
    host = parts.hostname or f"{location}-aiplatform.googleapis.com"
    port = parts.port or (80 if parts.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=CONNECT_SECONDS).close()
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise StepError(
            f"cannot reach Vertex AI at {host}:{port} ({reason}) through {_where(endpoint)}: "
            "check that setting, YODA_REGION and the network"
        ) from None


@contextmanager
def vertex_errors(what: str, endpoint: str | None = None) -> Iterator[None]:
    """Any error of the Vertex AI client while ``what``, as one line naming the endpoint.

    Raises:
        StepError: the API refused or failed the call, or the connection broke.
    """
    import requests
    from google.api_core import exceptions
    from google.auth.exceptions import GoogleAuthError

    try:
        yield
    except exceptions.GoogleAPICallError as error:
        message = str(error.message).strip().splitlines()[0][:200] if error.message else ""
        raise StepError(
            f"{what}: Vertex AI answered {error.code} {message} ({_where(endpoint)})"
        ) from None
    except (exceptions.GoogleAPIError, requests.RequestException, GoogleAuthError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise StepError(f"{what}: {first} ({_where(endpoint)})") from None


def init_vertex(project: str, location: str, endpoint: str | None = None) -> Any:
    """``aiplatform``, initialised for ``project`` and ``location``.

    ``endpoint`` (default ``$YODA_VERTEX_API_ENDPOINT``): a local one is reached over REST with
    anonymous credentials; Google's with the application-default credentials.

    Raises:
        StepError: no project or location, no credentials for Google's endpoint (or a bad
            credentials file), or an endpoint that cannot be reached.
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
            named = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
            if named:
                first = (str(error).strip().splitlines() or [""])[0][:200]
                raise StepError(
                    f"GOOGLE_APPLICATION_CREDENTIALS={named!r} is not a credentials file "
                    f"Google accepts ({first}): point it at a service account key, or unset it"
                ) from None
            raise StepError(
                "no Google Cloud credentials: run `gcloud auth application-default login`"
            ) from error
    problem = region_problem(location)
    if problem:
        raise StepError(problem)
    check_reachable(endpoint, location)
    aiplatform.init(
        project=project,
        location=location,
        credentials=credentials,
        api_endpoint=endpoint,
        api_transport="rest" if endpoint else None,
    )
    return aiplatform


def region_problem(location: str) -> str | None:
    """Why ``location`` is not a region the Vertex AI client supports (its own list, which
    moves with its releases), naming YODA_REGION and the regions of that area; None if it is."""
    from google.cloud.aiplatform import version
    from google.cloud.aiplatform.constants.base import SUPPORTED_REGIONS

    if location in SUPPORTED_REGIONS:
        return None
    area = sorted(r for r in SUPPORTED_REGIONS if r.rsplit("-", 1)[0] == location.rsplit("-", 1)[0])
    return f"YODA_REGION={location!r} is not a Vertex AI region google-cloud-aiplatform " + (
        f"{version.__version__} knows" + (f" (in that area: {', '.join(area)})" if area else "")
    )
