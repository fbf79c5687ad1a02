"""The contract between steps, named once (yoda_step_io.contract): the evaluation's metrics have
one reader with one wording for every way the file can be wrong, and the names the readers of a
run look for are the compiled pipeline's."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from yoda_pipeline.compile import compile_pipeline
from yoda_pipeline.images import STEPS
from yoda_pipeline.report import EVALUATION_TASK, GATE_TASK, REGISTER_TASK, REPORT_TASK
from yoda_pipeline.report import read_aggregates as pipeline_aggregates
from yoda_pipeline.settings import PipelineSettings
from yoda_step_io import StepError
from yoda_step_io.contract import (
    DECISION,
    EVALUATION_RESULTS,
    HTML,
    METRICS,
    METRICS_FILE,
    MODEL,
    VERTEX_MODEL,
    MissingMetricsError,
    read_metrics,
)

SUFFIX = f": expected the evaluation step's {METRICS_FILE}, a JSON object of numbers"
#: a bad metrics file, and what its message names: the problem and the offending value
BAD = {
    "not UTF-8": (b'{"rouge_l_mean": "caf\xe9"}', ["not UTF-8", "(byte 21)"]),
    "not JSON": (b'{"rouge_l_mean": 0.8', ["not valid JSON", "line 1"]),
    "a list": (b"[0.8, 0.6]", ["holds [0.8, 0.6]", "not a JSON object"]),
    "a string": (b'{"rouge_l_mean": "0.8"}', ["holds 'rouge_l_mean': \"0.8\"", "not a number"]),
    "a boolean": (b'{"rouge_l_mean": true}', ["holds 'rouge_l_mean': true", "not a number"]),
}


def metrics_folder(tmp_path: Path, content: bytes) -> Path:
    folder = tmp_path / "evaluation-component" / METRICS
    folder.mkdir(parents=True)
    (folder / METRICS_FILE).write_bytes(content)
    return folder


@pytest.mark.parametrize("case", BAD)
def test_a_bad_metrics_file_is_one_line_naming_it(tmp_path: Path, case: str) -> None:
    content, named = BAD[case]
    folder = metrics_folder(tmp_path, content)
    with pytest.raises(StepError) as error:
        read_metrics(folder)
    message = str(error.value)
    assert str(folder / METRICS_FILE) in message and all(part in message for part in named)
    assert message.endswith(SUFFIX) and "\n" not in message
    assert not isinstance(error.value, MissingMetricsError)


def test_a_missing_or_unreadable_metrics_file(tmp_path: Path) -> None:
    with pytest.raises(MissingMetricsError, match=re.escape(f"{tmp_path / METRICS_FILE} does not")):
        read_metrics(tmp_path)
    (tmp_path / METRICS_FILE).mkdir()
    with pytest.raises(StepError, match=r"cannot be read \(Is a directory\): expected") as error:
        read_metrics(tmp_path)
    assert not isinstance(error.value, MissingMetricsError)
    folder = metrics_folder(tmp_path, b'{"rouge_l_mean": 0.8, "samples": 5, "nan": NaN}')
    assert list(read_metrics(folder)) == ["rouge_l_mean", "samples", "nan"]


RESULTS = "user_input,reference,response,rouge_l\na,a,a,1.0\n"


def _gate(folder: Path, tmp_path: Path) -> None:
    from yoda_registry.gate import main

    main(["--evaluation-metrics", str(folder), "--decision-output", str(tmp_path / "decision"),
          "--passed-output", str(tmp_path / "passed")])  # fmt: skip


def _register(folder: Path, tmp_path: Path) -> None:
    from yoda_registry.register_cli import main

    main(["--model-uri", str(tmp_path), "--evaluation-metrics", str(folder),
          "--serving-image", "img@sha256:" + "1" * 64])  # fmt: skip


def _report_step(folder: Path, tmp_path: Path) -> None:
    from yoda_evaluation.report import load_report_inputs

    (tmp_path / "results.csv").write_text(RESULTS)
    load_report_inputs(tmp_path / "results.csv", folder, None, None)


def _pipeline_report(folder: Path, tmp_path: Path) -> None:
    (folder.parent / EVALUATION_RESULTS).write_text(RESULTS)
    pipeline_aggregates(str(folder.parent / EVALUATION_RESULTS))


@pytest.mark.parametrize("reader", [_gate, _register, _report_step, _pipeline_report])
def test_every_reader_says_it_the_same_way(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reader: Callable[[Path, Path], None]
) -> None:
    """The gate, the registration, the report step and `yoda-pipeline report` / `run-local`: each
    says what read_metrics says, word for word."""
    folder = metrics_folder(tmp_path, BAD["not JSON"][0])
    with pytest.raises(StepError) as read_error:
        read_metrics(folder)
    expected = str(read_error.value)
    try:
        reader(folder, tmp_path)
    except SystemExit as exit_info:  # the step's command line: one line, exit status 2
        assert exit_info.code == 2
        (line,) = [text for text in capsys.readouterr().err.splitlines() if "error:" in text]
        assert line == f"error: {expected}"
    except StepError as error:
        assert str(error) == expected
    else:
        pytest.fail("the bad metrics file was read")


def test_the_pipeline_reads_no_aggregates_only_where_the_file_is_absent(
    gcs: Any, tmp_path: Path
) -> None:
    results = tmp_path / "evaluation-component" / EVALUATION_RESULTS
    results.parent.mkdir()
    assert pipeline_aggregates(str(results)) is None, "a run without the evaluation's metrics"
    if not gcs.bucket("yoda-contract").exists():
        gcs.create_bucket("yoda-contract")
    task = "gs://yoda-contract/job/evaluation-component_1"
    assert pipeline_aggregates(f"{task}/{EVALUATION_RESULTS}") is None
    blob = gcs.bucket("yoda-contract").blob(f"job/evaluation-component_1/{METRICS}/{METRICS_FILE}")
    blob.upload_from_string(b'{"rouge_l_mean": 0.8}')
    assert pipeline_aggregates(f"{task}/{EVALUATION_RESULTS}") == {"rouge_l_mean": 0.8}
    blob.upload_from_string(b"[]")
    with pytest.raises(StepError, match=re.escape(f"{task}/{METRICS}/{METRICS_FILE} holds []")):
        pipeline_aggregates(f"{task}/{EVALUATION_RESULTS}")


def test_the_names_readers_look_for_are_the_compiled_pipelines(tmp_path: Path) -> None:
    from yoda_pipeline.artifacts import CHAMPION_TASK

    lock = {step: f"europe-west4-docker.pkg.dev/p/yoda/{step}@sha256:{'ab' * 32}" for step in STEPS}
    (tmp_path / "lock.json").write_text(json.dumps(lock))
    settings = PipelineSettings(
        image_lock=tmp_path / "lock.json", raw_data_uri="gs://bucket/raw.csv"
    )
    spec = yaml.safe_load(compile_pipeline(settings, tmp_path / "pipeline.yaml").read_text())
    expected = {
        CHAMPION_TASK: {MODEL, METRICS},
        EVALUATION_TASK: {EVALUATION_RESULTS, METRICS},
        REPORT_TASK: {HTML},
        GATE_TASK: {DECISION},
        REGISTER_TASK: {VERTEX_MODEL},
    }
    for task, outputs in expected.items():
        declared = spec["components"][f"comp-{task}"]["outputDefinitions"]["artifacts"]
        assert outputs <= set(declared), (task, sorted(declared))
