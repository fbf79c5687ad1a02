"""docs/parameters.md is the page yoda_pipeline.reference writes from the parameter table."""

from __future__ import annotations

from pathlib import Path

from yoda_pipeline.reference import parameters_page

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_parameter_page_is_the_table() -> None:
    page = REPO_ROOT / "docs" / "parameters.md"
    assert page.read_text(encoding="utf-8") == parameters_page(), "run `make parameters-doc`"
