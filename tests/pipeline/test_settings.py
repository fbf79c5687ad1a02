"""The settings (yoda_pipeline.settings): a value no task machine can take is refused before
anything is compiled, in one line naming its variable; and .env.example names each setting."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from yoda_pipeline.cli import main
from yoda_pipeline.parameters import ROWS
from yoda_pipeline.settings import PipelineSettings

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("CPU_LIMIT", "lots", "CPU count"),
        ("CPU_LIMIT", "0m", "CPU count"),
        ("MEMORY_LIMIT", "50GB", "memory size"),
        ("ACCELERATOR_TYPE", "nvidia t4", "accelerator type"),
    ],
)
@pytest.mark.usefixtures("clean_env")
def test_the_tasks_machines_are_checked_before_compiling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_error_line: Callable[..., str],
    variable: str, value: str, allowed: str,
) -> None:  # fmt: skip
    monkeypatch.setenv(f"YODA_{variable}", value)
    line = one_error_line(main, "compile", "--output", str(tmp_path / "p.yaml"), alone=True)
    assert line.startswith(f"error: YODA_{variable}={value!r}: ") and allowed in line
    assert not (tmp_path / "p.yaml").exists()


def test_env_example_names_real_settings_and_every_other_setting() -> None:
    text = (REPO_ROOT / ".env.example").read_text(encoding="utf-8")
    named = set(re.findall(r"^#? ?YODA_(\w+)=", text, flags=re.MULTILINE))
    settings = {name.upper() for name in PipelineSettings.model_fields}
    make_only = {"BUILD_SERVICE_ACCOUNT"}  # read by cloud.mk's `make trigger`, not by Python
    assert named - settings - make_only == set()
    others = settings - {name.upper() for name in ROWS}
    assert others - named == set(), "describe each setting that is not a parameter there"
