"""The serving entry point (`yoda-serve`) as Vertex AI starts it, a real process on 127.0.0.1 with
the tiny model: the serving contract, the same answers as the batch inference step, byte for
byte whether a request is batched with others or alone, bad requests refused in one line, bad
flags or environment refused before the model loads. (HTTP, batching and the queue with a
stand-in model: tests/inference/test_serve_batching.py.)"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fake_vertex import fake_vertex, forwarding_to
from local_servers import free_port, wait_until_serving

from yoda_inference.predict import GenerationParameters, generate_answers, predict_test_set
from yoda_step_io.serving import SERVING, predict_request

SENTENCES = ["The Force is strong with you.", "I like green tea.", "We walked home."]
#: texts of different lengths (their prompts are padded to the longest in a batch)
TEXTS = [*SENTENCES, "Patience you must have, my young padawan, for the path is long.", "Hi.",
         "Much to learn you still have.", "Do or do not.", "Size matters not."]  # fmt: skip
REPO_ROOT = Path(__file__).resolve().parents[2]
#: the module's server: a short prompt limit, and a wide batching window so that requests sent
#: together share a batch
FLAGS = ["--max-new-tokens", "12", "--max-input-tokens", "100", "--max-batch-delay-ms", "300"]


@dataclass(frozen=True)
class Served:
    url: str
    predict: str  # the predict route's URL
    log: Path


def call(url: str, body: bytes | None = None, timeout: float = 60) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def ask(url: str, texts: list[str], **parameters: object) -> list[str]:
    status, answer = call(url, json.dumps(predict_request(texts, parameters)).encode())
    assert status == 200, answer
    return [prediction["response"] for prediction in answer["predictions"]]


def serve_cli(
    env: dict[str, str], *flags: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("yoda-serve")
    return subprocess.run([str(script), "--quantization", "auto", "--host", "127.0.0.1", *flags],
                          env=env, capture_output=True, text=True, timeout=timeout)  # fmt: skip


def error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one ``error:`` line of a ``yoda-serve`` that exited 2 without a traceback (argparse's
    usage lines may come before it)."""
    lines = done.stderr.strip().splitlines()
    errors = [line for line in lines if "error:" in line]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert len(errors) == 1 and lines[-1] == errors[0], done.stderr
    return errors[0]


@contextmanager
def serving(model_dir: Path, folder: Path, *flags: str) -> Iterator[Served]:
    """`yoda-serve` on a free port, as Vertex AI starts it (the serving contract's environment),
    its predict route moved to /v1/predict by AIP_PREDICT_ROUTE; its log in ``folder``."""
    port = free_port()
    env = {**os.environ, **SERVING.container_environment(str(model_dir), port),
           "AIP_PREDICT_ROUTE": "/v1/predict"}  # fmt: skip
    log = folder / "yoda-serve.log"  # a file: a pipe could fill up
    script = Path(sys.executable).with_name("yoda-serve")
    with log.open("w") as stderr:
        process = subprocess.Popen([str(script), "--quantization", "auto", "--host", "127.0.0.1",
                                    *flags], env=env, stdout=subprocess.DEVNULL,
                                   stderr=stderr)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{url}{SERVING.health_route}", "yoda-serve", timeout_s=300,
                           alive=lambda: process.poll() is None, log=log.read_text)  # fmt: skip
        yield Served(url, f"{url}/v1/predict", log)
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tuned_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(tuned_model_dir, tmp_path_factory.mktemp("serve"), *FLAGS) as served:
        yield served


def test_answers_equal_the_batch_inference_steps(
    server: Served, tuned_model_dir: Path, tmp_path: Path
) -> None:
    test = tmp_path / "test.jsonl"
    rows = [{"messages": [{"role": "user", "content": s}, {"role": "assistant", "content": "x"}]}
            for s in SENTENCES]  # fmt: skip
    test.write_text("".join(json.dumps(row) + "\n" for row in rows))
    predict_test_set(tuned_model_dir, test, tmp_path / "p.csv", quantization="auto",
                     params=GenerationParameters(max_new_tokens=12))  # fmt: skip
    with (tmp_path / "p.csv").open(newline="", encoding="utf-8") as handle:
        batch = [row["extracted_response"] for row in csv.DictReader(handle)]
    assert ask(server.predict, SENTENCES) == batch


def batches_of_several_requests(log: Path) -> list[int]:
    """The sizes (in requests) of the batches the server's log reports with more than one."""
    found = re.findall(r"generated \d+ text\(s\) of (\d+) request\(s\)", log.read_text())
    return [int(n) for n in found if int(n) > 1]


def check_byte_identical(served: Served, model_dir: Path, texts: list[str], tokens: int) -> None:
    """Each text sent as its own request, all at once (batched together), then one at a time:
    the answers equal ``generate_answers`` on each text alone and on all in one batch."""
    from yoda_inference.model import load_for_answers

    before = len(batches_of_several_requests(served.log))
    with ThreadPoolExecutor(len(texts)) as pool:
        together = list(pool.map(lambda t: ask(served.predict, [t], max_new_tokens=tokens)[0],
                                 texts))  # fmt: skip
    assert len(batches_of_several_requests(served.log)) > before, "no batch had two requests"
    alone = [ask(served.predict, [text], max_new_tokens=tokens)[0] for text in texts]
    model, tokenizer = load_for_answers(str(model_dir), "auto", model_dir.parent / "cache")
    params = GenerationParameters(max_new_tokens=tokens)
    reference = [generate_answers(model, tokenizer, [t], params, "alone").texts[0] for t in texts]
    in_one_batch = generate_answers(model, tokenizer, texts, params, "one batch").texts
    assert together == alone == reference == in_one_batch


def test_batched_answers_are_byte_identical_to_answers_alone(
    server: Served, tuned_model_dir: Path
) -> None:
    check_byte_identical(server, tuned_model_dir, TEXTS, tokens=12)


def test_parameters_change_the_generation(server: Served) -> None:
    assert len(ask(server.predict, ["Hi."], max_new_tokens=1)) == 1
    sampled = ask(server.predict, ["Hi.", "Hi."], do_sample=True, temperature=5.0)
    assert len(sampled) == 2


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"not json", ["not JSON"]),
        (b'{"instances": []}', ["instances", "at least 1 item"]),
        (b'{"instances": [{"txt": "hi"}]}', ["instances.0.text", "Field required"]),
        (b'{"instances": [{"text": " "}]}', ["instances.0.text"]),
        (b'{"instances": [{"text": 5}]}', ["instances.0.text"]),
        (b'{"instances": [{"text": "\\ud800"}]}', ["not JSON"]),  # a lone surrogate
        (b'{"instances": [{"text": "a\xff"}]}', ["not JSON"]),  # not UTF-8
        (json.dumps({"instances": [{"text": "x"}] * 257}).encode(), ["instances", "at most 256"]),
        (b'{"instances": [{"text": "hi"}], "parameters": {"beams": 4}}',
         ["unknown parameter beams", "max_new_tokens"]),  # the known ones named
        (b'{"instances": [{"text": "hi"}], "parameters": {"max_new_tokens": 0}}',
         ["--max-new-tokens 0", "1 to 2048"]),
        (b'{"instances": [{"text": "hi"}], "parameters": {"do_sample": "yes"}}',
         ["parameters.do_sample", "'yes'"]),
        (b'{"instances": [{"text": "hi"}], "parameters": {"max_new_tokens": 1000}}',
         ["max_new_tokens=1000", "--max-new-tokens-limit 512"]),
        (b'{"instances": [{"text": "hi"}], "parameters": {"batch_size": 100}}',
         ["batch_size=100", "--max-batch-size 16"]),
        (b'{"instances": [{"text": "hi"}], "parameters": {"do_sample": true, "temperature": NaN}}',
         ["parameters.temperature", "finite number"]),
        (b'{"instances": [{"text": "hi"}], "parameters": {"top_p": 1e999}}',
         ["parameters.top_p", "finite number"]),
        (json.dumps({"instances": [{"text": "word " * 60}]}).encode(),
         ["instance 0 is 18", "--max-input-tokens"]),  # 18x tokens with the chat template
    ],
)  # fmt: skip
def test_bad_requests_get_a_400_and_one_line(server: Served, body: bytes, named: list[str]) -> None:
    status, answer = call(server.predict, body, timeout=10)  # refused before generating
    assert status == 400 and "\n" not in answer["error"]
    assert all(part in answer["error"] for part in named), answer["error"]


def test_a_1_mb_text_is_refused_at_once_and_the_server_stays_responsive(server: Served) -> None:
    body = json.dumps({"instances": [{"text": "a" * 1_000_000}]}).encode()
    start = time.monotonic()
    status, answer = call(server.predict, body)
    assert status == 400 and time.monotonic() - start < 2
    error = answer["error"]
    assert "instance 0" in error and "1000000 characters" in error and "--max-input-tokens" in error
    assert call(f"{server.url}/health")[0] == 200


def test_the_routes_are_the_environments(server: Served) -> None:
    assert call(f"{server.url}{SERVING.predict_route}", b"{}")[0] == 404  # moved: /v1/predict
    assert call(f"{server.url}{SERVING.health_route}")[0] == 200


@pytest.mark.slow  # a server process of its own
def test_ask_endpoint_through_vertex_ai_gets_the_served_answers(
    server: Served, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`make deploy` then `make ask-endpoint`, Vertex AI's stand-in handing each prediction
    request to the server: the answers asked directly, in the contract's shapes both ways."""
    from yoda_pipeline.deploy import ask as ask_endpoint
    from yoda_pipeline.deploy import deploy
    from yoda_pipeline.settings import PipelineSettings
    from yoda_registry.register import register_model

    monkeypatch.chdir(tmp_path)  # no .env here
    with fake_vertex() as (api, state):
        state.predict = forwarding_to(server.predict)
        settings = PipelineSettings(project_id="yoda-project", region="europe-west4",
                                    vertex_api_endpoint=api.url)  # fmt: skip
        register_model("gs://yoda-bucket/run-1/model", {"rouge_l_mean": 0.8},
                       project=settings.project_id, location=settings.region,
                       display_name=settings.registry_model_name,
                       serving_image="europe-docker.pkg.dev/p/yoda/inference@sha256:" + "a" * 64,
                       metric="rouge_l", run_name="run-1", endpoint=api.url)  # fmt: skip
        deploy(settings)
        answers = ask_endpoint(settings, SENTENCES)
    assert answers == ask(server.predict, SENTENCES)


def test_a_missing_storage_uri_is_one_error_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIP_")}
    done = subprocess.run([str(Path(sys.executable).with_name("yoda-serve"))], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert error_line(done) == done.stderr.strip()  # the only line
    assert done.stderr.startswith("error: AIP_STORAGE_URI ") and "not set" in done.stderr


def test_a_busy_port_is_one_error_line_before_the_model_loads(tuned_model_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, **SERVING.container_environment(str(tuned_model_dir), port)}
        start = time.monotonic()
        done = serve_cli(env)
        seconds = time.monotonic() - start
    line = error_line(done)
    assert line.startswith("error: ") and f"127.0.0.1:{port}" in line and "already in use" in line
    assert "loading" not in done.stderr and "loaded" not in done.stderr and seconds < 30


@pytest.mark.parametrize(
    ("variables", "named"),
    [({"AIP_HTTP_PORT": port}, f"error: AIP_HTTP_PORT={port!r} is not a port")
     for port in ["http", "99999", "65536", "0", "-1"]]
    + [({"AIP_PREDICT_ROUTE": "predict"}, "error: AIP_PREDICT_ROUTE='predict' is not a route"),
       ({"AIP_HEALTH_ROUTE": "/he alth"}, "error: AIP_HEALTH_ROUTE='/he alth' is not a route")],
)  # fmt: skip
def test_a_bad_environment_is_one_error_line(
    tuned_model_dir: Path, variables: dict[str, str], named: str
) -> None:
    env = {**os.environ, **SERVING.container_environment(str(tuned_model_dir), free_port()),
           **variables}  # fmt: skip
    done = serve_cli(env, timeout=60)
    assert error_line(done) == done.stderr.strip() and done.stderr.startswith(named)


@pytest.mark.parametrize(
    ("flags", "variables", "named"),
    [(["--max-new-tokens", "600"], {}, ["max_new_tokens=600", "--max-new-tokens-limit 512"]),
     (["--max-new-tokens", "0"], {}, ["--max-new-tokens 0"]),
     (["--max-queue", "many"], {}, ["--max-queue", "got 'many'"]),
     ([], {"YODA_SERVE_READ_TIMEOUT_S": "nan"},
      ["--read-timeout-s", "$YODA_SERVE_READ_TIMEOUT_S", "got 'nan'"]),
     ([], {"YODA_SERVE_MAX_BATCH_DELAY_MS": "-1"},
      ["--max-batch-delay-ms", "$YODA_SERVE_MAX_BATCH_DELAY_MS", "got '-1'"]),
     ([], {"YODA_SERVE_MAX_BATCH_SIZE": "0"},
      ["--max-batch-size", "$YODA_SERVE_MAX_BATCH_SIZE", "got '0'"]),
     (["--max-body-bytes", "0"], {}, ["--max-body-bytes", "got '0'"])],
)  # fmt: skip
def test_bad_limits_are_one_error_line_before_the_model_loads(
    tuned_model_dir: Path, flags: list[str], variables: dict[str, str], named: list[str]
) -> None:
    env = {**os.environ, **SERVING.container_environment(str(tuned_model_dir), free_port()),
           **variables}  # fmt: skip
    done = serve_cli(env, *flags, timeout=60)
    line = error_line(done)
    assert all(part in line for part in named), line
    assert "loading" not in done.stderr


@pytest.mark.slow  # a server process of its own
def test_limits_over_the_models_context_are_one_error_line(tuned_model_dir: Path) -> None:
    env = {**os.environ, **SERVING.container_environment(str(tuned_model_dir), free_port())}
    line = error_line(serve_cli(env, "--max-input-tokens", "4000"))
    assert "--max-input-tokens 4000" in line and "--max-new-tokens-limit 512" in line
    assert "4512 tokens" in line and "context of 4096" in line


@pytest.mark.slow  # a server process of its own
def test_a_truncated_adapter_is_one_error_line(tuned_model_dir: Path, tmp_path: Path) -> None:
    model = shutil.copytree(tuned_model_dir, tmp_path / "model")
    weights = model / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    env = {**os.environ, **SERVING.container_environment(str(model), free_port())}
    line = error_line(serve_cli(env))
    assert str(model) in line and "LoRA adapter" in line


@pytest.fixture(scope="module")
def smollm2_model_dir(tmp_path_factory: pytest.TempPathFactory, sample_train_jsonl: Path) -> Path:
    """SmolLM2-135M-Instruct (converted into build/ once, about 30 s) with an adapter from a few
    steps of its CPU recipe on the sample."""
    from yoda_devmodels.smollm2 import ensure_smollm2

    from yoda_fine_tuning.hyperparams import HyperParameters
    from yoda_fine_tuning.train import fine_tune

    base = ensure_smollm2(REPO_ROOT / "build" / "smollm2-135m-instruct")
    out = tmp_path_factory.mktemp("smollm2")
    hp = HyperParameters(quantization="auto", max_steps=3, learning_rate=2e-3,
                         gradient_checkpointing=False, logging_steps=1)  # fmt: skip
    fine_tune(sample_train_jsonl, out / "model", out / "metrics", base_model=str(base), hp=hp)
    return out / "model"


@pytest.mark.slow
def test_smollm2_batched_answers_are_byte_identical_to_answers_alone(
    smollm2_model_dir: Path, tmp_path: Path
) -> None:
    """The real small model, float32 on the CPU: left padding changes the shapes the matrix
    products run on, not one greedy answer (make test-slow; a few minutes on 2 cores)."""
    with serving(smollm2_model_dir, tmp_path, "--max-batch-delay-ms", "300") as served:
        check_byte_identical(served, smollm2_model_dir, TEXTS, tokens=24)


@pytest.mark.slow
def test_a_bounded_load_keeps_every_answer_and_the_memory_flat() -> None:
    """benchmarks/bench_serve.py, smaller: the tiny model batched and one at a time, 1 and 4
    clients, then 200 requests (one in five refused) for the memory."""
    done = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "bench_serve.py"),
                           "--models", "tiny", "--clients", "1,4", "--requests-per-client", "4",
                           "--rss-requests", "200", "--json"],
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    levels = [row for rows in figures["models"]["tiny"].values() if isinstance(rows, list)
              for row in rows]  # fmt: skip
    assert len(levels) == 4 and all(row["errors"] == 0 for row in levels)
    memory = figures["memory"]
    assert (memory["requests"], memory["errors"], memory["server_alive"]) == (200, 0, True)
    assert memory["rss_after_mib"] - memory["rss_before_mib"] < 64, memory
