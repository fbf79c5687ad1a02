"""Compiling the pipeline (yoda_pipeline.compile): every image a digest from the lock, a spec
Vertex AI parses strictly; a lock with a tag, or an --output that is not a compiled pipeline,
refused in one line with nothing written. (What the spec wires: test_pipeline.py.)"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from yoda_pipeline.cli import main
from yoda_pipeline.compile import compile_pipeline, spec_images
from yoda_pipeline.images import STEPS, ImageLockError
from yoda_pipeline.settings import LOCAL_IMAGE_LOCK, PipelineSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "ab" * 32
DIGEST_ONLY = re.compile(r"^[^@:]+(/[^@:]+)*@sha256:[0-9a-f]{64}$")


def write_lock(tmp_path: Path, **images: str) -> Path:
    lock = {step: f"europe-west4-docker.pkg.dev/p/yoda/{step}@{DIGEST}" for step in STEPS}
    lock.update(images)
    path = tmp_path / "lock.json"
    path.write_text(json.dumps(lock))
    return path


@pytest.fixture
def compiled(tmp_path: Path) -> dict[str, Any]:
    settings = PipelineSettings(image_lock=write_lock(tmp_path))
    path = compile_pipeline(settings, tmp_path / "pipeline.yaml")
    spec: dict[str, Any] = yaml.safe_load(path.read_text())
    return spec


def test_every_image_is_a_digest_from_the_lock(compiled: dict[str, Any]) -> None:
    images = spec_images(compiled)
    assert images, "the spec has no executors"
    for image in images.values():
        assert DIGEST_ONLY.match(image), image
        assert image.endswith(DIGEST)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("europe-docker.pkg.dev/p/yoda/data:latest", "a digest, not a tag"),
        (f"europe-docker.pkg.dev/p/yoda/data:v1@{DIGEST}", "both a tag and a digest"),
        ("europe-docker.pkg.dev/p/yoda/data@sha256:abc", "a digest, not a tag"),
    ],
)
def test_compile_refuses_non_digest_images(tmp_path: Path, image: str, message: str) -> None:
    settings = PipelineSettings(image_lock=write_lock(tmp_path, data_transformation=image))
    with pytest.raises(ImageLockError, match=message) as error:
        compile_pipeline(settings, tmp_path / "pipeline.yaml")
    assert image in str(error.value)
    assert not (tmp_path / "pipeline.yaml").exists()


def test_compile_cli_error_is_one_line(tmp_path: Path, one_error_line: Callable[..., str]) -> None:
    lock = tmp_path / "absent.json"
    line = one_error_line(main, "compile", "--image-lock", str(lock),
                          "--output", str(tmp_path / "p.yaml"), alone=True)  # fmt: skip
    assert str(lock) in line and "not found" in line
    assert not (tmp_path / "p.yaml").exists()


def test_the_spec_parses_strictly_as_kfp_pipeline_spec(compiled: dict[str, Any]) -> None:
    """What Vertex AI Pipelines reads: every field of the compiled YAML is one of PipelineSpec's
    (the GPU count of fine-tuning a placeholder of its run-time parameter included)."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    json_format.ParseDict(compiled, pipeline_spec_pb2.PipelineSpec())


def test_compile_does_not_overwrite_what_is_not_a_pipeline(
    tmp_path: Path, one_error_line: Callable[..., str]
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# my notes\n")
    lock = str(REPO_ROOT / LOCAL_IMAGE_LOCK)
    line = one_error_line(main, "compile", "--image-lock", lock, "--output", str(readme))
    assert str(readme) in line and "not a compiled pipeline" in line
    assert readme.read_text() == "# my notes\n"
    line = one_error_line(main, "compile", "--image-lock", lock, "--output", str(tmp_path))
    assert str(tmp_path) in line and "is a folder" in line
