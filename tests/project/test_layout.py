"""The layout a newcomer relies on: short modules, and tests named by the module they test."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {path.name.removeprefix("yoda_"): path for path in [
    *REPO_ROOT.glob("components/*/src/yoda_*"), *REPO_ROOT.glob("pipeline/src/yoda_*"),
    *REPO_ROOT.glob("tools/*/src/yoda_*")]}  # fmt: skip


def test_every_module_is_at_most_250_lines() -> None:
    long = {
        str(module.relative_to(REPO_ROOT)): lines
        for package in PACKAGES.values()
        for module in package.glob("*.py")
        if (lines := len(module.read_text().splitlines())) > 250
    }
    assert long == {}


def test_every_unit_test_file_is_named_after_its_module() -> None:
    orphans = [
        str(test.relative_to(REPO_ROOT))
        for name, package in PACKAGES.items()
        for test in (REPO_ROOT / "tests" / name).glob("test_*.py")
        if not (package / f"{test.stem.removeprefix('test_')}.py").is_file()
    ]
    assert len(PACKAGES) == 8 and orphans == []
