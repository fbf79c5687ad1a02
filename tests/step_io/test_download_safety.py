"""Downloads stay inside their folder (issue 17): every object name under a ``gs://`` prefix is
resolved under the target before anything is written; a name that is absolute, has ``..``,
``.`` or empty parts, or resolves outside is refused with one line naming the object. Against
the real client and the GCS emulator, as yoda-serve, yoda-predict and the steps download. A
download killed half-way is not reused: the next one downloads it again, whole."""

from __future__ import annotations

import logging
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from local_servers import slow_link

from yoda_step_io import StepError
from yoda_step_io.gcs import download_prefix, safe_relative
from yoda_step_io.models import DOWNLOAD_COMPLETE, cached_copy

BUCKET = "yoda-traversal"


@pytest.fixture
def bucket(gcs: Any) -> Any:
    if not gcs.bucket(BUCKET).exists():
        gcs.create_bucket(BUCKET)
    found = gcs.bucket(BUCKET)
    for blob in list(gcs.list_blobs(BUCKET)):
        blob.delete()
    return found


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
        download_prefix(f"gs://{BUCKET}/model", target)
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


def test_the_model_caches_refuse_it_too(
    bucket: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """yoda-predict's and yoda-serve's cache (cached_copy) goes through the same check."""
    bucket.blob("run/model/adapter_config.json").upload_from_string(b"{}")
    bucket.blob("run/model//etc/escaped.txt").upload_from_string(b"pwned")
    with pytest.raises(StepError, match=re.escape("refusing object 'run/model//etc/escaped.txt'")):
        cached_copy(f"gs://{BUCKET}/run/model", tmp_path / "cache")
    assert not Path("/etc/escaped.txt").exists()
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*"))


def test_a_killed_download_is_downloaded_again(bucket: Any, tmp_path: Path) -> None:
    """The completion mark is written last: a half-written copy is never reused."""
    bucket.blob("m/adapter_config.json").upload_from_string(b"{}")
    bucket.blob("m/adapter_model.safetensors").upload_from_string(b"whole weights")
    copy = cached_copy(f"gs://{BUCKET}/m", tmp_path / "cache")
    assert (copy / "adapter_model.safetensors").read_bytes() == b"whole weights"
    # a download killed half-way: the weights cut short, no completion mark
    (copy / "adapter_model.safetensors").write_bytes(b"whole")
    (copy / ".download-complete").unlink()
    again = cached_copy(f"gs://{BUCKET}/m", tmp_path / "cache")
    assert again == copy and (copy / "adapter_model.safetensors").read_bytes() == b"whole weights"


#: A model folder as the fine-tuning step writes it, downloaded in this order (by name).
MODEL_FILES = {
    "adapter_config.json": b'{"base_model_name_or_path": "tiny"}',
    "adapter_model.safetensors": random.Random(19).randbytes(4 << 20),
    "tokenizer.json": random.Random(20).randbytes(1 << 20),
}
DOWNLOAD = (
    "import sys; from pathlib import Path; from yoda_step_io.models import cached_copy; "
    "cached_copy(sys.argv[1], Path(sys.argv[2]))"
)


def test_a_download_killed_half_way_is_downloaded_again(
    bucket: Any, gcs_emulator_host: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A real download, SIGKILLed with the weights half on disk (no clean-up can run): the
    copy without its completion mark is not reused, the next run downloads it again, whole."""
    for name, data in MODEL_FILES.items():
        bucket.blob(f"killed/model/{name}").upload_from_string(data)
    uri, cache = f"gs://{BUCKET}/killed/model", tmp_path / "cache"
    weights = MODEL_FILES["adapter_model.safetensors"]
    log = tmp_path / "download.log"
    with slow_link(gcs_emulator_host, bytes_per_s=1 << 20) as link, log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", DOWNLOAD, uri, str(cache)],
            env={**os.environ, "STORAGE_EMULATOR_HOST": link}, stdout=output, stderr=output,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        try:  # until a quarter MiB of the weights is on disk
            while not any(p.stat().st_size > 256 << 10 for p in cache.glob("*/adapter_model.*")):
                assert process.poll() is None, f"the download ended early: {log.read_text()}"
                assert time.monotonic() < deadline, "no part of the weights reached the cache"
                time.sleep(0.005)
        finally:
            process.kill()
            process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL
    (partial,) = cache.glob("*/adapter_model.safetensors")
    copy = partial.parent
    assert 0 < partial.stat().st_size < len(weights), "killed half-way through the weights"
    assert not (copy / DOWNLOAD_COMPLETE).exists() and not (copy / "tokenizer.json").exists()
    caplog.set_level(logging.INFO, logger="yoda_step_io.models")
    again = cached_copy(uri, cache)
    on_disk = {p.name: p.read_bytes() for p in again.iterdir() if not p.name.startswith(".")}
    sizes = {name: len(data) for name, data in on_disk.items()}
    assert again == copy and sizes == {name: len(data) for name, data in MODEL_FILES.items()}
    assert on_disk == MODEL_FILES, "a complete, byte-identical copy"
    assert f"downloading {uri}" in caplog.text and (again / DOWNLOAD_COMPLETE).is_file()
    caplog.clear()
    assert cached_copy(uri, cache) == again and "downloading" not in caplog.text, "then reused"
