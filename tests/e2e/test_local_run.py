"""The compiled pipeline run end to end by KFP's local runner (subprocesses, no Docker).

Two full runs are shared by the tests of this module: the offline default (``run_local``), and
one through the CLI with overrides (raw data from ``gs://``, another target column, ``--set``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_google_api import FakeApi
from fake_vertex import VertexState, fake_vertex

from yoda_pipeline.cli import main
from yoda_pipeline.offline import ensure_tiny_model, offline_settings, run_local
from yoda_pipeline.settings import LOCAL_IMAGE_LOCK, PipelineSettings
from yoda_step_io import StepError
from yoda_step_io.serving import SERVING

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCK = str(REPO_ROOT / LOCAL_IMAGE_LOCK)
FUSE_GUARD = Path(__file__).resolve().parents[1] / "fuse_guard"
STEP_SCRIPTS = ("yoda-data-transformation", "yoda-fine-tuning", "yoda-inference", "yoda-evaluation")


#: The override run's sweep: a good recipe, one far slower to learn (a thousand times smaller
#: learning rate), and one that fails (no 16k-token sequence can be packed from the sample).
SWEEP = [{"learning_rate": 5e-2}, {"learning_rate": 5e-5}, {"max_seq_length": 16384}]


def task_dir(run_dir: Path, task: str) -> Path:
    (found,) = run_dir.glob(f"outputs/*/{task}")
    return found


def recipe_dir(run_dir: Path, recipe: int) -> Path:
    """The fine-tuning task of one recipe (from 1) of a run's sweep."""
    (found,) = run_dir.glob(f"outputs/*/for-loop-*-iteration-{recipe - 1}/fine-tuning-component")
    return found


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def output_metadata(task: Path, output: str) -> dict[str, Any]:
    executor_output = json.loads((task / "executor_output.json").read_text())
    metadata: dict[str, Any] = executor_output["artifacts"][output]["artifacts"][0]["metadata"]
    return metadata


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("local-runs")


@pytest.fixture(scope="module")
def fuse_guard_log(runs_dir: Path) -> Path:
    return runs_dir.with_name(f"{runs_dir.name}-fuse-guard.log")


@pytest.fixture(scope="module")
def vertex() -> Iterator[tuple[FakeApi, VertexState]]:
    """The Vertex AI stand-in the registration step talks to (tests/fake_vertex.py)."""
    with fake_vertex() as (api, state):
        yield api, state


@pytest.fixture(scope="module")
def offline_env(
    tiny_model_dir: Path, gcs_emulator_host: str, runs_dir: Path, fuse_guard_log: Path,
    vertex: tuple[FakeApi, VertexState],
) -> Iterator[None]:  # fmt: skip
    """The runs' environment: every step process renames as on Vertex AI's gcsfuse mount, which
    the runs folder stands in for (``tests/fuse_guard/sitecustomize.py``); Cloud Storage and
    Vertex AI are the emulator and the stand-in."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("YODA_VERTEX_API_ENDPOINT", vertex[0].url)
        patch.setenv("YODA_TINY_MODEL_DIR", str(tiny_model_dir))
        patch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator_host)
        patch.setenv(
            "PYTHONPATH", os.pathsep.join([str(FUSE_GUARD), os.environ.get("PYTHONPATH", "")])
        )
        patch.setenv("YODA_FUSE_GUARD_ROOT", str(runs_dir))
        patch.setenv("YODA_FUSE_GUARD_LOG", str(fuse_guard_log))
        yield


@pytest.fixture(scope="module")
def default_run_and_console(offline_env: None, runs_dir: Path) -> tuple[Path, str]:
    """``make run-local``'s run (the offline defaults, long enough to rotate checkpoints) and
    what it printed, into a log rather than a terminal."""
    console = io.StringIO()
    with contextlib.redirect_stdout(console):
        run = run_local(PipelineSettings(image_lock=Path(LOCK), local_runs_dir=runs_dir))
    return run, console.getvalue()


@pytest.fixture(scope="module")
def default_run(default_run_and_console: tuple[Path, str]) -> Path:
    return default_run_and_console[0]


def test_a_log_gets_progress_lines_not_bars(default_run_and_console: tuple[Path, str]) -> None:
    console = default_run_and_console[1]
    assert "\r" not in console and "\x1b[" not in console, "a redrawn bar or colour in a log"
    assert not re.search(r"\d+it/s\]|s/it\]|\|[#█]", console), "a tqdm bar in a log"
    training = re.findall(r"training: (\d+)/30 \((\d+)%\) [\d.]+ steps/s, (ETA|[\d ]+s in all)"
                          r".*tokens/s", console)  # fmt: skip
    assert 5 <= len(training) <= 21, "one line every few percent"
    assert training[-1][:2] == ("30", "100")
    assert any(eta == "ETA" for *_, eta in training)
    for model in ("fine-tuned", "base"):
        assert re.search(rf"generating \({model}\): 5/5 \(100%\) [\d.]+ samples/s.*tokens/s",
                         console)  # fmt: skip
    assert re.search(r"scoring: 5/5 \(100%\) [\d.]+ samples/s", console)
    assert "{'loss':" not in console, "the Trainer's printed dicts"
    # each of the seven steps that ran says where its time went (make bench reads these lines)
    assert len(re.findall(r"timing: start [\d.]+ s \| .*work [\d.]+ s", console)) == 7


@pytest.fixture(scope="module")
def override_run(offline_env: None, runs_dir: Path, default_run: Path, sample_csv: Path) -> Path:
    from yoda_step_io.gcs import storage_client

    client = storage_client()
    bucket = client.bucket("yoda-local-run")
    if not bucket.exists():
        client.create_bucket("yoda-local-run")
    bucket.blob("raw.csv").upload_from_filename(str(sample_csv))
    main(["run-local", "--image-lock", LOCK, "--runs-dir", str(runs_dir),
          "--raw-data-uri", "gs://yoda-local-run/raw.csv", "--target-column", "translation",
          "--test-fraction", "0.5", "--set", "lora_r=4", "--set", "max_steps=2",
          "--set", "max_new_tokens=3", "--set", f"sweep={json.dumps(SWEEP)}",
          # a permissive gate: the tiny model passes it and is registered (with the stand-in)
          "--set", "gate_min_score=0", "--set", "gate_min_uplift_vs_base=-1",
          "--set", "gate_min_uplift_vs_echo=-1", "--set", "project_id=yoda-project",
          "--set", "region=europe-west4"])  # fmt: skip
    (run,) = set(runs_dir.iterdir()) - {default_run}
    return run


@pytest.mark.slow  # a second whole-pipeline run (the sweep's)
def test_every_step_ran_under_the_gcsfuse_guard_and_renamed_no_directory(
    default_run: Path, override_run: Path, fuse_guard_log: Path, runs_dir: Path
) -> None:
    lines = fuse_guard_log.read_text(encoding="utf-8").splitlines()
    started = [line for line in lines if " guarded " in line]
    for script in STEP_SCRIPTS:
        runs = 1 + len(SWEEP) if script == "yoda-fine-tuning" else 2  # once per recipe
        assert sum(script in line for line in started) == runs, f"{script} ran unguarded"
    # Outside the "mount", libraries may fall back by themselves (datasets' cache moves its
    # folder with shutil.move, which copies when the rename fails); on it, nothing is refused.
    assert [line for line in lines if " refused " in line and str(runs_dir) in line] == []
    # no step imports what it does not use (a CPU run quantises nothing; inference compiles and
    # shards nothing): the guard records what each process had imported when it ended
    scripts = {line.split()[0]: line for line in started}
    ended = {line.split()[0]: line for line in lines if " exit imported [" in line}
    for pid, line in scripts.items():
        imported = ended[pid].rsplit("[", 1)[1].rstrip("]").split()
        assert "bitsandbytes" not in imported, line
        if "yoda-inference" in line:
            assert imported == [], line
    # the Trainer wrote and rotated its checkpoints (save_total_limit) on the guarded "mount"
    assert any(re.search(r" rmtree .*/model-checkpoints/checkpoint-\d+$", line) for line in lines)


def test_data_step_outputs(default_run: Path) -> None:
    assert (default_run / "pipeline.yaml").is_file()
    data = task_dir(default_run, "data-transformation-component")
    train, test = read_jsonl(data / "train"), read_jsonl(data / "test")
    assert (len(train), len(test)) == (43, 5)
    assert train[0]["messages"][0]["role"] == "user"
    meta = output_metadata(data, "test")
    assert meta["rows"] == 5 and meta["rows_read"] == 48
    assert meta["source"].endswith("yoda_sample.csv")


def test_fine_tuning_outputs(default_run: Path, tiny_model_dir: Path) -> None:
    tuned = recipe_dir(default_run, 1)
    assert (tuned / "model" / "adapter_model.safetensors").is_file()
    assert list((tuned / "metrics").rglob("events.out.tfevents.*"))
    metrics = output_metadata(tuned, "metrics")
    assert metrics["train_steps"] == 30
    assert math.isfinite(metrics["train_loss"]) and math.isfinite(metrics["eval_loss"])
    model_meta = output_metadata(tuned, "model")
    assert model_meta["base_model"] == str(tiny_model_dir.resolve())
    assert model_meta["quantization"] == "auto"
    assert model_meta["compute_dtype_used"] == "float32"  # the CPU computes in float32
    # the tiny model's content hash is recorded, and the inference step loaded that revision
    from yoda_step_io.models import folder_revision

    assert model_meta["base_model_revision"] == folder_revision(tiny_model_dir)
    inference = output_metadata(task_dir(default_run, "inference-component"), "predictions")
    assert inference["base_model_revision"] == model_meta["base_model_revision"]


def test_inference_outputs(default_run: Path) -> None:
    test = read_jsonl(task_dir(default_run, "data-transformation-component") / "test")
    inference = task_dir(default_run, "inference-component")
    with (inference / "predictions").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["user_input", "reference", "extracted_response"]
    assert [r["user_input"] for r in rows] == [t["messages"][0]["content"] for t in test]
    assert [r["reference"] for r in rows] == [t["messages"][1]["content"] for t in test]
    predictions_meta = output_metadata(inference, "predictions")
    assert predictions_meta["rows"] == 5 and predictions_meta["samples_per_second"] > 0
    # the base model's answers: same header, same sentences, the adapter switched off
    with (inference / "base_predictions").open(encoding="utf-8", newline="") as handle:
        base_rows = list(csv.DictReader(handle))
    assert [(r["user_input"], r["reference"]) for r in base_rows] == [
        (r["user_input"], r["reference"]) for r in rows]  # fmt: skip
    assert output_metadata(inference, "base_predictions")["adapter"] == "disabled"


def test_evaluation_outputs(default_run: Path) -> None:
    evaluation = task_dir(default_run, "evaluation-component")
    with (evaluation / "evaluation_results").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5
    metric_columns = ["rouge_l", "rouge_1", "bleu", "levenshtein_similarity",
                      "jaro_winkler_similarity", "exact_match", "string_present"]  # fmt: skip
    base_columns = [f"base_{m}" for m in metric_columns]
    assert list(rows[0]) == ["user_input", "reference", "response", *metric_columns,
                             "base_response", *base_columns]  # fmt: skip
    assert all(0.0 <= float(row[m]) <= 1.0 for row in rows for m in metric_columns + base_columns)
    aggregates = output_metadata(evaluation, "metrics")
    assert aggregates["samples"] == 5
    assert all(math.isfinite(v) for v in aggregates.values())
    assert json.loads((evaluation / "metrics" / "metrics.json").read_text()) == aggregates
    # the three rows and the uplifts, in the metadata Vertex shows
    for metric in metric_columns:
        for key in (f"{metric}_mean", f"base_{metric}_mean", f"echo_{metric}_mean"):
            assert key in aggregates, key
        assert aggregates[f"{metric}_uplift_vs_base"] == pytest.approx(
            aggregates[f"{metric}_mean"] - aggregates[f"base_{metric}_mean"])  # fmt: skip
    for prefix in ("", "base_"):
        assert {f"{prefix}{kind}_answers" for kind in ("empty", "repeated", "cut")} <= set(
            aggregates)  # fmt: skip
    # the inference step's cut counts reached the evaluation through KFP's executor input
    inference = task_dir(default_run, "inference-component")
    assert aggregates["cut_answers"] == output_metadata(inference, "predictions")["cut_answers"]


def test_report_artifacts_and_the_summary_at_the_end(
    default_run_and_console: tuple[Path, str],
) -> None:
    run, console = default_run_and_console
    report = task_dir(run, "report-component")
    html, markdown = report / "html", report / "markdown"
    assert html.read_text().startswith("<!doctype html>") and html.stat().st_size < 1_000_000
    assert markdown.read_text().startswith("# Yoda fine-tuning report")
    meta = output_metadata(report, "html")
    assert meta["samples"] == 5 and meta["bytes"] == html.stat().st_size
    # `make run-local` ends on the headline table and the report's path
    tail = console.rstrip().splitlines()[-10:]
    assert [line.split()[0] for line in tail[1:6]] == ["fine-tuned", "base", "echo", "uplift",
                                                      "uplift"]  # fmt: skip
    assert tail[-2].startswith("Quality gate: not passed, not registered")
    assert tail[-1] == f"HTML report: {html}"


def test_report_prints_aggregates_and_extremes(
    default_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["report", str(default_run), "--by", "bleu", "--top", "2"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[1:6]] == ["fine-tuned", "base", "echo", "uplift",
                                                       "uplift"]  # fmt: skip
    assert "\n5 samples\n" in out and "base model: " in out
    assert "rouge_l " in out and "\nBest 2 by bleu:" in out and "\nWorst 2 by bleu:" in out
    html = task_dir(default_run, "report-component") / "html"
    assert lines[-2].startswith("Quality gate: not passed, not registered (rouge_l 0.000 < ")
    assert lines[-1] == f"HTML report: {html}"


def chromium() -> str:
    """Debian's chromium, installed where missing (CI runs as root with apt)."""
    found = shutil.which("chromium")
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=False,
                       capture_output=True, env=env)  # fmt: skip
        found = shutil.which("chromium")
    if found is None:
        pytest.fail("chromium is missing and cannot be installed here: apt-get install chromium")
    return found


def test_the_html_report_in_a_real_browser(default_run: Path, tmp_path: Path) -> None:
    html = task_dir(default_run, "report-component") / "html"
    page = tmp_path / "report.html"  # the artifact has no suffix; a browser wants one
    shutil.copy(html, page)
    flags = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--enable-logging=stderr", "--v=0", "--hide-scrollbars",
             "--window-size=1200,2000"]  # fmt: skip
    rendered = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True,
                              text=True, timeout=120)  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    console = [line for line in rendered.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], "the page logged to the console"
    dom = rendered.stdout
    assert 'id="headline"' in dom and dom.count("<svg") == 2 and "<polyline" in dom
    assert "Best 5 by rouge_l" in dom and "Worst 5 by rouge_l" in dom
    shot = tmp_path / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", page.as_uri()], capture_output=True,
                   timeout=120, check=True)  # fmt: skip
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


#: Appended to a copy of the report: how the headline table lays out, written into the DOM.
MEASURE = """<script>
const table = document.getElementById("headline");
const cells = [...table.querySelectorAll("th")].filter((th) => th.textContent.trim());
const wrapped = cells.filter((th) => {
  const range = document.createRange(); range.selectNodeContents(th);
  return range.getClientRects().length > 1;
}).map((th) => th.textContent);
document.body.dataset.layout = JSON.stringify({wrapped,
  table: table.getBoundingClientRect().right, page: document.documentElement.scrollWidth,
  width: window.innerWidth});
</script>"""


@pytest.mark.parametrize("width", [800, 1280])
def test_the_headline_table_reads_in_a_narrow_pane(
    default_run: Path, tmp_path: Path, width: int
) -> None:
    """Vertex AI's "View HTML" pane and a laptop window are narrow: at 800 and 1280 px every
    label of the headline table sits on one line and nothing scrolls sideways."""
    html = task_dir(default_run, "report-component") / "html"
    page = tmp_path / "report.html"
    page.write_text(html.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"))
    flags = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", f"--window-size={width},1200"]  # fmt: skip
    rendered = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True,
                              text=True, timeout=120)  # fmt: skip
    found = re.search(r'data-layout="([^"]*)"', rendered.stdout)
    assert found, rendered.stderr[-2000:]
    layout = json.loads(found.group(1).replace("&quot;", '"'))
    assert layout["width"] == width
    assert layout["wrapped"] == [], f"labels broken over lines at {width} px"
    assert layout["table"] <= width and layout["page"] <= width, layout


@pytest.mark.slow  # a second whole-pipeline run (the sweep's)
def test_each_run_has_its_own_folder_and_cli_overrides_apply(
    default_run: Path, override_run: Path, runs_dir: Path
) -> None:
    assert sorted(runs_dir.iterdir()) == sorted([default_run, override_run])
    test = read_jsonl(task_dir(override_run, "data-transformation-component") / "test")
    assert len(test) == 24
    assert all(not r["messages"][1]["content"].endswith("hrrrm.") for r in test)
    tuned = task_dir(override_run, "champion-component")
    assert json.loads((tuned / "model" / "adapter_config.json").read_text())["r"] == 4
    assert output_metadata(tuned, "metrics")["train_steps"] == 2
    predictions = task_dir(override_run, "inference-component")
    assert output_metadata(predictions, "predictions")["max_new_tokens"] == 3
    evaluation = task_dir(override_run, "evaluation-component")
    assert output_metadata(evaluation, "metrics")["samples"] == 24


@pytest.mark.slow  # a second whole-pipeline run (the sweep's)
def test_the_sweep_picks_the_lower_validation_loss_and_marks_the_failed_recipe(
    default_run: Path, override_run: Path
) -> None:
    """The champion is the recipe with the lower validation answer loss (its adapter goes on,
    byte for byte); the failed recipe is in the table with its reason; the test split is not
    what chose."""
    rows = json.loads((task_dir(override_run, "champion-component") / "metrics" /
                       "sweep.json").read_text())  # fmt: skip
    assert [row["recipe"] for row in rows] == SWEEP
    good, slow, failed = rows
    assert good["champion"] and not slow["champion"] and not failed["champion"]
    assert good["validation_answer_loss"] < slow["validation_answer_loss"]
    assert failed["status"] == "failed" and "too little text to pack" in failed["reason"]
    assert good["curve"] and slow["curve"] and failed["curve"] == []
    champion = task_dir(override_run, "champion-component") / "model"
    weights = "adapter_model.safetensors"
    assert (champion / weights).read_bytes() == (recipe_dir(override_run, 1) / "model" /
                                                 weights).read_bytes()  # fmt: skip
    assert json.loads((champion / "recipe.json").read_text()) == SWEEP[0]
    assert not (recipe_dir(override_run, 3) / "model").exists(), "no model from a failed recipe"
    report = (task_dir(override_run, "report-component") / "markdown").read_text()
    assert "## Sweep: 3 recipes" in report and "The champion: learning_rate=0.05." in report
    default = json.loads((task_dir(default_run, "champion-component") / "metrics" /
                          "sweep.json").read_text())  # fmt: skip
    assert [row["recipe"] for row in default] == [{}] and default[0]["champion"]


def test_offline_settings_fill_in_only_what_is_unset(
    monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    monkeypatch.setenv("YODA_TINY_MODEL_DIR", str(tiny_model_dir))
    filled = offline_settings(PipelineSettings())
    assert filled.raw_data_uri.endswith("yoda_sample.csv")
    assert (filled.base_model, filled.quantization) == (str(tiny_model_dir.resolve()), "auto")
    kept = offline_settings(PipelineSettings(base_model="/models/phi3", quantization="none"))
    assert (kept.base_model, kept.quantization) == ("/models/phi3", "none")


@pytest.mark.slow  # generates a model in a process
def test_tiny_model_is_generated_when_missing(tmp_path: Path) -> None:
    generated = ensure_tiny_model(tmp_path / "tiny")
    assert (generated / "config.json").is_file() and (generated / "tokenizer.json").is_file()


def test_set_refuses_unknown_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run-local", "--set", "lora_rank=4"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("error: --set 'lora_rank=4': expected NAME=VALUE")


def test_failed_task_stops_the_run_without_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("YODA_TINY_MODEL_DIR", str(tiny_model_dir))
    empty = tmp_path / "empty.csv"  # only the data can tell: it passes the pre-flight
    empty.write_text("")
    with pytest.raises(SystemExit) as exit_info:
        main(["run-local", "--image-lock", LOCK, "--runs-dir", str(tmp_path / "runs"),
              "--raw-data-uri", str(empty)])  # fmt: skip
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert "\x1b[" not in captured.out, "colour codes in a log that is not a terminal"
    # the last line names the failing step and repeats the step's own line, streamed by the runner
    step, reason = captured.err.splitlines()[-1].split(" failed: ", 1)
    assert step == "error: step data-transformation-component"
    assert str(empty) in reason and "is empty" in reason
    assert f"    error: {reason}\n" in captured.out
    assert not list((tmp_path / "runs").glob("*/outputs/*/*/train"))


def test_the_gate_with_default_thresholds_skips_registration(
    default_run_and_console: tuple[Path, str],
) -> None:
    run, console = default_run_and_console
    decision = output_metadata(task_dir(run, "gate-component"), "decision")
    assert decision["passed"] is False and decision["min_score"] == 0.5
    assert "rouge_l 0.000 < floor 0.500" in decision["reasons"]
    assert not list(run.glob("outputs/*/register-component"))
    assert "\nQuality gate: not passed, not registered (rouge_l 0.000 < floor 0.500; " in console


@pytest.mark.slow  # a second whole-pipeline run (the sweep's)
def test_a_permissive_gate_registers_the_adapter_served_by_the_inference_image(
    override_run: Path, vertex: tuple[FakeApi, VertexState]
) -> None:
    api, state = vertex
    decision = output_metadata(task_dir(override_run, "gate-component"), "decision")
    assert decision["passed"] is True
    uploads = [r for r in api.requests if r.path.endswith("/models:upload")]
    assert len(uploads) == 1, "registered once, by the run whose gate passed"
    model = uploads[0].body["model"]
    lock = json.loads(Path(LOCK).read_text())
    container = model["containerSpec"]
    assert container["imageUri"] == lock["inference"]  # the inference image, by digest
    # the serving contract, as yoda-serve answers it (tests/inference/test_serve.py)
    assert container["command"] == list(SERVING.command)
    assert (container["predictRoute"], container["healthRoute"]) == (
        SERVING.predict_route, SERVING.health_route)  # fmt: skip
    assert container["ports"] == [{"containerPort": SERVING.port}]
    assert container["env"] == [{"name": k, "value": v} for k, v in SERVING.environment.items()]
    # a local model folder is staged into Cloud Storage (the emulator) by the real client
    assert model["artifactUri"].startswith("gs://yoda-project-vertex-staging-europe-west4")
    assert model["displayName"] == "yoda-phi3" and "default" in model["versionAliases"]
    assert model["labels"]["yoda_metric"] == "rouge_l"
    assert model["labels"]["yoda_run"].startswith("yoda-phi3-finetuning")
    assert model["versionDescription"].endswith('recipe {"learning_rate": 0.05}')
    assert "parentModel" not in uploads[0].body, "the first registration creates the model"
    (evaluation,) = state.evaluations
    scored = output_metadata(task_dir(override_run, "evaluation-component"), "metrics")
    # the schema's own field for ROUGE-L; the project's full set rides in the metadata
    assert evaluation["metrics"]["rougeLSum"] == pytest.approx(scored["rouge_l_mean"])
    assert evaluation["metadata"]["yoda_metrics"]["rouge_l_mean"] == pytest.approx(
        scored["rouge_l_mean"]
    )
    registered = task_dir(override_run, "register-component")
    executor_output = json.loads((registered / "executor_output.json").read_text())
    (artifact,) = executor_output["artifacts"]["vertex_model"]["artifacts"]
    name = artifact["metadata"]["resourceName"]
    assert re.fullmatch(r"projects/yoda-project/locations/europe-west4/models/\d+@1", name)
    assert artifact["uri"] == f"https://europe-west4-aiplatform.googleapis.com/v1/{name}"
    assert artifact["metadata"]["is_default_version"] is True


def test_smollm2_brings_its_cpu_recipe_and_needs_the_full_data(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``base_model=smollm2``: the converted folder and the CPU recipe where the user set
    nothing else; without raw data, one line says what to pass (the sample is too small)."""
    from yoda_pipeline import offline

    monkeypatch.setattr(offline, "ensure_smollm2", lambda folder: tmp_path / "smollm2")
    with pytest.raises(StepError, match="RAW_DATA=hf://datasets/dvgodoy/yoda_sentences"):
        offline_settings(PipelineSettings(base_model="smollm2"))
    filled = offline_settings(
        PipelineSettings(base_model="smollm2", raw_data_uri="data.csv", learning_rate=1e-3)
    )
    assert filled.base_model == str(tmp_path / "smollm2")
    assert (filled.max_steps, filled.learning_rate) == (60, 1e-3), "the user's value stays"
    assert filled.gradient_checkpointing is False and filled.quantization == "auto"
    assert (filled.packing, filled.completion_only_loss) == (False, True)
    assert filled.lora_target_modules == "auto"


def test_a_generator_that_fails_is_one_line(tmp_path: Path) -> None:
    """The tiny model's or SmolLM2's generator failing: its reason in one line, not a traceback."""
    from yoda_pipeline.offline import ensure_generated

    with pytest.raises(StepError, match=r"could not make x in .*: .*No module named") as error:
        ensure_generated(tmp_path / "m", "yoda_fine_tuning.no_such_generator", "x")
    assert "\n" not in str(error.value) and not (tmp_path / "m").exists()
