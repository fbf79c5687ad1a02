"""The real step images: built from their Dockerfiles (`make build-images-local`, stand-in bases
where the public ones cannot be pulled), pushed to a registry on 127.0.0.1, pulled by digest and
run by KFP's own DockerRunner (`make run-docker`); their results equal `make run-local`'s.

Needs a Docker engine, debootstrap and docker-registry (`.ci/run` installs and starts them);
run with `make test-docker`. A cold build takes about ten minutes, a warm one seconds.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from local_servers import free_port, wait_until_serving

from yoda_pipeline.images import STEPS, load_image_lock
from yoda_pipeline.offline import run_local
from yoda_pipeline.settings import DOCKER_IMAGE_LOCK, LOCAL_IMAGE_LOCK, PipelineSettings

# a cold build (nothing cached) takes about ten minutes, inside the first test's set-up
pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]

REPO_ROOT = Path(__file__).resolve().parents[2]
TASKS = (
    "data-transformation-component",
    "fine-tuning-component",
    "champion-component",
    "inference-component",
    "evaluation-component",
    "report-component",
    "gate-component",
)
#: Metadata that measures the machine, not the result, and what holds the input paths, which
#: differ between the runs (the report's size: its table of hyper-parameters names the base).
UNSTABLE = re.compile(r"seconds|per_second|runtime|peak_memory|^source$|^base_model$|^bytes$")


def run(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    if check:
        assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout[-4000:]}{done.stderr}"
    return done


@pytest.fixture(scope="module")
def build_output() -> str:
    """`make build-images-local`, as a user runs it."""
    done = run("make", "--no-print-directory", "build-images-local")
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def lock(build_output: str) -> dict[str, str]:
    return load_image_lock(REPO_ROOT / DOCKER_IMAGE_LOCK).images


def task_dir(run_dir: Path, task: str) -> Path:
    """A task's folder; fine-tuning's is in the sweep's loop (one recipe here)."""
    (found,) = run_dir.glob(f"outputs/*/**/{task}")
    return found


def metadata(run_dir: Path, task: str) -> dict[str, Any]:
    document = json.loads((task_dir(run_dir, task) / "executor_output.json").read_text())
    return {
        output: {
            key: value
            for key, value in entry["artifacts"][0]["metadata"].items()
            if not UNSTABLE.search(key)
        }
        for output, entry in document["artifacts"].items()
    }


@pytest.fixture(scope="module")
def runs(lock: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same offline run twice: on the host (`make run-local`) and in the images."""
    runs_dir = tmp_path_factory.mktemp("docker-runs")
    host = run_local(PipelineSettings(image_lock=REPO_ROOT / LOCAL_IMAGE_LOCK,
                                      local_runs_dir=runs_dir / "host"))  # fmt: skip
    done = run(".venv/bin/yoda-pipeline", "run-docker", "--runs-dir", str(runs_dir / "docker"))
    assert "Local run finished (in the step images)" in done.stdout
    (docker,) = (runs_dir / "docker").iterdir()
    return {"host": host, "docker": docker}


def dockerfile_base(step: str) -> str:
    text = (REPO_ROOT / "images" / step / "Dockerfile").read_text()
    (base,) = re.findall(r"^ARG BASE_IMAGE=(\S+)$", text, re.MULTILINE)
    return base


def test_build_says_which_bases_are_stand_ins_and_prints_sizes(build_output: str) -> None:
    bases = re.findall(r"^base (\S+): (.*)$", build_output, re.MULTILINE)
    assert {name for name, _ in bases} == {dockerfile_base(step) for step in STEPS}
    assert {name.split("@")[0] for name, _ in bases} == {
        "python:3.11.14-slim-bookworm", "cicirello/pyaction:3.11",
        "pytorch/pytorch:2.8.0-cuda12.9-cudnn9-runtime"}  # fmt: skip
    assert all(re.match(r"pulled|present|cannot be pulled here", how) for _, how in bases)
    for step in STEPS:
        assert re.search(rf"^{step} +\d+ MB +\d+s  ", build_output, re.MULTILINE), step


def test_lock_holds_four_digests_from_the_local_registry(lock: dict[str, str]) -> None:
    assert set(lock) == set(STEPS)
    for step, reference in lock.items():
        name = "yoda-" + step.replace("_", "-")
        assert re.fullmatch(rf"127\.0\.0\.1:\d+/yoda/{name}@sha256:[0-9a-f]{{64}}", reference)
        assert run("docker", "pull", "--quiet", reference).stdout.strip() == reference
    compiled = (REPO_ROOT / "build" / "pipeline.docker.yaml").read_text()
    assert all(f"image: {reference}" in compiled for reference in lock.values())


def test_lock_records_the_base_each_image_was_built_on(build_output: str) -> None:
    """The real base by its registry digest, or a stand-in by its image id and what it replaced."""
    bases = load_image_lock(REPO_ROOT / DOCKER_IMAGE_LOCK).bases
    assert set(bases) == set(STEPS)
    for step, base in bases.items():
        pinned = dockerfile_base(step)
        stand_in = re.fullmatch(rf"local stand-in (sha256:[0-9a-f]{{64}}) for {re.escape(pinned)}",
                                base)  # fmt: skip
        if stand_in is None:  # the real base, pulled here
            assert base == pinned or re.fullmatch(
                rf"{re.escape(pinned)}@sha256:[0-9a-f]{{64}}", base
            )
            continue
        tagged = pinned.split("@")[0]
        image_id = run("docker", "image", "inspect", "--format", "{{.Id}}", tagged).stdout.strip()
        assert stand_in.group(1) == image_id
        assert f"{step}: base {base}" in build_output


@pytest.mark.parametrize(
    ("step", "base"),
    [("data_transformation", "/usr/local/bin/python"), ("fine_tuning", "/opt/conda/bin/python"),
     ("inference", "/opt/conda/bin/python"), ("evaluation", "/usr/local/bin/python"),
     ("registry", "/usr/local/bin/python")],
)  # fmt: skip
def test_images_keep_the_real_bases_interpreter_and_run_as_root(
    lock: dict[str, str], step: str, base: str
) -> None:
    probe = "import sys, os; print(sys.executable, sys.version_info[:2], os.getuid())"
    done = run("docker", "run", "--rm", lock[step], "python", "-c", probe)
    assert done.stdout.split(maxsplit=1)[0] == base
    assert done.stdout.strip().endswith("(3, 11) 0")
    if step == "evaluation":
        assert run("docker", "run", "--rm", lock[step], "git", "--version").stdout.startswith("git")


def test_a_non_root_user_is_refused_at_once_with_the_fix(
    lock: dict[str, str], tmp_path: Path, sample_csv: Path
) -> None:
    """The evidence for root: as uid 10001, a step cannot write a root-owned mount."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out").chmod(0o755)
    done = run("docker", "run", "--rm", "--user", "10001",
               "-v", f"{tmp_path}:{tmp_path}", "-v", f"{sample_csv}:/data/raw.csv:ro",
               lock["data_transformation"], "yoda-data-transformation",
               "--raw-data-uri", "/data/raw.csv", "--train-output", f"{tmp_path}/out/train",
               "--test-output", f"{tmp_path}/out/test", check=False)  # fmt: skip
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and f"{tmp_path}/out" in line and "uid 10001" in line
    assert "as root" in line  # the fix
    assert list((tmp_path / "out").iterdir()) == []


def test_the_fine_tuning_image_trains_on_two_cpu_ranks(
    lock: dict[str, str], tmp_path: Path, tiny_model_dir: Path, sample_train_jsonl: Path
) -> None:
    """`--accelerator-count 2` in the real image: PyTorch's launcher, two gloo ranks, one set of
    outputs (what `make run-docker SET="accelerator_count=2"` runs in the fine-tuning task)."""
    out = tmp_path / "out"
    done = run("docker", "run", "--rm", "-e", "HF_HUB_OFFLINE=1", "-v", f"{tmp_path}:{tmp_path}",
               "-v", f"{tiny_model_dir}:/model:ro", "-v", f"{sample_train_jsonl}:/data/train:ro",
               lock["fine_tuning"], "yoda-fine-tuning", "--train-dataset", "/data/train",
               "--base-model", "/model", "--model-output", f"{out}/model",
               "--metrics-output", f"{out}/metrics", "--quantization", "auto",
               "--max-steps", "4", "--accelerator-count", "2")  # fmt: skip
    assert "starting 2 ranks (gloo, on the CPU)" in done.stderr
    metrics = json.loads((out / "metrics" / "metrics.json").read_text())
    assert (metrics["world_size"], metrics["train_steps"]) == (2, 4)
    assert sorted(p.name for p in out.iterdir()) == [
        ".metrics.yoda-output", ".model.yoda-output", "metrics", "model"]  # fmt: skip


def test_run_docker_gives_the_results_of_run_local(runs: dict[str, Path]) -> None:
    host, docker = runs["host"], runs["docker"]
    for task in TASKS:
        assert metadata(docker, task) == metadata(host, task), task
    for task, output in [("data-transformation-component", "train"),
                         ("data-transformation-component", "test"),
                         ("inference-component", "predictions"),
                         ("inference-component", "base_predictions"),
                         ("evaluation-component", "evaluation_results")]:  # fmt: skip
        docker_bytes = (task_dir(docker, task) / output).read_bytes()
        assert docker_bytes == (task_dir(host, task) / output).read_bytes(), output
    with (task_dir(docker, "inference-component") / "predictions").open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 5
    model = task_dir(docker, "fine-tuning-component") / "model"
    assert (model / "adapter_model.safetensors").is_file()
    assert not (model.parent / "model-checkpoints").exists(), "checkpoints are removed at the end"


def test_the_serving_container_answers_like_the_batch_step(
    lock: dict[str, str], runs: dict[str, Path]
) -> None:
    """The inference image as Vertex AI runs it online: yoda-serve, the model by AIP_STORAGE_URI,
    asked over HTTP from outside the container."""
    import urllib.request

    model = task_dir(runs["docker"], "champion-component") / "model"
    # the base model the adapter names: on Vertex a hub id, here the tiny model the run used
    base = json.loads((model / "adapter_config.json").read_text())["base_model_name_or_path"]
    predictions = task_dir(runs["docker"], "inference-component") / "predictions"
    with predictions.open(newline="") as handle:
        first = next(csv.DictReader(handle))
    port = free_port()
    container = run("docker", "run", "--detach", "-p", f"127.0.0.1:{port}:8080",
                    "-e", "AIP_STORAGE_URI=/model", "-e", "AIP_HTTP_PORT=8080",
                    "-v", f"{model}:/model:ro", "-v", f"{base}:{base}:ro", lock["inference"],
                    "yoda-serve", "--quantization", "auto").stdout.strip()  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(f"{url}/health", "yoda-serve in its image", timeout_s=120,
                           log=lambda: run("docker", "logs", container).stderr[-2000:])  # fmt: skip
        body = json.dumps({"instances": [{"text": first["user_input"]}]}).encode()
        with urllib.request.urlopen(f"{url}/predict", data=body, timeout=60) as response:
            answer = json.loads(response.read())
        assert answer == {"predictions": [{"response": first["extracted_response"]}]}
    finally:
        run("docker", "rm", "--force", container, check=False)


def test_a_three_recipe_sweep_runs_in_the_images(lock: dict[str, str], tmp_path: Path) -> None:
    """`make run-docker SET='sweep=[…]'`: the fine-tuning image once per recipe, the champion in
    the registry image, by validation answer loss (the slow recipe, a learning rate a thousand
    times smaller, loses)."""
    sweep = [{"learning_rate": 5e-2}, {"learning_rate": 5e-5}, {"lora_r": 4}]
    done = run(".venv/bin/yoda-pipeline", "run-docker", "--runs-dir", str(tmp_path),
               "--set", f"sweep={json.dumps(sweep)}")  # fmt: skip
    assert "Local run finished (in the step images)" in done.stdout
    (run_dir,) = tmp_path.iterdir()
    rows = json.loads((task_dir(run_dir, "champion-component") / "metrics" / "sweep.json")
                      .read_text())  # fmt: skip
    assert [row["recipe"] for row in rows] == sweep
    assert all(row["status"] == "finished" for row in rows) and not rows[1]["champion"]
    assert len(list(run_dir.glob("outputs/*/**/fine-tuning-component"))) == 3
