"""The raw data read from a gs:// URI (yoda_data_transformation.sources), with the real
google-cloud-storage client against the GCS emulator (fake-gcs-server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from yoda_data_transformation import transform
from yoda_step_io import StepError


@pytest.fixture
def raw_blob(gcs: Any, sample_csv: Path) -> str:
    bucket = gcs.bucket("yoda-raw")
    if not bucket.exists():
        gcs.create_bucket("yoda-raw")
    bucket.blob("data/sentences.csv").upload_from_filename(str(sample_csv))
    return "gs://yoda-raw/data/sentences.csv"


def test_transform_reads_gs_uri(raw_blob: str, tmp_path: Path, sample_csv: Path) -> None:
    result = transform(raw_blob, tmp_path / "train", tmp_path / "test")
    local = transform(str(sample_csv), tmp_path / "local_train", tmp_path / "local_test")
    assert result.source == raw_blob
    assert (tmp_path / "train").read_bytes() == (tmp_path / "local_train").read_bytes()
    assert (tmp_path / "test").read_bytes() == (tmp_path / "local_test").read_bytes()
    assert result.train_rows == local.train_rows == 43
    first = json.loads((tmp_path / "train").read_text().splitlines()[0])
    assert first["messages"][1]["role"] == "assistant"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("gs://yoda-raw/data/missing.csv", "cannot read gs://yoda-raw/data/missing.csv: no such"),
        ("gs://no-such-bucket/sentences.csv", "cannot read gs://no-such-bucket/sentences.csv"),
    ],
)
def test_missing_gcs_object_is_a_clear_error(
    raw_blob: str, tmp_path: Path, uri: str, message: str
) -> None:
    with pytest.raises(StepError, match=message):
        transform(uri, tmp_path / "train", tmp_path / "test")
    assert list(tmp_path.iterdir()) == []
