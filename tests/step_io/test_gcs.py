"""gs:// with the real google-cloud-storage client and the GCS emulator (fake-gcs-server):
downloads stay inside their folder. Every object name under a ``gs://`` prefix is resolved under
the target before anything is written; a name that is absolute, has ``..``, ``.`` or empty parts,
or resolves outside is refused with one line naming the object."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from yoda_step_io import StepError
from yoda_step_io.gcs import download_prefix, safe_relative


@pytest.mark.parametrize(
    "evil",
    [
        "model//{outside}/escaped.txt",  # an absolute path after the prefix
        "model/../../../../../../../..{outside}/escaped.txt",
        "model/sub/../../{rel_outside}/escaped.txt",
        "model/./escaped.txt",
    ],
)
def test_an_object_that_would_land_outside_is_refused(
    bucket: Any, tmp_path: Path, evil: str
) -> None:
    outside = tmp_path / "outside"
    name = evil.format(outside=outside, rel_outside="../outside")
    bucket.blob("model/adapter_config.json").upload_from_string(b"{}")
    bucket.blob(name).upload_from_string(b"pwned")
    names = [blob.name for blob in bucket.list_blobs(prefix="model/")]
    assert name in names, f"the emulator renamed the object: {names}"
    target = tmp_path / "target" / "model"
    with pytest.raises(StepError, match="refusing object") as error:
        download_prefix(f"gs://{bucket.name}/model", target)
    assert repr(name) in str(error.value) and "\n" not in str(error.value)
    assert not target.exists(), "nothing is written before every name is checked"
    assert not list(tmp_path.rglob("escaped.txt"))


def test_a_symlink_in_the_target_cannot_lead_out(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / "link").symlink_to(tmp_path)
    with pytest.raises(StepError, match=re.escape("refusing object 'm/link/x'")):
        safe_relative("m/link/x", "m/", target)
    assert safe_relative("m/a/b.txt", "m/", target) == Path("a/b.txt")
