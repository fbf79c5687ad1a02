"""The serving entry point (`yoda-serve`) as a real HTTP server on 127.0.0.1 with the tiny model:
Vertex AI's custom-container contract, real requests (bad ones too), and the same answers as the
batch inference step."""

from __future__ import annotations

import csv
import http.client
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from local_servers import free_port, wait_until_serving

from yoda_inference.predict import GenerationParameters, predict_test_set
from yoda_inference.serve import BadRequestError, make_handler, parse_request
from yoda_inference.serve_limits import ModelGate, RequestError, content_length
from yoda_step_io import StepError

SENTENCES = ["The Force is strong with you.", "I like green tea.", "We walked home."]
REPO_ROOT = Path(__file__).resolve().parents[1]
#: the module's server: small limits and short timeouts, so each limit is quick to reach
LIMITS = ["--max-input-tokens", "100", "--max-queue", "1", "--queue-timeout-s", "1",
          "--read-timeout-s", "1"]  # fmt: skip
#: a request the tiny model takes seconds to answer (4 s on 2 cores): 32 batches of 40 sampled
#: tokens (at a high temperature an answer rarely ends early; a batch runs until its last ends)
SLOW = {"instances": [{"text": f"Sentence number {i} is here."} for i in range(256)],
        "parameters": {"batch_size": 8, "max_new_tokens": 40, "do_sample": True,
                       "temperature": 5.0}}  # fmt: skip


def call(url: str, body: bytes | None = None, timeout: float = 60) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def timed_call(url: str, body: bytes | None = None) -> tuple[int, dict[str, Any], float]:
    start = time.monotonic()
    status, answer = call(url, body, timeout=30)
    return status, answer, time.monotonic() - start


def raw_exchange(url: str, data: bytes, timeout: float = 5) -> bytes:
    """Send ``data`` as it is and read the answer until the server closes the connection."""
    with socket.create_connection((urlsplit(url).hostname, urlsplit(url).port), timeout) as sock:
        sock.sendall(data)
        return read_until_closed(sock)


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def status_and_error(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["error"]


def serve_cli(
    env: dict[str, str], *flags: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("yoda-serve")
    return subprocess.run([str(script), "--quantization", "auto", "--host", "127.0.0.1", *flags],
                          env=env, capture_output=True, text=True, timeout=timeout)  # fmt: skip


@pytest.fixture(scope="module")
def server(tuned_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`yoda-serve` on a free port, as Vertex AI starts it: the routes and the model by env."""
    port = free_port()
    env = {**os.environ, "AIP_STORAGE_URI": str(tuned_model_dir), "AIP_HTTP_PORT": str(port),
           "AIP_HEALTH_ROUTE": "/health", "AIP_PREDICT_ROUTE": "/v1/predict"}  # fmt: skip
    script = Path(sys.executable).with_name("yoda-serve")
    log = tmp_path_factory.mktemp("serve") / "yoda-serve.log"  # a file: a pipe could fill up
    with log.open("w") as stderr:
        process = subprocess.Popen([str(script), "--quantization", "auto", "--host", "127.0.0.1",
                                    "--max-new-tokens", "12", *LIMITS], env=env,
                                   stdout=subprocess.DEVNULL, stderr=stderr)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{url}/health", "yoda-serve", timeout_s=120,
                           alive=lambda: process.poll() is None, log=log.read_text)  # fmt: skip
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
        (b'{"instances": [{"text": "hi"}], "parameters": {"max_new_tokens": 100000}}',
         "max_new_tokens=100000 is over the server's --max-new-tokens-limit 512"),
        (b'{"instances": [{"text": "hi"}], "parameters": {"batch_size": 1000000000}}',
         "batch_size=1000000000 is over the server's --max-batch-size 64"),
        (b'{"instances": [{"text": "hi"}], "parameters": {"do_sample": true, "temperature": NaN}}',
         "parameter temperature must be a finite number, got nan"),
        (b'{"instances": [{"text": "hi"}], "parameters": {"top_p": 1e999}}',
         "parameter top_p must be a finite number, got inf"),
        (json.dumps({"instances": [{"text": "word " * 60}]}).encode(),
         "instance 0 is 18"),  # 18x tokens with the chat template: over --max-input-tokens 100
    ],
)  # fmt: skip
def test_bad_requests_get_a_400_and_one_line(server: str, body: bytes, reason: str) -> None:
    status, answer = call(f"{server}/v1/predict", body, timeout=10)  # refused before generating
    assert status == 400
    assert reason in answer["error"] and "\n" not in answer["error"]


def test_nan_temperature_is_refused_by_the_parameters_check_too() -> None:
    with pytest.raises(StepError, match="temperature must be > 0 when sampling, got nan"):
        GenerationParameters(do_sample=True, temperature=float("nan")).validate()


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


# --- a server with limits: the body, the sockets, the queue, the methods, the port --------------


def test_an_oversized_body_is_a_413_before_a_byte_of_it_is_read(server: str) -> None:
    start = time.monotonic()
    answer = raw_exchange(server, b"POST /v1/predict HTTP/1.1\r\nHost: x\r\n"
                                  b"Content-Length: 2000000000\r\n\r\n")  # fmt: skip
    status, error = status_and_error(answer)
    assert (status, error) == (413, "the body is 2000000000 bytes: at most 1500000 "
                                    "(--max-body-bytes)")  # fmt: skip
    assert time.monotonic() - start < 2


@pytest.mark.parametrize(
    ("header", "expected"),
    [(b"Content-Length: abc\r\n", 400), (b"Content-Length: -5\r\n", 400),
     (b"Content-Length: 5\r\nContent-Length: 6\r\n", 400), (b"", 411)],
)  # fmt: skip
def test_a_bad_or_missing_content_length_is_refused_in_one_line(
    server: str, header: bytes, expected: int
) -> None:
    answer = raw_exchange(server, b"POST /v1/predict HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n")
    status, error = status_and_error(answer)
    assert status == expected and "Content-Length" in error and "\n" not in error


def test_stalled_clients_are_let_go_after_the_read_timeout(server: str) -> None:
    address = (urlsplit(server).hostname, urlsplit(server).port)
    # each sends at once on connecting: a client busy elsewhere for a second would be a stalled
    # client itself (the server lets go of one whose headers take longer than the read timeout)
    sends = [b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"] * 5
    sends += [b"POST /v1/pre", b""]  # half a request line; the last one sends nothing
    stalled = []
    for data in sends:  # headers, then none of the 100 bytes they announce
        stalled.append(socket.create_connection(address, timeout=10))
        stalled[-1].sendall(data)
    try:
        status, _, seconds = timed_call(f"{server}/health")
        assert status == 200 and seconds < 2
        body = json.dumps({"instances": [{"text": SENTENCES[0]}]}).encode()
        status, _, seconds = timed_call(f"{server}/v1/predict", body)
        assert status == 200 and seconds < 10
        start = time.monotonic()
        answers = [read_until_closed(sock) for sock in stalled]  # --read-timeout-s 1: closed
        assert time.monotonic() - start < 5
    finally:
        for sock in stalled:
            sock.close()
    for answer in answers[:5]:
        assert status_and_error(answer) == (408, "the body did not arrive within 1 s "
                                                 "(0 of 100 bytes)")  # fmt: skip
    assert answers[5:] == [b"", b""]


def test_a_1_mb_text_is_refused_at_once_and_the_server_stays_responsive(server: str) -> None:
    body = json.dumps({"instances": [{"text": "a" * 1_000_000}]}).encode()
    status, answer, seconds = timed_call(f"{server}/v1/predict", body)
    assert status == 400 and seconds < 2
    assert (
        answer["error"] == "instance 0 is 1000000 characters: over 100 tokens (--max-input-tokens)"
    )
    assert timed_call(f"{server}/health")[0] == 200


def test_wrong_methods_are_a_405_naming_the_allowed_ones(server: str) -> None:
    for method, path, allowed in [("PUT", "/v1/predict", "POST"), ("DELETE", "/v1/predict", "POST"),
                                  ("PATCH", "/v1/predict", "POST"), ("HEAD", "/v1/predict", "POST"),
                                  ("GET", "/v1/predict", "POST"), ("POST", "/health", "GET, HEAD"),
                                  ("OPTIONS", "/health", "GET, HEAD")]:  # fmt: skip
        connection = http.client.HTTPConnection("127.0.0.1", urlsplit(server).port, timeout=10)
        connection.request(method, path, body=b"{}" if method != "GET" else None)
        response = connection.getresponse()
        body = response.read()
        connection.close()
        assert (method, response.status, response.getheader("Allow")) == (method, 405, allowed)
        if method != "HEAD":
            assert json.loads(body)["error"] == f"{method} is not allowed on {path}: use {allowed}"
    connection = http.client.HTTPConnection("127.0.0.1", urlsplit(server).port, timeout=10)
    connection.request("TRACE", "/health")
    response = connection.getresponse()
    assert response.status == 501 and "TRACE" in json.loads(response.read())["error"]


def test_a_busy_model_is_a_503_at_once_and_health_answers_meanwhile(server: str) -> None:
    """--max-queue 1 --queue-timeout-s 1: a slow request holds the model, one more waits 1 s
    then gets a 503, a third gets its 503 at once; the health route answers throughout."""
    url, quick = f"{server}/v1/predict", json.dumps({"instances": [{"text": "Hi."}]}).encode()
    results: dict[str, tuple[int, dict[str, Any], float]] = {}

    def send(name: str, body: bytes) -> threading.Thread:
        thread = threading.Thread(target=lambda: results.update({name: timed_call(url, body)}))
        thread.start()
        return thread

    slow = send("slow", json.dumps(SLOW).encode())
    time.sleep(0.5)  # the slow one is generating
    health, _, health_seconds = timed_call(f"{server}/health")
    waiting = send("waiting", quick)
    time.sleep(0.3)  # the second one is waiting for the model
    full = timed_call(url, quick)
    waiting.join()
    assert slow.is_alive(), "the slow request ended too soon to test anything"
    slow.join()
    assert (health, results["slow"][0]) == (200, 200) and health_seconds < 1
    status, answer, seconds = full
    assert status == 503 and seconds < 1
    assert answer["error"] == ("busy: a generation runs and 1 request(s) wait (--max-queue 1); "
                               "retry later")  # fmt: skip
    status, answer, seconds = results["waiting"]
    assert status == 503 and 0.9 < seconds < 3
    assert answer["error"] == "busy: waited 1 s for the model (--queue-timeout-s); retry later"


class FailingModel:
    """An answerer whose generation fails, as a CUDA out-of-memory would."""

    defaults = GenerationParameters()

    def check_lengths(self, texts: list[str], cap: int) -> None:
        pass

    def predict(self, texts: list[str], params: GenerationParameters) -> list[str]:
        raise RuntimeError("CUDA out of memory.\nTried to allocate 2.00 GiB")


def test_an_error_in_the_handler_is_a_500_with_one_line_and_the_traceback_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(FailingModel(), "/h", "/p"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with caplog.at_level(logging.ERROR, logger="yoda_inference.serve"):
            status, answer = call(f"http://127.0.0.1:{server.server_address[1]}/p",
                                  b'{"instances": [{"text": "Hi."}]}', timeout=10)  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert (status, answer) == (500, {"error": "internal error: RuntimeError: CUDA out of memory. "
                                               "Tried to allocate 2.00 GiB"})  # fmt: skip
    failures = [r for r in caplog.records if r.getMessage() == "POST /p failed"]
    assert len(failures) == 1 and failures[0].exc_info is not None


def test_the_model_gate_bounds_the_queue_and_the_wait() -> None:
    gate = ModelGate(max_queue=0, timeout_s=0.1)
    with (
        gate.hold(),
        pytest.raises(RequestError, match="busy: a generation") as refused,
        gate.hold(),
    ):
        pass
    assert refused.value.status == 503
    gate = ModelGate(max_queue=1, timeout_s=0.1)
    with gate.hold(), pytest.raises(RequestError, match=r"busy: waited 0\.1 s"), gate.hold():
        pass
    with gate.hold():  # released after each: the model is free again
        assert gate.waiting == 0


@pytest.mark.parametrize(
    ("values", "status"), [([], 411), (["12"], 0), ([" 12 "], 0), (["1.5"], 400), (["١٢"], 400),
                           (["-1"], 400), (["12", "13"], 400), (["1500001"], 413),
                           (["9" * 5000], 413)],
)  # fmt: skip
def test_content_length_is_one_number_of_bytes_within_the_limit(
    values: list[str], status: int
) -> None:
    if not status:
        assert content_length(values, 1_500_000) == 12
        return
    with pytest.raises(RequestError) as refused:
        content_length(values, 1_500_000)
    assert refused.value.status == status


def test_a_busy_port_is_one_error_line_before_the_model_loads(tuned_model_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "AIP_STORAGE_URI": str(tuned_model_dir), "AIP_HTTP_PORT": str(port)}
        start = time.monotonic()
        done = serve_cli(env)
        seconds = time.monotonic() - start
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
    assert "loading" not in done.stderr and "loaded" not in done.stderr and seconds < 15


@pytest.mark.parametrize("port", ["http", "99999", "65536", "0", "-1"])
def test_a_bad_port_is_one_error_line(tuned_model_dir: Path, port: str) -> None:
    env = {**os.environ, "AIP_STORAGE_URI": str(tuned_model_dir), "AIP_HTTP_PORT": port}
    done = serve_cli(env, timeout=30)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: AIP_HTTP_PORT={port!r} is not a port number (1-65535)"


@pytest.mark.parametrize(
    ("flags", "variables", "error"),
    [(["--max-new-tokens", "600"], {},
      "error: the request defaults: max_new_tokens=600 is over the server's "
      "--max-new-tokens-limit 512"),
     ([], {"YODA_SERVE_MAX_BATCH_SIZE": "8"},
      "error: the request defaults: batch_size=16 is over the server's --max-batch-size 8"),
     (["--max-queue", "many"], {},
      "yoda-serve: error: argument --max-queue: expected a whole number >= 0 (--max-queue or "
      "$YODA_SERVE_MAX_QUEUE), got 'many'"),
     ([], {"YODA_SERVE_READ_TIMEOUT_S": "nan"},
      "yoda-serve: error: argument --read-timeout-s: expected seconds > 0 (--read-timeout-s or "
      "$YODA_SERVE_READ_TIMEOUT_S), got 'nan'"),
     (["--max-body-bytes", "0"], {},
      "yoda-serve: error: argument --max-body-bytes: expected a whole number >= 1 "
      "(--max-body-bytes or $YODA_SERVE_MAX_BODY_BYTES), got '0'")],
)  # fmt: skip
def test_bad_limits_are_one_error_line_before_the_model_loads(
    tuned_model_dir: Path, flags: list[str], variables: dict[str, str], error: str
) -> None:
    env = {**os.environ, "AIP_STORAGE_URI": str(tuned_model_dir), "AIP_HTTP_PORT": str(free_port()),
           **variables}  # fmt: skip
    done = serve_cli(env, *flags, timeout=30)
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1] == error
    assert "loading" not in done.stderr


def test_limits_over_the_models_context_are_one_error_line(tuned_model_dir: Path) -> None:
    env = {**os.environ, "AIP_STORAGE_URI": str(tuned_model_dir), "AIP_HTTP_PORT": str(free_port())}
    done = serve_cli(env, "--max-input-tokens", "4000")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: --max-input-tokens 4000 + --max-new-tokens-limit 512 = 4512 tokens: over the "
        "model's context of 4096 (max_position_embeddings)"
    )


def test_a_truncated_adapter_is_one_error_line(tuned_model_dir: Path, tmp_path: Path) -> None:
    model = shutil.copytree(tuned_model_dir, tmp_path / "model")
    weights = model / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    env = {**os.environ, "AIP_STORAGE_URI": str(model), "AIP_HTTP_PORT": str(free_port())}
    done = serve_cli(env)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot load the LoRA adapter in {model}")
    assert "Traceback" not in done.stderr


def test_a_bounded_load_keeps_every_answer_and_the_memory_flat(tuned_model_dir: Path) -> None:
    """benchmarks/bench_serve.py, smaller: 40 requests from 4 clients, within 90 s."""
    done = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "bench_serve.py"),
                           "--model-dir", str(tuned_model_dir), "--requests", "40",
                           "--time-limit-s", "90", "--json"],
                          capture_output=True, text=True, timeout=240)  # fmt: skip
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert (figures["sent"], figures["errors"], figures["server_alive"]) == (40, 0, True)
    assert (figures["answered"]["count"], figures["refused"]["count"]) == (32, 8)
    assert figures["rss_growth_mib"] < 64, figures
