"""cloudbuild.yaml, checked without GCP: its structure and substitutions, then its step scripts
run in order with Cloud Build's substitutions applied and stub docker/gcloud/pip/uv on PATH (the
compile step runs the real `yoda-pipeline compile` on the lock the scripts wrote); and the cloud.mk
targets that submit it."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from yoda_pipeline.images import STEPS, load_image_lock

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILT_INS = {"PROJECT_ID", "PROJECT_NUMBER", "BUILD_ID", "LOCATION", "COMMIT_SHA", "SHORT_SHA"}
VALUES = {"PROJECT_ID": "test-project", "SHORT_SHA": "abc1234", "_REGION": "europe-west4",
          "_REPOSITORY": "yoda", "_BUCKET": "test-bucket", "_SUBMIT": "false"}  # fmt: skip
SUBSTITUTION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
STUBS = {
    # Nothing is here before it is pulled; pulling `:latest` fails as on a first build, a base
    # pulls. `image inspect` prints the stand-in label ($STANDIN for a step image, $BASE_STANDIN for
    # a base), an image id, or a registry digest derived from the name.
    "docker": 'echo "docker $*" >> "$LOG"\nlast="${@: -1}"\ncase "$1" in\n'
    'pull) case "$last" in *:latest) exit 1 ;; esac ;;\nimage) case "$4" in\n'
    '  *Labels*) case "$last" in *pkg.dev/*|127.0.0.1*) echo "${STANDIN:-}" ;;'
    ' *) echo "${BASE_STANDIN:-}" ;; esac ;;\n'
    '  *RepoDigests*) name="${last%:*}"; echo "$name@sha256:$(printf %s "$name"'
    ' | sha256sum | cut -c1-64)" ;;\n'
    '  *.Id*) echo "sha256:$(printf %s "$last" | sha256sum | cut -c1-64)" ;;\n'
    "  *) exit 1 ;;\nesac ;;\nesac\n",
    "gcloud": 'echo "gcloud $*" >> "$LOG"\n',
    "pip": 'echo "pip $*" >> "$LOG"\n',
    "uv": 'echo "uv $*" >> "$LOG"\nenv | grep "^YODA_" >> "$LOG" || true\n'
    'while [ $# -gt 0 ] && [ "$1" != compile ] && [ "$1" != submit ]; do shift; done\n'
    'if [ "$1" = compile ]; then exec "$YODA_PIPELINE_BIN" "$@"; fi\n',
}


@pytest.fixture(scope="module")
def build() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((REPO_ROOT / "cloudbuild.yaml").read_text())
    return config


def steps_by_id(build: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["id"]: step for step in build["steps"]}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def dockerfile_base(step: str) -> str:
    """The base that images/STEP/Dockerfile names (its ARG BASE_IMAGE default)."""
    text = (REPO_ROOT / "images" / step / "Dockerfile").read_text()
    (base,) = re.findall(r"^ARG BASE_IMAGE=(\S+)$", text, re.MULTILINE)
    return base


def image_name(step: str, values: dict[str, str] = VALUES) -> str:
    return (
        f"{values['_REGION']}-docker.pkg.dev/{values['PROJECT_ID']}/{values['_REPOSITORY']}/"
        f"yoda-{step.replace('_', '-')}"
    )


def substitute(text: str, values: dict[str, str]) -> str:
    """What Cloud Build does: `$$` -> `$`, `$NAME`/`${NAME}` -> the value (empty if unset)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return "$" if name is None else values.get(name, "")

    return SUBSTITUTION.sub(replace, text)


def script_error_line(stderr: str) -> str:
    """A script's refusal: its stderr is one ``error:`` line, returned."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def run_step(step: dict[str, Any], workspace: Path, values: dict[str, str]) -> str:
    """Run one step's `bash -c` script as Cloud Build would (substituted env and args)."""
    assert step["entrypoint"] == "bash" and step["args"][0] == "-c"
    env = dict(os.environ, PATH=f"{workspace / 'stubs'}{os.pathsep}{os.environ['PATH']}")
    env.update(item.split("=", 1) for item in (substitute(e, values) for e in step.get("env", [])))
    script = substitute(step["args"][1], values)
    command = ["bash", "-c", script]
    done = subprocess.run(command, cwd=workspace, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"step {step['id']}: {done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """/workspace with the stub tools; their calls are logged to $LOG."""
    (tmp_path / "images").mkdir()
    for script in ("build-push.sh", "write-lock.sh"):  # what the steps run, from the repository
        shutil.copy2(REPO_ROOT / "images" / script, tmp_path / "images" / script)
    for step in STEPS:  # build-push.sh reads each Dockerfile's base
        (tmp_path / "images" / step).mkdir()
        shutil.copy2(REPO_ROOT / "images" / step / "Dockerfile", tmp_path / "images" / step)
    (tmp_path / "stubs").mkdir()
    for name, body in STUBS.items():
        (tmp_path / "stubs" / name).write_text("#!/usr/bin/env bash\n" + body)
        (tmp_path / "stubs" / name).chmod(0o755)
    monkeypatch.setenv("LOG", str(tmp_path / "calls.log"))
    monkeypatch.setenv("YODA_PIPELINE_BIN", str(Path(sys.executable).with_name("yoda-pipeline")))
    return tmp_path


def test_substitutions_are_declared_with_safe_defaults(build: dict[str, Any]) -> None:
    assert set(build["substitutions"]) == {
        "_REGION", "_REPOSITORY", "_BUCKET", "_SUBMIT",
        "_RAW_DATA_URI", "_SERVICE_ACCOUNT"}  # fmt: skip
    assert build["substitutions"]["_SUBMIT"] == "false"


def strings(node: object) -> list[str]:
    if isinstance(node, dict):
        return [text for value in node.values() for text in strings(value)]
    if isinstance(node, list):
        return [text for value in node for text in strings(value)]
    return [node] if isinstance(node, str) else []


def test_every_dollar_is_escaped_or_a_known_substitution(build: dict[str, Any]) -> None:
    text = "\n".join(strings(build))
    names = {m.group(1) or m.group(2) for m in SUBSTITUTION.finditer(text)} - {None}
    assert names - BUILT_INS - set(build["substitutions"]) == set()
    # the steps run the scripts `make build-images-local` runs too
    assert 'bash images/build-push.sh "$$STEP" "$$IMAGE" "$SHORT_SHA" build/digests' in text
    assert "bash images/write-lock.sh build/digests images/digests.lock.json" in text


def test_options_suit_four_image_builds(build: dict[str, Any]) -> None:
    assert build["options"]["machineType"] == "E2_HIGHCPU_8"
    assert build["options"]["logging"] == "CLOUD_LOGGING_ONLY"
    assert int(build["timeout"].rstrip("s")) >= 3600


def ancestors(build: dict[str, Any], step_id: str) -> set[str]:
    """Steps that finish before `step_id` starts (no waitFor: every earlier step)."""
    ids = [step["id"] for step in build["steps"]]
    waits = {s["id"]: s.get("waitFor", ids[: ids.index(s["id"])]) for s in build["steps"]}
    found: set[str] = set()
    pending = [w for w in waits[step_id] if w != "-"]
    while pending:
        current = pending.pop()
        found.add(current)
        pending += [w for w in waits[current] if w != "-" and w not in found]
    return found


def test_each_image_is_built_pushed_and_locked_before_compile(build: dict[str, Any]) -> None:
    steps = steps_by_id(build)
    built = {
        dict(e.split("=", 1) for e in s.get("env", []))["STEP"]: s["id"]
        for s in build["steps"]
        if any(e.startswith("STEP=") for e in s.get("env", []))
    }
    assert set(built) == set(STEPS)
    for step, step_id in built.items():
        env = dict(e.split("=", 1) for e in steps[step_id]["env"])
        name = "yoda-" + step.replace("_", "-")
        assert env["IMAGE"] == f"${{_REGION}}-docker.pkg.dev/$PROJECT_ID/${{_REPOSITORY}}/{name}"
        assert ancestors(build, step_id) == {"check"}  # the four build in parallel
    assert set(built.values()) <= ancestors(build, "image-lock")
    assert "image-lock" in ancestors(build, "compile")
    compile_script = steps["compile"]["args"][1]
    assert "--image-lock images/digests.lock.json --output build/pipeline.yaml" in compile_script
    assert "--package yoda-pipeline" in compile_script
    assert {"compile", "publish"} <= ancestors(build, "submit")


def test_build_scripts_push_images_lock_digests_compile_and_publish(
    build: dict[str, Any], workspace: Path
) -> None:
    for step in build["steps"]:
        run_step(step, workspace, VALUES)
    calls = (workspace / "calls.log").read_text()

    lock = load_image_lock(workspace / "images" / "digests.lock.json")
    for step in STEPS:
        image = image_name(step)
        pattern = re.escape(image)
        assert lock.image(step) == f"{image}@sha256:{sha256(image)}"
        assert f"docker pull --quiet {image}:latest" in calls
        # the base: pulled by its pinned digest, or by tag and then built on by the digest pulled
        base = dockerfile_base(step)
        name, _, digest = base.partition("@")
        if digest:
            assert lock.bases[step] == base
            assert f"docker pull --quiet {name.rsplit(':', 1)[0]}@{digest}\n" in calls
        else:
            assert lock.bases[step] == f"{base}@sha256:{sha256(base.rsplit(':', 1)[0])}"
            assert f"docker pull --quiet {base}\n" in calls
        assert re.search(
            rf"docker build --file images/{step}/Dockerfile "
            rf"--build-arg BASE_IMAGE={re.escape(lock.bases[step])} "
            rf"--cache-from {pattern}:latest .*"
            rf"--tag {pattern}:abc1234 --tag {pattern}:latest \.$", calls, re.MULTILINE,
        )  # fmt: skip
        assert (REPO_ROOT / "images" / step / "Dockerfile").is_file()
        assert f"docker push --quiet {image}:abc1234\n" in calls
        assert f"docker push --quiet {image}:latest\n" in calls

    compiled = (workspace / "build" / "pipeline.yaml").read_text()
    assert all(lock.image(step) in compiled for step in STEPS)
    for folder in ("abc1234", "latest"):
        assert (
            f"gcloud storage cp build/pipeline.yaml images/digests.lock.json "
            f"gs://test-bucket/pipelines/{folder}/\n"
        ) in calls
    assert "yoda-pipeline submit" not in calls


@pytest.mark.parametrize(
    ("image", "pushed"),
    [("europe-west4-docker.pkg.dev/p/yoda/yoda-inference", False),
     ("127.0.0.1:5000/yoda/yoda-inference", True), ("localhost:5000/yoda/yoda-inference", True)],
)  # fmt: skip
def test_an_image_on_a_stand_in_base_is_pushed_only_to_a_loopback_registry(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, image: str, pushed: bool
) -> None:
    standin = "pytorch/pytorch:2.8.0-cuda12.9-cudnn9-runtime"
    monkeypatch.setenv("STANDIN", standin)
    monkeypatch.setenv("PATH", f"{workspace / 'stubs'}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(["bash", "images/build-push.sh", "inference", image, "t", "digests"],
                          cwd=workspace, capture_output=True, text=True)  # fmt: skip
    calls = (workspace / "calls.log").read_text()
    assert ("docker push" in calls) is pushed
    assert (done.returncode == 0) is pushed, done.stderr
    if not pushed:
        assert done.returncode == 1
        line = script_error_line(done.stderr)
        assert all(part in line for part in (f"{image}:t", standin, "127.0.0.1")), line
        assert not (workspace / "digests").exists()


def build_push(workspace: Path, step: str, image: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{workspace / 'stubs'}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(["bash", "images/build-push.sh", step, image, "t", "digests"],
                          cwd=workspace, env=env, capture_output=True, text=True)  # fmt: skip


def test_a_local_stand_in_base_is_recorded_as_one(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = dockerfile_base("data_transformation")
    tagged = base.split("@")[0]
    monkeypatch.setenv("BASE_IMAGE", tagged)  # what build-local.sh passes for a stand-in
    monkeypatch.setenv("BASE_STANDIN", tagged)
    monkeypatch.setenv("STANDIN", tagged)
    done = build_push(workspace, "data_transformation", "127.0.0.1:5000/yoda/yoda-data")
    assert done.returncode == 0, done.stderr
    recorded = (workspace / "digests" / "data_transformation.base").read_text()
    assert recorded == f"local stand-in sha256:{sha256(tagged)} for {base}\n"
    calls = (workspace / "calls.log").read_text()
    assert (
        f"--build-arg BASE_IMAGE={tagged} " in calls and "docker pull --quiet python" not in calls
    )


@pytest.mark.parametrize("standin", ["", "python:3.12-slim"])
def test_base_image_may_only_name_a_stand_in_for_the_dockerfiles_base(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, standin: str
) -> None:
    base = dockerfile_base("registry")
    monkeypatch.setenv("BASE_IMAGE", "python:3.12-slim")
    monkeypatch.setenv("BASE_STANDIN", standin)
    done = build_push(workspace, "registry", "127.0.0.1:5000/yoda/yoda-registry")
    assert done.returncode == 1
    line = script_error_line(done.stderr)
    said = [f"stand-in for {standin}", f"not for {base}"] if standin else [
        "BASE_IMAGE=python:3.12-slim", "not a local stand-in", base]  # fmt: skip
    assert all(part in line for part in said), line
    assert "docker build" not in (workspace / "calls.log").read_text()


def test_write_lock_needs_every_base(workspace: Path) -> None:
    digests = workspace / "digests"
    digests.mkdir()
    for step in STEPS:
        (digests / step).write_text(f"{image_name(step)}@sha256:{sha256(step)}\n")
        (digests / f"{step}.base").write_text(f"{dockerfile_base('registry')}\n")
    write = ["bash", "images/write-lock.sh", str(digests), str(workspace / "lock.json")]
    assert subprocess.run(write, cwd=workspace, capture_output=True).returncode == 0
    lock = load_image_lock(workspace / "lock.json")
    assert lock.bases == dict.fromkeys(STEPS, dockerfile_base("registry"))
    (digests / "evaluation.base").unlink()
    done = subprocess.run(write, cwd=workspace, capture_output=True, text=True)
    assert done.returncode == 1
    line = script_error_line(done.stderr)
    assert "no evaluation.base" in line and str(digests) in line


@pytest.mark.parametrize("submit", ["true", "false"])
def test_submit_step_runs_only_when_asked(
    build: dict[str, Any], workspace: Path, submit: str
) -> None:
    values = {**VALUES, "_SUBMIT": submit, "_RAW_DATA_URI": "gs://test-bucket/data/yoda.csv",
              "_SERVICE_ACCOUNT": "runner@test-project.iam.gserviceaccount.com"}  # fmt: skip
    run_step(steps_by_id(build)["submit"], workspace, values)
    calls = (workspace / "calls.log").read_text() if (workspace / "calls.log").exists() else ""
    if submit == "false":
        assert calls == ""
        return
    assert "yoda-pipeline submit" in calls
    settings = {"YODA_PROJECT_ID=test-project", "YODA_REGION=europe-west4",
                "YODA_BUCKET=test-bucket", "YODA_IMAGE_LOCK=images/digests.lock.json",
                "YODA_RAW_DATA_URI=gs://test-bucket/data/yoda.csv",
                "YODA_SERVICE_ACCOUNT=runner@test-project.iam.gserviceaccount.com"}  # fmt: skip
    assert settings <= set(calls.splitlines())


@pytest.mark.parametrize("missing", ["_BUCKET", "SHORT_SHA"])
def test_check_step_stops_a_build_without_bucket_or_tag(
    build: dict[str, Any], workspace: Path, missing: str
) -> None:
    with pytest.raises(AssertionError, match=f"{missing} .*empty"):
        run_step(steps_by_id(build)["check"], workspace, {**VALUES, missing: ""})


def make(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("make") is None:
        pytest.skip("make not found")
    env = {k: v for k, v in os.environ.items() if not k.startswith("YODA_")}
    return subprocess.run(["make", "--no-print-directory", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True)  # fmt: skip


def test_make_build_images_passes_every_substitution() -> None:
    done = make("-n", "build-images", "PROJECT_ID=p", "REGION=r", "BUCKET=b", "IMAGE_TAG=abc1234")
    assert done.returncode == 0, done.stderr
    assert "--config=cloudbuild.yaml" in done.stdout
    passed = re.search(r"--substitutions=(\S+)", done.stdout)
    assert passed is not None
    assert dict(pair.split("=", 1) for pair in passed.group(1).split(",")) == {
        "_REGION": "r", "_REPOSITORY": "yoda", "_BUCKET": "b", "_SUBMIT": "false",
        "_RAW_DATA_URI": "", "_SERVICE_ACCOUNT": "", "SHORT_SHA": "abc1234",
    }  # fmt: skip
    assert "gs://b/pipelines/abc1234/digests.lock.json images/digests.lock.json" in done.stdout


@pytest.mark.parametrize(
    ("target", "missing"),
    [
        ("build-images", "PROJECT_ID"),
        ("build-images", "REGION"),
        ("trigger", "BUILD_SERVICE_ACCOUNT"),
    ],
)
def test_make_cloud_targets_name_a_missing_setting(target: str, missing: str) -> None:
    settings = ["PROJECT_ID=p", "REGION=r", "BUCKET=b", "GITHUB_OWNER=o", "GITHUB_REPO=r"]
    done = make("-n", target, *settings, f"{missing}=")
    assert done.returncode != 0
    assert f"{missing} is not set" in done.stderr and "gcloud" not in done.stdout
