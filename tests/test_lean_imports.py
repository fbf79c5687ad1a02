"""No step imports what it does not use: `--help` and a bad flag import no ML library, and a
CPU run imports no bitsandbytes (and inference no compiler stack). Timings live in `make bench`;
these tests check the imports that cause them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "pandas", "transformers", "ragas", "datasets", "kfp", "google.cloud.aiplatform")
CLIS = {
    "yoda_data_transformation.cli": "main",
    "yoda_fine_tuning.cli": "main",
    "yoda_inference.cli": "main",
    "yoda_evaluation.cli": "main",
    "yoda_inference.ask": "main",
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


def test_cpu_inference_imports_neither_bitsandbytes_nor_the_compiler(
    tuned_model_dir: Path, sample_test_jsonl: Path, tmp_path: Path
) -> None:
    args = ["--model-dir", str(tuned_model_dir), "--test-dataset", str(sample_test_jsonl),
            "--predictions-output", str(tmp_path / "predictions"), "--quantization", "auto",
            "--max-new-tokens", "2"]  # fmt: skip
    watched = ("torch", "bitsandbytes", "torch._dynamo", "torch.distributed.fsdp")
    assert imported_after("yoda_inference.cli", args, watched) == ["torch"]
    assert (tmp_path / "predictions").is_file()


def test_cpu_fine_tuning_imports_no_bitsandbytes(
    tiny_model_dir: Path, sample_train_jsonl: Path, tmp_path: Path
) -> None:
    args = ["--train-dataset", str(sample_train_jsonl), "--model-output", str(tmp_path / "model"),
            "--metrics-output", str(tmp_path / "metrics"), "--base-model", str(tiny_model_dir),
            "--quantization", "auto", "--max-steps", "1"]  # fmt: skip
    assert imported_after("yoda_fine_tuning.cli", args, ("peft", "bitsandbytes")) == ["peft"]
    assert (tmp_path / "model" / "adapter_model.safetensors").is_file()
