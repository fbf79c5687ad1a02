"""Every parameter checked against its allowed values before compiling and before any network
call (`submit`, `run-local`, `run-docker`, `compile`): one `error:` line naming the setting as
`YODA_NAME='value'` (and `--set name=`) and what it allows, exit status 2, nothing written."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, get_args

import pytest

from yoda_pipeline.cli import _settings, build_parser, main
from yoda_pipeline.cloud import validate_for_cloud
from yoda_pipeline.images import STEPS
from yoda_pipeline.settings import LOCAL_IMAGE_LOCK, PipelineSettings
from yoda_step_io import vocabulary
from yoda_step_io.vocabulary import METRIC_NAMES

REPO_ROOT = Path(__file__).resolve().parents[1]
DIGEST = "sha256:" + "ab" * 32
CLOUD_REGISTRY = "europe-west4-docker.pkg.dev/yoda-project/yoda"

#: (parameter, refused value, what the error line says it allows)
PROBES = [
    ("gate_metric", "foo", "expected one of: rouge_l, rouge_1, bleu"),
    ("evaluation_metrics", "foo", "expected a comma list of rouge_l, "),
    ("lora_target_modules", "foo", "has the linear layers qkv_proj, o_proj, gate_up_proj"),
    ("lora_target_modules", "q_proj", "has the linear layers qkv_proj, o_proj, gate_up_proj"),
    ("lora_target_modules", " , ", "or auto or all-linear alone"),
    ("lora_target_modules", "all-linear,q_proj", "or auto or all-linear alone"),
    ("lora_target_modules", "q-proj", "expected a comma list of module names"),
    ("checkpoint_dir", "s3://x", "unsupported scheme s3://: expected a local path or gs://"),
    ("checkpoint_dir", "gs://X/ck", "expected gs://BUCKET/PATH"),
    ("max_steps", "0", "expected -1 (use the epochs) or > 0"),
    ("max_steps", "-2", "expected -1 (use the epochs) or > 0"),
    ("base_model", "user/model; rm -rf /", "expected a hub id like microsoft/Phi-3-mini-4k"),
    ("base_model", "a/b/c", "at most one /"),
    ("base_model", "hf://microsoft/phi", "expected a hub id"),
    ("raw_data_uri", "s3://bucket/raw.csv", "unsupported scheme s3://"),
    ("raw_data_uri", "gs://bucket", "expected gs://BUCKET/PATH/FILE"),
    ("registry_model_name", "yoda phi3", "expected letters, digits, _ and -"),
    ("gate_min_uplift_vs_base", "2", "less than or equal to 1"),
    ("inference_batch_size", "0", "greater than 0"),
    ("accelerator_count", "0", "greater than 0"),
]
#: settings of the compilation only (no --set): (variable, refused value, what it allows)
ENV_PROBES = [
    ("CPU_LIMIT", "lots", "expected a CPU count like 16, 8.5 or 500m"),
    ("CPU_LIMIT", "0m", "expected a CPU count"),
    ("MEMORY_LIMIT", "lots", "expected a memory size like 50G or 64Gi"),
    ("MEMORY_LIMIT", "50GB", "expected a memory size"),
    ("ACCELERATOR_TYPE", "NVIDIA_TESLA_T99", "expected a Vertex AI GPU: NVIDIA_TESLA_K80, "),
]


def write_lock(path: Path, registry: str) -> Path:
    images = {step: f"{registry}/{step.replace('_', '-')}@{DIGEST}" for step in STEPS}
    path.write_text(json.dumps(images))
    return path


@pytest.fixture(autouse=True)
def _clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No .env, no YODA_ variable of the caller's: only what each test sets."""
    monkeypatch.chdir(tmp_path)
    for name in [name for name in os.environ if name.startswith("YODA_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def cloud_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings a submission accepts, with an endpoint nothing listens on."""
    values = {
        "PROJECT_ID": "yoda-project",
        "REGION": "europe-west4",
        "BUCKET": "yoda-bucket",
        "RAW_DATA_URI": "gs://yoda-bucket/data/yoda.csv",
        "IMAGE_LOCK": str(write_lock(tmp_path / "cloud.json", CLOUD_REGISTRY)),
        "VERTEX_API_ENDPOINT": "http://127.0.0.1:9",
    }
    for name, value in values.items():
        monkeypatch.setenv(f"YODA_{name}", value)


@pytest.fixture(autouse=True)
def _nothing_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiling or running is the failure here: a refused value must stop before either."""

    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("compiled or ran with a value that should have been refused")

    for target in ("compile.compile_pipeline", "submit.compile_pipeline", "offline.run_local"):
        monkeypatch.setattr(f"yoda_pipeline.{target}", refuse)


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI; it must exit 2 with exactly one `error:` line, which is returned."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


def local_argv(command: str, tmp_path: Path) -> list[str]:
    lock = REPO_ROOT / LOCAL_IMAGE_LOCK
    return [command, "--image-lock", str(lock), "--runs-dir", str(tmp_path / "runs")]


@pytest.mark.parametrize(("name", "value", "allowed"), PROBES)
@pytest.mark.parametrize("command", ["submit", "run-local", "run-docker"])
@pytest.mark.usefixtures("cloud_env")
def test_set_refuses_a_bad_value_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, name: str, value: str,
    allowed: str,
) -> None:  # fmt: skip
    output = tmp_path / "pipeline.yaml"
    argv = (
        ["submit", "--output", str(output)]
        if command == "submit"
        else local_argv(command, tmp_path)
    )
    line = refused([*argv, "--set", f"{name}={value}"], capsys)
    assert line.startswith(f"error: YODA_{name.upper()}={value!r} (--set {name}=): ")
    assert allowed in line
    assert not output.exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("name", "value", "allowed"), PROBES)
@pytest.mark.parametrize("command", ["compile", "submit"])
@pytest.mark.usefixtures("cloud_env")
def test_environment_refuses_a_bad_value_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    command: str, name: str, value: str, allowed: str,
) -> None:  # fmt: skip
    monkeypatch.setenv(f"YODA_{name.upper()}", value)
    output = tmp_path / "pipeline.yaml"
    line = refused([command, "--output", str(output)], capsys)
    assert line.startswith(f"error: YODA_{name.upper()}={value!r} (--set {name}=): ")
    assert allowed in line
    assert not output.exists()


def test_the_gate_metric_must_be_evaluated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*local_argv("run-local", tmp_path), "--set", "evaluation_metrics=bleu,rouge_1"]
    line = refused(argv, capsys)
    assert line.startswith(
        "error: YODA_GATE_METRIC='rouge_l' (--set gate_metric=): not among "
        "YODA_EVALUATION_METRICS='bleu,rouge_1': the gate needs its scores"
    )
    argv += ["--set", "gate_metric=bleu"]
    assert _settings(build_parser().parse_args(argv)).gate_metric == "bleu"


@pytest.mark.parametrize(("variable", "value", "allowed"), ENV_PROBES)
@pytest.mark.parametrize("command", ["compile", "submit", "run-local"])
@pytest.mark.usefixtures("cloud_env")
def test_resources_are_checked_before_compiling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    command: str, variable: str, value: str, allowed: str,
) -> None:  # fmt: skip
    monkeypatch.setenv(f"YODA_{variable}", value)
    output = tmp_path / "pipeline.yaml"
    argv = (
        local_argv(command, tmp_path)
        if command == "run-local"
        else [command, "--output", str(output)]
    )
    line = refused(argv, capsys)
    assert line.startswith(f"error: YODA_{variable}={value!r}: ") and allowed in line
    assert not output.exists()


def test_cpu_limit_error_is_one_line_naming_the_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YODA_CPU_LIMIT", "lots")
    line = refused(["compile", "--output", str(tmp_path / "p.yaml")], capsys)
    assert line == "error: YODA_CPU_LIMIT='lots': expected a CPU count like 16, 8.5 or 500m"


def test_every_bad_value_is_listed_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YODA_ACCELERATOR_TYPE", "NVIDIA_TESLA_T99")
    line = refused([*local_argv("run-local", tmp_path), "--set", "max_steps=0"], capsys)
    assert "YODA_MAX_STEPS='0' (--set max_steps=)" in line
    assert "; YODA_ACCELERATOR_TYPE='NVIDIA_TESLA_T99': " in line


@pytest.mark.parametrize(
    "registry", ["127.0.0.1:5000/yoda", "localhost:5000/yoda", "127.1.2.3/yoda", "localhost/yoda"]
)
@pytest.mark.usefixtures("cloud_env")
def test_submit_refuses_a_lock_on_a_loopback_registry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], registry: str
) -> None:
    lock = write_lock(tmp_path / "digests.docker.json", registry)
    output = tmp_path / "pipeline.yaml"
    line = refused(["submit", "--image-lock", str(lock), "--output", str(output)], capsys)
    host = registry.split("/")[0]
    assert (
        f"error: YODA_IMAGE_LOCK={lock} holds local images, on a loopback registry ({host})" in line
    )
    assert "run `make build-images` (Cloud Build) for a cloud lock" in line
    assert not output.exists()


@pytest.mark.parametrize("command", ["run-local", "run-docker", "compile"])
def test_local_commands_keep_accepting_a_loopback_lock(tmp_path: Path, command: str) -> None:
    lock = write_lock(tmp_path / "digests.docker.json", "127.0.0.1:5000/yoda")
    settings = _settings(build_parser().parse_args([command, "--image-lock", str(lock)]))
    assert settings.image_lock == lock


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1:5000", True), ("127.9.9.9", True), ("localhost", True), ("[::1]:5000", True),
        ("localhost:5000", True), ("europe-west4-docker.pkg.dev", False), ("gcr.io", False),
        ("docker.io", False), ("10.0.0.1:5000", False), ("localhost.example.com", False),
    ],
)  # fmt: skip
def test_loopback_hosts(host: str, loopback: bool) -> None:
    from yoda_pipeline.images import is_loopback

    assert is_loopback(host) is loopback


def test_registry_host() -> None:
    from yoda_pipeline.images import registry_host

    assert registry_host(f"127.0.0.1:5000/yoda/inference@{DIGEST}") == "127.0.0.1:5000"
    assert registry_host(f"localhost/yoda/inference@{DIGEST}") == "localhost"
    assert registry_host(f"{CLOUD_REGISTRY}/inference@{DIGEST}") == "europe-west4-docker.pkg.dev"
    assert registry_host(f"yoda/inference@{DIGEST}") == "docker.io"


def test_run_local_refuses_a_base_model_folder_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*local_argv("run-local", tmp_path), "--set", "base_model=/no/such/model"]
    line = refused(argv, capsys)
    assert line.startswith("error: YODA_BASE_MODEL='/no/such/model' (--set base_model=): no such")


def test_run_local_refuses_gs_checkpoints_without_the_mount(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YODA_GCS_MOUNT", str(tmp_path / "gcs"))
    argv = [*local_argv("run-local", tmp_path), "--set", "checkpoint_dir=gs://yoda-bucket/ck"]
    line = refused(argv, capsys)
    assert "YODA_CHECKPOINT_DIR='gs://yoda-bucket/ck' (--set checkpoint_dir=): gs://" in line
    (tmp_path / "gcs" / "yoda-bucket").mkdir(parents=True)  # Vertex AI's mount: accepted
    assert _settings(build_parser().parse_args(argv)).checkpoint_dir == "gs://yoda-bucket/ck"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("base_model", "/models/phi3"),  # a local folder
        ("base_model", "build/tiny-phi3"),  # a hub id's form, and an existing folder
        ("checkpoint_dir", "/tmp/checkpoints"),
    ],
)
@pytest.mark.usefixtures("cloud_env")
def test_submit_refuses_local_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, value: str
) -> None:
    (tmp_path / "build" / "tiny-phi3").mkdir(parents=True)
    line = refused(
        ["submit", "--output", str(tmp_path / "p.yaml"), "--set", f"{name}={value}"], capsys
    )
    assert line.startswith(f"error: YODA_{name.upper()}={value!r}")


GOOD: dict[str, list[Any]] = {
    "gate_metric": list(METRIC_NAMES),
    "evaluation_metrics": ["", "rouge_l", "rouge_l, bleu,exact_match", ",".join(METRIC_NAMES)],
    "lora_target_modules": [
        "o_proj,qkv_proj,gate_up_proj,down_proj", "qkv_proj", " all-linear", "auto",
    ],
    "checkpoint_dir": ["", "/tmp/checkpoints", "checkpoints", "gs://yoda-bucket/ck", "/gcs/b/ck"],
    "max_steps": [-1, 1, 500],
    "base_model": [
        "microsoft/Phi-3-mini-4k-instruct", "gpt2", "meta-llama/Llama-3.2-1B-Instruct",
        "gs://yoda-bucket/models/microsoft/Phi-3-mini-4k-instruct", "/models/phi3", "./tiny",
    ],
    "raw_data_uri": [
        "", "data/yoda.csv", "gs://yoda-bucket/data/yoda.csv",
        "hf://datasets/dvgodoy/yoda_sentences/sentences.csv",
    ],
    "accelerator_type": ["NVIDIA_TESLA_T4", "NVIDIA_L4", "NVIDIA_H100_80GB", "NVIDIA_B200"],
    "cpu_limit": ["16", "8.5", "500m", "4"],
    "memory_limit": ["50G", "64Gi", "32G", "512Mi", "1073741824"],
    "registry_model_name": ["yoda-phi3", "Yoda_Phi3"],
    "gate_min_uplift_vs_base": [-1.0, 0.0, 1.0],
}  # fmt: skip


@pytest.mark.parametrize(
    ("name", "value"), [(name, value) for name, values in GOOD.items() for value in values]
)
def test_good_values_pass(name: str, value: Any) -> None:
    assert getattr(PipelineSettings(**{name: value}), name) == value


def test_every_default_passes_its_own_checks() -> None:
    defaults = PipelineSettings()
    revalidated = PipelineSettings(
        **{n: getattr(defaults, n) for n in PipelineSettings.model_fields}
    )
    assert revalidated == defaults
    assert defaults.base_model == "microsoft/Phi-3-mini-4k-instruct"


@pytest.mark.usefixtures("cloud_env")
def test_the_defaults_and_a_sample_cloud_set_up_pass(tmp_path: Path) -> None:
    for command in ("run-local", "run-docker", "compile", "submit"):
        settings = _settings(build_parser().parse_args([command]))
        assert settings.base_model == "microsoft/Phi-3-mini-4k-instruct"
    validate_for_cloud(settings)  # the submission's own checks pass too


def test_run_local_takes_the_tiny_model_folder(tmp_path: Path) -> None:
    """The tests' tiny model (an absolute folder) and the default's place (a relative one)."""
    for folder in (tmp_path / "models" / "tiny-phi3", Path("build/tiny-phi3")):
        folder.mkdir(parents=True)
        argv = ["run-local", "--set", f"base_model={folder}", "--set", "quantization=auto"]
        assert _settings(build_parser().parse_args(argv)).base_model == str(folder)


def test_the_vocabularies_are_the_steps_own() -> None:
    from yoda_evaluation.metrics import DEFAULT_METRICS, METRICS
    from yoda_fine_tuning.architecture import DEFAULT_TARGETS
    from yoda_fine_tuning.hyperparams import Quantization
    from yoda_step_io.libraries import COMPUTE_DTYPES
    from yoda_step_io.vocabulary import QUANTIZATION_MODES

    assert tuple(METRICS) == DEFAULT_METRICS == vocabulary.METRIC_NAMES
    assert QUANTIZATION_MODES == get_args(Quantization) == vocabulary.QUANTIZATION_MODES
    fields = PipelineSettings.model_fields
    assert get_args(fields["quantization"].annotation) == vocabulary.QUANTIZATION_MODES
    assert get_args(fields["compute_dtype"].annotation) == COMPUTE_DTYPES
    assert set(DEFAULT_TARGETS["phi3"]) == set(vocabulary.PHI3_LINEAR_MODULES)
    assert DEFAULT_TARGETS["llama"] == vocabulary.LLAMA_LINEAR_MODULES


@pytest.mark.parametrize(
    ("base_model", "modules"),
    [("HuggingFaceTB/SmolLM2-135M-Instruct", "q_proj,v_proj"),
     ("Qwen/Qwen2.5-0.5B-Instruct", ",".join(vocabulary.LLAMA_LINEAR_MODULES)),
     ("gpt2", "c_attn,c_proj")],
)  # fmt: skip
def test_lora_targets_follow_the_base_models_architecture(base_model: str, modules: str) -> None:
    """Any causal LM: names are checked where the base's name tells its architecture, else by
    form (the fine-tuning step checks them against the loaded model)."""
    settings = PipelineSettings(base_model=base_model, lora_target_modules=modules)
    assert settings.lora_target_modules == modules


def test_the_gpu_types_are_vertex_ais() -> None:
    from google.cloud.aiplatform_v1.types import AcceleratorType

    names: list[str] = [member.name for member in AcceleratorType.__members__.values()]
    nvidia = tuple(name for name in names if name.startswith("NVIDIA_"))
    assert nvidia == vocabulary.GPU_TYPES


@pytest.mark.parametrize(
    ("text", "hub_id"),
    [
        ("microsoft/Phi-3-mini-4k-instruct", True), ("gpt2", True), ("a" * 96, True),
        ("a" * 97, False), ("user/model; rm -rf /", False), ("user/../model", False),
        ("-user/model", False), ("user/model/", False), ("user model", False), ("", False),
    ],
)  # fmt: skip
def test_hub_id_form(text: str, hub_id: bool) -> None:
    assert vocabulary.is_hub_id(text) is hub_id


@pytest.mark.usefixtures("cloud_env")
def test_a_gpu_count_no_machine_takes_is_refused_on_submit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["submit", "--output", str(tmp_path / "p.yaml"), "--set", "accelerator_count=8"]
    line = refused(argv, capsys)
    assert line == (
        "error: YODA_ACCELERATOR_COUNT=8 (--set accelerator_count=): one machine takes 1, 2, 4 "
        "of YODA_ACCELERATOR_TYPE=NVIDIA_TESLA_T4: pick one of those counts, or another GPU "
        "type (docs/scaling.md)"
    )
    assert not (tmp_path / "p.yaml").exists()


def test_a_gpu_count_the_gpu_type_comes_in_is_taken() -> None:
    """8 L4 make a g2-standard-96; 8 T4 fit no machine (checks.GPU_COUNTS, with its source);
    on this machine the count is CPU ranks, any number."""
    from yoda_pipeline.checks import gpu_count_problem

    assert gpu_count_problem("NVIDIA_L4", 8) is None
    assert gpu_count_problem("NVIDIA_TESLA_T4", 4) is None
    assert gpu_count_problem("NVIDIA_B200", 8) is None
    one_b200 = gpu_count_problem("NVIDIA_B200", 1)  # one B200 comes in no machine
    assert one_b200 is not None and "one machine takes 8 of YODA_ACCELERATOR_TYPE" in one_b200
    assert PipelineSettings(accelerator_count=3).accelerator_count == 3  # three CPU ranks here
