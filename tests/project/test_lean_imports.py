"""No step imports what it does not use: `--help` and a bad flag import no ML library. (That a
CPU run imports no bitsandbytes, and inference no compiler stack, is checked on the shared local
run's step processes: tests/e2e/test_local_run.py.) Timings live in `make bench`; these tests check
the imports that cause them."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "pandas", "transformers", "ragas", "datasets", "kfp", "google.cloud.aiplatform")
CLIS = {
    "yoda_data_transformation.cli": "main",
    "yoda_fine_tuning.cli": "main",
    "yoda_inference.cli": "main",
    "yoda_evaluation.cli": "main",
    "yoda_inference.ask": "main",
    "yoda_inference.serve": "main",
    "yoda_pipeline.cli": "main",
}


def imported_after(module: str, args: list[str], watch: tuple[str, ...]) -> list[str]:
    """Run ``module.main(args)`` in a fresh interpreter; which of ``watch`` did it import?"""
    script = (
        "import sys\n"
        f"from {module} import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        f"imported = [m for m in {watch!r} if sys.modules.get(m) is not None]\n"
        "print('IMPORTED:' + ','.join(imported), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = done.stderr.rsplit("IMPORTED:", 1)[-1].strip()
    return [name for name in report.split(",") if name]


@pytest.mark.parametrize("module", CLIS)
@pytest.mark.parametrize("args", [["--help"], ["--no-such-flag"]])
def test_help_and_bad_flags_import_no_ml_library(module: str, args: list[str]) -> None:
    assert imported_after(module, args, HEAVY) == []
