"""The pre-flight: a value any step would refuse is refused before anything is compiled to disk
or any task starts, in one line naming ``YODA_X`` (``--set x=``). KFP's own placeholder code
fills each task's arguments; each step's own parser and checks judge them."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from yoda_pipeline.cli import main
from yoda_pipeline.images import STEPS
from yoda_pipeline.settings import LOCAL_IMAGE_LOCK
from yoda_step_io.libraries import cuda_here

REPO_ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "ab" * 32

#: (parameter, refused value, a key phrase of what the line says after its prefix). Each was a
#: probe of issue 26 or an earlier one; the refusal comes from the step that uses the value.
PROBES = [
    ("optim", "evil_optim", "one of adamw_torch"),
    ("checkpoint_dir", "/", "top-level folder"),
    ("max_new_tokens", "1000000000", "from 1 to 2048"),
    ("max_steps", str(10**12), "1 to 1000000"),
    ("max_steps", "1000000", "tokens per rank"),
    ("training_seed", "-5", "from 0 to 4294967295"),
    ("split_seed", "4294967296", "from 0 to 4294967295"),
    ("accelerator_count", "64", "from 1 to 16"),
    ("test_fraction", "1.5", "< 1"),
    ("validation_fraction", "0", "> 0"),
    ("gate_metric", "foo", "one of rouge_l"),
    ("evaluation_metrics", "foo", "foo: expected"),
    ("lora_target_modules", "q_proj", "linear layers o_proj, qkv_proj"),
    ("lora_target_modules", " , ", "module names"),
    ("lora_target_modules", "all-linear,q_proj", "alone"),
    ("lora_target_modules", "q-proj", "module names"),
    ("checkpoint_dir", "s3://x", "unsupported scheme s3://"),
    ("checkpoint_dir", "gs://X/ck", "gs://BUCKET or gs://BUCKET/PATH"),
    ("base_model", "user/model; rm -rf /", "a hub id"),
    ("base_model", "a/b/c", "at most one /"),
    ("base_model", "/no/such/model", "no such folder"),
    ("base_model", "/etc", "no config.json"),
    ("raw_data_uri", "s3://bucket/raw.csv", "unsupported scheme s3://"),
    ("raw_data_uri", "gs://bucket", "gs://BUCKET/PATH/FILE"),
    ("raw_data_uri", "no/such.csv", "no such file"),
    ("target_column", "answer", "one of translation_extra, translation"),
    ("registry_model_name", "yoda phi3", "letters, digits"),
    ("gate_min_uplift_vs_base", "2", "≤ 1"),
    ("gate_min_score", "-0.5", "≥ 0"),
    ("inference_batch_size", "0", "from 1 to 512"),
    ("temperature", "nan", "finite number"),
    ("top_p", "0", "> 0"),
    ("compute_dtype", "int8", "one of auto, float16"),
    ("quantization", "8bit", "one of 4bit, auto, none"),
    # a bad sweep: its type, a name or value fine-tuning refuses, a duplicate, too many
    ("sweep", "{}", "valid list"),
    ("sweep", "[1]", "valid dictionary"),
    ("sweep", "[{", "not JSON"),
    ("sweep", '[{"lora_rr": 16}]', "lora_rr: not a hyper-parameter"),
    ("sweep", '[{"base_model": "x"}]', "base_model: not a hyper-parameter"),
    ("sweep", '[{"lora_r": 0}]', "lora_r: expected"),
    ("sweep", '[{"lora_target_modules": "q_proj"}]', "linear layers o_proj, qkv_proj"),
    ("sweep", '[{"packing": true, "completion_only_loss": true}]', "needs --packing false"),
    ("sweep", '[{"lora_r": 8}, {"lora_r": 8}]', "given twice"),
    ("sweep", json.dumps([{"lora_r": r} for r in range(1, 10)]), "9 recipes: at most 8"),
]


def write_lock(path: Path, registry: str) -> Path:
    images = {step: f"{registry}/{step.replace('_', '-')}@{DIGEST}" for step in STEPS}
    path.write_text(json.dumps(images))
    return path


@pytest.fixture(autouse=True)
def _offline_base(clean_env: None, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> None:
    """No .env, no YODA_ variable of the caller's; the session's tiny model as the offline base."""
    monkeypatch.setenv("YODA_TINY_MODEL_DIR", str(tiny_model_dir))


@pytest.fixture(autouse=True)
def _no_task_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused value must stop before any task: running one is the failure here."""

    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("a task ran with a value that should have been refused")

    monkeypatch.setattr("yoda_pipeline.offline.run_compiled_pipeline", refuse)
    monkeypatch.setattr("yoda_pipeline.submit.init_vertex", refuse)


def run_local(tmp_path: Path, *more: str) -> list[str]:
    lock = REPO_ROOT / LOCAL_IMAGE_LOCK
    return ["run-local", "--image-lock", str(lock), "--runs-dir", str(tmp_path / "runs"), *more]


@pytest.mark.parametrize(("name", "value", "said"), PROBES)
def test_a_value_a_step_refuses_is_refused_before_any_task(
    tmp_path: Path, one_error_line: Callable[..., str], name: str, value: str, said: str
) -> None:
    line = one_error_line(main, *run_local(tmp_path, "--set", f"{name}={value}"), alone=True)
    prefix = re.match(rf"error: YODA_{name.upper()}=.+? \(--set {name}=\): ", line)
    assert prefix is not None and said in line[prefix.end() :], line
    assert not (tmp_path / "runs").exists(), "nothing compiled to disk, no run folder"


@pytest.mark.parametrize("command", ["compile", "submit", "run-docker"])
@pytest.mark.usefixtures("cloud_env")
def test_every_command_runs_the_preflight(
    tmp_path: Path, one_error_line: Callable[..., str], monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:  # fmt: skip
    monkeypatch.setenv("YODA_OPTIM", "evil_optim")  # the environment, like --set
    output = tmp_path / "pipeline.yaml"
    argv = (
        [command, "--image-lock", str(write_lock(tmp_path / "d.json", "127.0.0.1:5000/y"))]
        if command == "run-docker"
        else [command, "--output", str(output)]
    )
    line = one_error_line(main, *argv, alone=True)
    assert line.startswith("error: YODA_OPTIM='evil_optim' (--set optim=): ")
    assert "one of adamw_torch" in line
    assert not output.exists() and not (tmp_path / "local_runs").exists()


def test_the_steps_checks_of_this_machine_apply_to_local_runs_only(
    tmp_path: Path, one_error_line: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local run: a missing CSV, and cores; a compile for Vertex AI: neither (the data is
    read there)."""
    line = one_error_line(main, *run_local(tmp_path, "--raw-data-uri", "no/such.csv"), alone=True)
    assert "YODA_RAW_DATA_URI='no/such.csv'" in line and "no such file" in line
    monkeypatch.setenv("YODA_RAW_DATA_URI", "no/such.csv")
    monkeypatch.setenv("YODA_ACCELERATOR_COUNT", "16")
    main(["compile", "--image-lock", str(REPO_ROOT / LOCAL_IMAGE_LOCK), "--output", "p.yaml"])
    assert Path("p.yaml").is_file()


@pytest.mark.skipif(cuda_here(), reason="CUDA here: 4-bit is allowed")
def test_4bit_without_cuda_is_refused_for_a_local_run(
    tmp_path: Path, one_error_line: Callable[..., str]
) -> None:
    line = one_error_line(main, *run_local(tmp_path, "--set", "quantization=4bit"), alone=True)
    assert line.startswith("error: YODA_QUANTIZATION='4bit' (--set quantization=): 4-bit")


def test_the_gate_metric_must_be_evaluated(
    tmp_path: Path, one_error_line: Callable[..., str]
) -> None:
    """Two steps' values that fit only together: the one check no step can make alone."""
    line = one_error_line(
        main, *run_local(tmp_path, "--set", "evaluation_metrics=bleu,rouge_1"), alone=True
    )
    assert line.startswith("error: YODA_GATE_METRIC='rouge_l' (--set gate_metric=): not among")
    assert "YODA_EVALUATION_METRICS='bleu,rouge_1'" in line
