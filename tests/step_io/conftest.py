"""The step_io tests' shared fixture: an empty bucket in the GCS emulator."""

from __future__ import annotations

from typing import Any

import pytest

BUCKET = "yoda-traversal"


@pytest.fixture
def bucket(gcs: Any) -> Any:
    """The bucket ``yoda-traversal``, emptied."""
    if not gcs.bucket(BUCKET).exists():
        gcs.create_bucket(BUCKET)
    found = gcs.bucket(BUCKET)
    for blob in list(gcs.list_blobs(BUCKET)):
        blob.delete()
    return found
