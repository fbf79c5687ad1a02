"""What a user passes to make (SET, RAW_DATA, TEXT, …) is data: it reaches the program verbatim,
never through the shell or make's own expansion."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def make(*args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("YODA_", "MAKE"))}
    return subprocess.run(["make", "--no-print-directory", *args], cwd=REPO_ROOT, env=environ,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip


def test_set_runs_no_shell_command(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    done = make("run-local", f"SET=split_seed=`touch {marker}` lora_r=$(shell touch {marker})")
    assert done.returncode != 0
    assert not marker.exists(), "a value ran as a command"
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"YODA_SPLIT_SEED='`touch {marker}`'" in errors[0]


def test_the_other_values_run_no_shell_command_either(tmp_path: Path) -> None:
    markers = {variable: tmp_path / variable for variable in ("RAW_DATA", "BASE_MODEL")}
    done = make("run-local", *(f"{variable}=x$$(touch {marker})`touch {marker}`"
                               for variable, marker in markers.items()))  # fmt: skip
    assert done.returncode != 0
    assert [variable for variable, marker in markers.items() if marker.exists()] == []


def test_a_value_with_spaces_and_quotes_arrives_verbatim() -> None:
    done = make("run-local", 'SET=registry_model_name=it\'s "a" b  max_steps=3')
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr[-2000:]
    assert errors[0].startswith("error: YODA_REGISTRY_MODEL_NAME='it\\'s \"a\" b'")


def test_make_help_lists_the_variables_with_defaults_within_100_columns() -> None:
    done = subprocess.run(["make", "--no-print-directory", "help"], cwd=REPO_ROOT,
                          capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    variables = done.stdout.partition("\nVariables")[2]
    from yoda_pipeline.parameters import PipelineParameters

    table = {
        name.upper(): str(PipelineParameters.model_fields[name].default)
        for name in ("target_column", "test_fraction", "split_seed")
    }  # the table's own
    for name, default in [("RAW_DATA", "embedded sample"), ("SET", "(none)"), ("BY", "rouge_l"),
                          ("TEXT", "The Force is strong with you."), *table.items()]:  # fmt: skip
        assert re.search(rf"^  {name} +{re.escape(default)}  ", variables, re.MULTILINE), name
