"""The pre-flight: a value any step would refuse is refused before anything is compiled to disk
or any task starts, in one line naming ``YODA_X`` (``--set x=``). KFP's own placeholder code
fills each task's arguments; each step's own parser and checks judge them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from yoda_pipeline.cli import main, split_sets
from yoda_pipeline.images import STEPS
from yoda_pipeline.settings import LOCAL_IMAGE_LOCK
from yoda_step_io.libraries import cuda_here

REPO_ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "ab" * 32
CLOUD_REGISTRY = "europe-west4-docker.pkg.dev/yoda-project/yoda"

#: (parameter, refused value, a word of what the line says). Each was a probe of issue 26 or an
#: earlier one; the refusal comes from the step that uses the value.
PROBES = [
    ("optim", "evil_optim", "expected one of adamw_torch"),
    ("checkpoint_dir", "/", "top-level folder"),
    ("max_new_tokens", "1000000000", "from 1 to 2048"),
    ("max_steps", str(10**12), "1 to 1000000"),
    ("max_steps", "1000000", "tokens per rank"),
    ("training_seed", "-5", "from 0 to 4294967295"),
    ("split_seed", "4294967296", "from 0 to 4294967295"),
    ("accelerator_count", "64", "from 1 to 16"),
    ("test_fraction", "1.5", "< 1"),
    ("validation_fraction", "0", "> 0"),
    ("gate_metric", "foo", "expected one of rouge_l"),
    ("evaluation_metrics", "foo", "foo: expected"),
    ("lora_target_modules", "q_proj", "has the linear layers o_proj, qkv_proj"),
    ("lora_target_modules", " , ", "comma list of module names"),
    ("lora_target_modules", "all-linear,q_proj", "alone"),
    ("lora_target_modules", "q-proj", "comma list of module names"),
    ("checkpoint_dir", "s3://x", "unsupported scheme s3://"),
    ("checkpoint_dir", "gs://X/ck", "expected gs://BUCKET or gs://BUCKET/PATH"),
    ("base_model", "user/model; rm -rf /", "expected a hub id"),
    ("base_model", "a/b/c", "at most one /"),
    ("base_model", "/no/such/model", "no such folder"),
    ("base_model", "/etc", "no config.json"),
    ("raw_data_uri", "s3://bucket/raw.csv", "unsupported scheme s3://"),
    ("raw_data_uri", "gs://bucket", "expected gs://BUCKET/PATH/FILE"),
    ("raw_data_uri", "no/such.csv", "no such file"),
    ("target_column", "answer", "one of translation_extra, translation"),
    ("registry_model_name", "yoda phi3", "letters, digits, _ and -"),
    ("gate_min_uplift_vs_base", "2", "≤ 1"),
    ("gate_min_score", "-0.5", "≥ 0"),
    ("inference_batch_size", "0", "from 1 to 512"),
    ("temperature", "nan", "finite number"),
    ("top_p", "0", "> 0"),
    ("compute_dtype", "int8", "one of auto, float16"),
    ("quantization", "8bit", "one of 4bit, auto, none"),
    # a bad sweep: its type, a name or value fine-tuning refuses, a duplicate, too many
    ("sweep", "{}", "input should be a valid list"),
    ("sweep", "[1]", "input should be a valid dictionary"),
    ("sweep", "[{", "not JSON (Expecting property name"),
    ("sweep", '[{"lora_rr": 16}]', "lora_rr: not a hyper-parameter of fine-tuning"),
    ("sweep", '[{"base_model": "x"}]', "base_model: not a hyper-parameter of fine-tuning"),
    ("sweep", '[{"lora_r": 0}]', "lora_r: expected a whole number from 1 to 1024"),
    ("sweep", '[{"lora_target_modules": "q_proj"}]', "has the linear layers o_proj, qkv_proj"),
    ("sweep", '[{"packing": true, "completion_only_loss": true}]', "needs --packing false"),
    ("sweep", '[{"lora_r": 8}, {"lora_r": 8}]', 'the recipe {"lora_r": 8} is given twice'),
    ("sweep", json.dumps([{"lora_r": r} for r in range(1, 10)]), "9 recipes: at most 8"),
]


def write_lock(path: Path, registry: str) -> Path:
    images = {step: f"{registry}/{step.replace('_', '-')}@{DIGEST}" for step in STEPS}
    path.write_text(json.dumps(images))
    return path


@pytest.fixture(autouse=True)
def _clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> None:
    """No .env, no YODA_ variable of the caller's; the session's tiny model as the offline base."""
    monkeypatch.chdir(tmp_path)
    for name in [name for name in os.environ if name.startswith("YODA_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("YODA_TINY_MODEL_DIR", str(tiny_model_dir))


@pytest.fixture(autouse=True)
def _no_task_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused value must stop before any task: running one is the failure here."""

    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("a task ran with a value that should have been refused")

    monkeypatch.setattr("yoda_pipeline.offline.run_compiled_pipeline", refuse)
    monkeypatch.setattr("yoda_pipeline.submit.init_vertex", refuse)


@pytest.fixture
def cloud_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings a submission accepts."""
    values = {
        "PROJECT_ID": "yoda-project",
        "REGION": "europe-west4",
        "BUCKET": "yoda-bucket",
        "RAW_DATA_URI": "gs://yoda-bucket/data/yoda.csv",
        "IMAGE_LOCK": str(write_lock(tmp_path / "cloud.json", CLOUD_REGISTRY)),
    }
    for name, value in values.items():
        monkeypatch.setenv(f"YODA_{name}", value)


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI; it must exit 2 with exactly one `error:` line, which is returned."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


def run_local(tmp_path: Path, *more: str) -> list[str]:
    lock = REPO_ROOT / LOCAL_IMAGE_LOCK
    return ["run-local", "--image-lock", str(lock), "--runs-dir", str(tmp_path / "runs"), *more]


@pytest.mark.parametrize(("name", "value", "said"), PROBES)
def test_a_value_a_step_refuses_is_refused_before_any_task(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, value: str, said: str
) -> None:
    line = refused(run_local(tmp_path, "--set", f"{name}={value}"), capsys)
    assert line.startswith(f"error: YODA_{name.upper()}=")
    assert f"(--set {name}=)" in line and said in line
    assert not (tmp_path / "runs").exists(), "nothing compiled to disk, no run folder"


@pytest.mark.parametrize("command", ["compile", "submit", "run-docker"])
@pytest.mark.usefixtures("cloud_env")
def test_every_command_runs_the_preflight(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:  # fmt: skip
    monkeypatch.setenv("YODA_OPTIM", "evil_optim")  # the environment, like --set
    output = tmp_path / "pipeline.yaml"
    argv = (
        [command, "--image-lock", str(write_lock(tmp_path / "d.json", "127.0.0.1:5000/y"))]
        if command == "run-docker"
        else [command, "--output", str(output)]
    )
    line = refused(argv, capsys)
    assert line.startswith("error: YODA_OPTIM='evil_optim' (--set optim=): expected one of ")
    assert not output.exists() and not (tmp_path / "local_runs").exists()


def test_the_steps_checks_of_this_machine_apply_to_local_runs_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local run: a missing CSV, and cores; a compile for Vertex AI: neither (the data is
    read there)."""
    line = refused(run_local(tmp_path, "--raw-data-uri", "no/such.csv"), capsys)
    assert "YODA_RAW_DATA_URI='no/such.csv'" in line and "no such file" in line
    monkeypatch.setenv("YODA_RAW_DATA_URI", "no/such.csv")
    monkeypatch.setenv("YODA_ACCELERATOR_COUNT", "16")
    main(["compile", "--image-lock", str(REPO_ROOT / LOCAL_IMAGE_LOCK), "--output", "p.yaml"])
    assert Path("p.yaml").is_file()


@pytest.mark.skipif(cuda_here(), reason="CUDA here: 4-bit is allowed")
def test_4bit_without_cuda_is_refused_for_a_local_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refused(run_local(tmp_path, "--set", "quantization=4bit"), capsys)
    assert line.startswith("error: YODA_QUANTIZATION='4bit' (--set quantization=): 4-bit")


def test_the_gate_metric_must_be_evaluated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two steps' values that fit only together: the one check no step can make alone."""
    line = refused(run_local(tmp_path, "--set", "evaluation_metrics=bleu,rouge_1"), capsys)
    assert line.startswith("error: YODA_GATE_METRIC='rouge_l' (--set gate_metric=): not among")


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("CPU_LIMIT", "lots", "expected a CPU count like 16, 8.5 or 500m"),
        ("CPU_LIMIT", "0m", "expected a CPU count"),
        ("MEMORY_LIMIT", "50GB", "expected a memory size like 50G or 64Gi"),
        ("ACCELERATOR_TYPE", "nvidia t4", "expected an accelerator type like NVIDIA_TESLA_T4"),
    ],
)
def test_the_tasks_machines_are_checked_before_compiling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    variable: str, value: str, allowed: str,
) -> None:  # fmt: skip
    monkeypatch.setenv(f"YODA_{variable}", value)
    line = refused(["compile", "--output", str(tmp_path / "p.yaml")], capsys)
    assert line.startswith(f"error: YODA_{variable}={value!r}: ") and allowed in line
    assert not (tmp_path / "p.yaml").exists()


@pytest.mark.parametrize(
    ("text", "pairs"),
    [
        ("a=1 b=2", ["a=1", "b=2"]),
        ("  lora_r=16   max_steps=5 ", ["lora_r=16", "max_steps=5"]),
        ("registry_model_name=a b c", ["registry_model_name=a b c"]),
        ('sweep=[{"lora_r": 16}, {"lora_r": 8}] seed=1', ['sweep=[{"lora_r": 16}, {"lora_r": 8}]',
                                                           "seed=1"]),
        ("x='quoted value' y=`date`", ["x='quoted value'", "y=`date`"]),
        ("", []),
    ],
)  # fmt: skip
def test_set_pairs_are_taken_verbatim(text: str, pairs: list[str]) -> None:
    assert split_sets(text) == pairs


@pytest.mark.parametrize(
    ("changes", "warned"),
    [
        ({"accelerator_type": "NVIDIA_TESLA_T99"}, "YODA_ACCELERATOR_TYPE='NVIDIA_TESLA_T99' is "
                                                   "not among the GPU types"),
        ({"accelerator_count": 8}, "YODA_ACCELERATOR_COUNT=8 (--set accelerator_count=): one "
                                   "machine takes 1, 2, 4 of NVIDIA_TESLA_T4, as copied on"),
    ],
)  # fmt: skip
def test_a_value_the_copied_catalogs_lack_is_a_warning_not_a_refusal(
    changes: dict[str, object], warned: str
) -> None:
    """Google adds GPUs and shapes: the catalog copied here only warns, with its source and
    date; a clean setting warns of nothing."""
    from yoda_pipeline.cloud import catalog_warnings
    from yoda_pipeline.settings import PipelineSettings

    base = {"region": "europe-west4", "accelerator_type": "NVIDIA_TESLA_T4"}
    (warning,) = catalog_warnings(PipelineSettings(**{**base, **changes}))
    assert warning.startswith(warned)
    assert catalog_warnings(PipelineSettings(**base)) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [("base_model", "/models/phi3"), ("checkpoint_dir", "/tmp/checkpoints")],
)
@pytest.mark.usefixtures("cloud_env")
def test_submit_refuses_local_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, value: str
) -> None:
    line = refused(
        ["submit", "--output", str(tmp_path / "p.yaml"), "--set", f"{name}={value}"], capsys
    )
    assert line.startswith(f"error: YODA_{name.upper()}={value!r}")


@pytest.mark.usefixtures("cloud_env")
def test_submit_refuses_a_lock_on_a_loopback_registry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = write_lock(tmp_path / "digests.docker.json", "127.0.0.1:5000/yoda")
    output = tmp_path / "pipeline.yaml"
    line = refused(["submit", "--image-lock", str(lock), "--output", str(output)], capsys)
    assert f"error: YODA_IMAGE_LOCK={lock} holds local images, on a loopback registry" in line
    assert not output.exists()
