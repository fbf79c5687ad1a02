"""The serving entry point (`yoda-serve`) as a real HTTP server on 127.0.0.1 with the tiny model:
Vertex AI's custom-container contract, real requests (bad ones too), and the same answers as the
batch inference step."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from local_servers import free_port, wait_until_serving

from yoda_inference.predict import GenerationParameters, predict_test_set
from yoda_inference.serve import BadRequestError, parse_request

SENTENCES = ["The Force is strong with you.", "I like green tea.", "We walked home."]


def call(url: str, body: bytes | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def server(tuned_model_dir: Path) -> Iterator[str]:
    """`yoda-serve` on a free port, as Vertex AI starts it: the routes and the model by env."""
    port = free_port()
    env = {**os.environ, "AIP_STORAGE_URI": str(tuned_model_dir), "AIP_HTTP_PORT": str(port),
           "AIP_HEALTH_ROUTE": "/health", "AIP_PREDICT_ROUTE": "/v1/predict"}  # fmt: skip
    script = Path(sys.executable).with_name("yoda-serve")
    process = subprocess.Popen([str(script), "--quantization", "auto", "--host", "127.0.0.1",
                                "--max-new-tokens", "12"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{url}/health", "yoda-serve", timeout_s=120,
                           alive=lambda: process.poll() is None,
                           log=lambda: process.stderr.read() if process.stderr else "")  # fmt: skip
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_answers_equal_the_batch_inference_steps(
    server: str, tuned_model_dir: Path, tmp_path: Path
) -> None:
    test = tmp_path / "test.jsonl"
    rows = [{"messages": [{"role": "user", "content": s}, {"role": "assistant", "content": "x"}]}
            for s in SENTENCES]  # fmt: skip
    test.write_text("".join(json.dumps(row) + "\n" for row in rows))
    predict_test_set(tuned_model_dir, test, tmp_path / "p.csv", quantization="auto",
                     params=GenerationParameters(max_new_tokens=12))  # fmt: skip
    with (tmp_path / "p.csv").open(newline="", encoding="utf-8") as handle:
        batch = [row["extracted_response"] for row in csv.DictReader(handle)]
    body = json.dumps({"instances": [{"text": s} for s in SENTENCES]}).encode()
    status, answer = call(f"{server}/v1/predict", body)
    assert status == 200
    assert [p["response"] for p in answer["predictions"]] == batch


def test_parameters_change_the_generation(server: str) -> None:
    body = {"instances": [{"text": "Hi."}], "parameters": {"max_new_tokens": 1}}
    status, answer = call(f"{server}/v1/predict", json.dumps(body).encode())
    assert status == 200 and len(answer["predictions"]) == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "the body is not JSON"),
        (b'{"instances": []}', 'expected {"instances": [{"text": "…"}, …]}'),
        (b'{"instances": [{"txt": "hi"}]}', 'instance 0 has no non-empty "text" string'),
        (b'{"instances": [{"text": "hi"}], "parameters": {"beams": 4}}',
         "unknown parameter(s) beams"),
        (b'{"instances": [{"text": "hi"}], "parameters": {"max_new_tokens": 0}}',
         "max_new_tokens must be > 0"),
        (b'{"instances": [{"text": "hi"}], "parameters": {"do_sample": "yes"}}',
         "parameter do_sample must be a bool"),
    ],
)  # fmt: skip
def test_bad_requests_get_a_400_and_one_line(server: str, body: bytes, reason: str) -> None:
    status, answer = call(f"{server}/v1/predict", body)
    assert status == 400
    assert reason in answer["error"] and "\n" not in answer["error"]


def test_unknown_routes_are_404(server: str) -> None:
    assert call(f"{server}/predict", b"{}")[0] == 404
    assert call(f"{server}/nothing")[0] == 404


def test_too_many_instances_are_refused_before_any_generation() -> None:
    body = json.dumps({"instances": [{"text": "x"}] * 257}).encode()
    with pytest.raises(BadRequestError, match="257 instances: at most 256"):
        parse_request(body, GenerationParameters())


def test_a_missing_storage_uri_is_one_error_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIP_")}
    done = subprocess.run([str(Path(sys.executable).with_name("yoda-serve"))], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: AIP_STORAGE_URI is not set: the Model artifact's gs:// URI or folder"
    )
