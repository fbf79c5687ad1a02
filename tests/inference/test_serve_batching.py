"""``yoda-serve``'s app under its own uvicorn set-up, in this process, with a stand-in model that
records each ``generate()`` call: dynamic batching (who shares a call, in which order, each client
its own answers), the queue's limits, ``/health`` during a generation, a failed generation, the
body's limit, bad HTTP, and stalled clients. The real model's answers:
tests/inference/test_serve.py."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import pytest
from local_servers import serving_in_thread

from yoda_inference.predict import GenerationParameters
from yoda_inference.serve_app import build_app
from yoda_inference.serve_limits import Limits
from yoda_step_io.serving import predict_request

#: small limits, so each one is quick to reach
LIMITS = Limits(max_batch_size=4, max_batch_delay_ms=0, max_queue=8, queue_timeout_s=10,
                read_timeout_s=30, max_body_bytes=1000)  # fmt: skip


class StandIn:
    """Answers a text with ``"<text>/<max_new_tokens>"``; records each call's texts and
    parameters; holds each call while :attr:`running` is clear; raises :attr:`failure` if set."""

    chars_per_token = 16

    def __init__(self, limits: Limits) -> None:
        # as yoda-serve's: a batch as large as the server makes them
        self.defaults = GenerationParameters(batch_size=limits.max_batch_size, max_new_tokens=8)
        self.calls: list[tuple[list[str], int]] = []
        self.running = threading.Event()
        self.running.set()
        self.started = threading.Event()
        self.failure: Exception | None = None

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(text.split()) for text in texts]

    def answer(self, texts: list[str], params: GenerationParameters) -> list[str]:
        self.calls.append((list(texts), params.max_new_tokens))
        self.started.set()
        assert self.running.wait(timeout=30), "the test never let the generation end"
        if self.failure is not None:
            raise self.failure
        return [f"{text}/{params.max_new_tokens}" for text in texts]


@contextmanager
def serve(limits: Limits = LIMITS) -> Iterator[tuple[str, StandIn, Any]]:
    """The app with a stand-in model, served; yields its URL, the model and the batcher."""
    model = StandIn(limits)
    app = build_app(model, limits)
    with serving_in_thread(app, limits) as url:
        yield url, model, app.state.batcher


def post(url: str, texts: list[str], **parameters: object) -> tuple[int, Any, float]:
    """A predict request's status, answers (or error) and seconds."""
    body = json.dumps(predict_request(texts, parameters)).encode()
    start = time.monotonic()
    try:
        with urllib.request.urlopen(f"{url}/predict", data=body, timeout=60) as response:
            answer = [p["response"] for p in json.loads(response.read())["predictions"]]
            return response.status, answer, time.monotonic() - start
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())["error"], time.monotonic() - start


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, f"waited 20 s for {what}"
        time.sleep(0.01)


@contextmanager
def model_busy(url: str, model: StandIn, pool: ThreadPoolExecutor) -> Iterator[Future[Any]]:
    """A request ("first") generating until the block ends; yields its future."""
    model.running.clear()
    first = pool.submit(post, url, ["first"])
    assert model.started.wait(20)
    try:
        yield first
    finally:
        model.running.set()


def queue_in_order(
    url: str, batcher: Any, pool: ThreadPoolExecutor, requests: list[tuple[list[str], int]]
) -> list[Future[Any]]:
    """Send the requests one after the other, each once the one before waits in the queue."""
    futures = []
    for number, (texts, max_new_tokens) in enumerate(requests, start=1):
        futures.append(pool.submit(post, url, texts, max_new_tokens=max_new_tokens))
        wait_for(lambda n=number: batcher.queued() == n, f"{number} request(s) in the queue")
    return futures


def test_requests_that_come_while_the_model_is_busy_share_one_generate_call() -> None:
    with serve() as (url, model, batcher), ThreadPoolExecutor(8) as pool:
        with model_busy(url, model, pool) as first:
            later = queue_in_order(url, batcher, pool, [([f"text {i}"], 8) for i in range(3)])
        assert first.result()[:2] == (200, ["first/8"])
        assert [f.result()[:2] for f in later] == [(200, [f"text {i}/8"]) for i in range(3)]
    assert model.calls == [(["first"], 8), (["text 0", "text 1", "text 2"], 8)]


def test_parameters_split_batches_and_each_client_gets_its_own_answers_in_order() -> None:
    """Six texts of A with the oldest parameters fill a call of 4 and share the next with C's
    (same parameters); B's other max_new_tokens waits for a call of its own."""
    a_texts = [f"A{i}" for i in range(6)]
    with serve() as (url, model, batcher), ThreadPoolExecutor(8) as pool:
        with model_busy(url, model, pool):
            a, b, c = queue_in_order(url, batcher, pool, [(a_texts, 8), (["B0"], 4), (["C0"], 8)])
        assert a.result()[:2] == (200, [f"{text}/8" for text in a_texts])
        assert (b.result()[:2], c.result()[:2]) == ((200, ["B0/4"]), (200, ["C0/8"]))
    assert model.calls == [(["first"], 8), (a_texts[:4], 8), ([*a_texts[4:], "C0"], 8),
                           (["B0"], 4)]  # fmt: skip


def test_requests_within_the_window_share_a_call_and_a_full_batch_does_not_wait() -> None:
    limits = replace(LIMITS, max_batch_delay_ms=5000)
    with serve(limits) as (url, model, _), ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(post, url, [f"text {i}"]) for i in range(4)]
        results = [future.result() for future in futures]
    assert [r[:2] for r in results] == [(200, [f"text {i}/8"]) for i in range(4)]
    assert [sorted(texts) for texts, _ in model.calls] == [[f"text {i}" for i in range(4)]]
    assert max(r[2] for r in results) < 4, "a full batch went at once, not after the window"


def test_a_batch_size_of_one_turns_batching_off() -> None:
    with serve(replace(LIMITS, max_batch_size=1)) as (url, model, batcher):
        with ThreadPoolExecutor(8) as pool, model_busy(url, model, pool):
            later = queue_in_order(url, batcher, pool, [(["x", "y"], 8), (["z"], 8)])
        assert [f.result()[:2] for f in later] == [(200, ["x/8", "y/8"]), (200, ["z/8"])]
    assert [texts for texts, _ in model.calls] == [["first"], ["x"], ["y"], ["z"]]


def test_a_full_queue_is_a_503_at_once_a_long_wait_too_and_health_answers_meanwhile() -> None:
    limits = replace(LIMITS, max_queue=1, queue_timeout_s=1)
    with (
        serve(limits) as (url, model, batcher),
        ThreadPoolExecutor(8) as pool,
        model_busy(url, model, pool),
    ):
        (waiting,) = queue_in_order(url, batcher, pool, [(["waits"], 8)])
        full = post(url, ["one too many"])
        start = time.monotonic()
        with urllib.request.urlopen(f"{url}/health", timeout=10) as response:
            assert (response.status, time.monotonic() - start < 1) == (200, True)
        status, error, seconds = waiting.result()
    assert full[0] == 503 and full[2] < 1 and "--max-queue 1" in full[1]
    assert status == 503 and 0.9 < seconds < 5 and "--queue-timeout-s" in error
    assert [texts for texts, _ in model.calls] == [["first"]], "neither was generated"


def test_a_failed_generation_is_a_500_in_one_line_and_the_server_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with serve() as (url, model, _):
        model.failure = RuntimeError("CUDA out of memory.\nTried to allocate 2.00 GiB")
        with caplog.at_level(logging.ERROR, logger="yoda_inference.serve_app"):
            failed = post(url, ["Hi."])
        model.failure = None
        assert post(url, ["Hi."])[:2] == (200, ["Hi./8"])
    status, error, _ = failed
    assert status == 500 and error.startswith("internal error: RuntimeError: ")
    assert "CUDA out of memory" in error and "2.00 GiB" in error and "\n" not in error
    (record,) = [r for r in caplog.records if r.getMessage() == "POST /predict failed"]
    assert record.exc_info is not None


def raw(url: str, data: bytes, timeout: float = 10) -> tuple[int, dict[str, Any], bytes]:
    """Send ``data`` as it is; the status, the JSON and the headers of the answer, read until
    the server closes the connection."""
    with socket.create_connection((urlsplit(url).hostname, urlsplit(url).port), timeout) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body), head.lower()


POST = b"POST /predict HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize(
    ("headers", "body", "status", "error"),
    [(b"Content-Length: 2000000000\r\n", b"", 413, "the body is 2000000000 bytes: at most 1000"),
     (b"Transfer-Encoding: chunked\r\n", b"7d0\r\n" + b"x" * 2000 + b"\r\n0\r\n\r\n", 413,
      "the body is over 1000 bytes"),
     (b"Content-Length: abc\r\n", b"", 400, "Content-Length"),
     (b"Content-Length: -5\r\n", b"", 400, "Content-Length"),
     (b"Content-Length: 5\r\nContent-Length: 6\r\n", b"", 400, "Content-Length"),
     (b"Content-Length: " + b"9" * 5000 + b"\r\n", b"", 400, "Content-Length"),
     (b"Connection: close\r\n", b"", 400, "the body is empty")],
)  # fmt: skip
def test_bodies_over_the_limit_and_bad_http_are_refused_in_one_json_line(
    headers: bytes, body: bytes, status: int, error: str
) -> None:
    with serve() as (url, model, _):
        start = time.monotonic()
        got, answer, _ = raw(url, POST + headers + b"\r\n" + body)
        assert time.monotonic() - start < 5, "refused at once, the connection closed"
        assert post(url, ["still up"])[0] == 200
    assert (got, error in answer["error"], "\n" in answer["error"]) == (status, True, False)
    assert model.calls == [(["still up"], 8)]


def test_a_chunked_body_within_the_limit_is_answered() -> None:
    body = json.dumps(predict_request(["Hi."])).encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:9], body[9:]))
    with serve() as (url, _, _):
        status, answer, _ = raw(url, POST + b"Transfer-Encoding: chunked\r\nConnection: close"
                                b"\r\n\r\n" + chunked + b"0\r\n\r\n")  # fmt: skip
    assert (status, answer) == (200, {"predictions": [{"response": "Hi./8"}]})


def test_routes_and_methods_are_404_and_405_naming_what_is_allowed() -> None:
    with serve() as (url, _, _):
        port = urlsplit(url).port
        results = []
        for method, path in [("PUT", "/predict"), ("GET", "/predict"), ("HEAD", "/predict"),
                             ("POST", "/health"), ("DELETE", "/health"), ("TRACE", "/health"),
                             ("GET", "/nothing"), ("POST", "/v1/predict")]:  # fmt: skip
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request(method, path, body=b"{}" if method in ("PUT", "POST") else None)
            response = connection.getresponse()
            body = response.read()
            connection.close()
            error = json.loads(body)["error"] if method != "HEAD" else ""
            results.append((method, path, response.status, response.getheader("Allow"), error))
    for method, path, status, allowed, error in results:
        if path in ("/predict", "/health"):
            expected = "POST" if path == "/predict" else "GET, HEAD"
            assert (status, allowed) == (405, expected), (method, path)
            if method != "HEAD":  # a HEAD answer has no body
                assert method in error and path in error and expected in error, error
        else:
            assert status == 404 and path in error, (method, path)
            assert "GET /health" in error and "POST /predict" in error, error


def test_forty_stalled_clients_do_not_hold_the_server() -> None:
    """Half a request line, headers with half their body, or nothing: 40 connections left open
    by clients that stalled while sending; a whole request is answered meanwhile."""
    sends = [b"POST /pre", POST + b'Content-Length: 100\r\n\r\n{"inst', b""] * 14
    with serve() as (url, _, _):
        address = (urlsplit(url).hostname, urlsplit(url).port)
        stalled = [socket.create_connection(address, timeout=10) for _ in sends[:40]]
        try:
            for sock, data in zip(stalled, sends, strict=False):
                sock.sendall(data)
            status, answer, seconds = post(url, ["Hi."])
            health = urllib.request.urlopen(f"{url}/health", timeout=5).status
            for sock in stalled:  # none was answered, none let go: they are open, and harmless
                sock.setblocking(False)
                with pytest.raises(BlockingIOError):
                    sock.recv(1)
        finally:
            for sock in stalled:
                sock.close()
    assert (status, answer, health) == (200, ["Hi./8"], 200) and seconds < 5


def test_a_request_not_whole_within_the_read_timeout_is_dropped() -> None:
    """--read-timeout-s 1 for headers and body together: a client trickling a byte every 0.2 s
    (its request would take 10 s) is let go after about 1 s; headers without their body get a
    408; half a request line, or nothing, is closed without an answer."""
    request = POST + b"Content-Length: 20\r\n\r\n" + b"x" * 20
    with serve(replace(LIMITS, read_timeout_s=1)) as (url, _, _):
        address = (urlsplit(url).hostname, urlsplit(url).port)
        trickle = socket.create_connection(address, timeout=10)
        start = time.monotonic()
        try:
            for byte in request:
                trickle.sendall(bytes([byte]))
                time.sleep(0.2)
        except OSError:  # the server let go: a reset or a broken pipe
            pass
        finally:
            trickle.close()
        trickled = time.monotonic() - start
        status, answer, head = raw(url, POST + b"Content-Length: 100\r\n\r\n")
        half = socket.create_connection(address, timeout=10)
        half.sendall(b"POST /pre")
        closed = half.recv(100)
        half.close()
        assert post(url, ["still up"])[0] == 200
    assert trickled < 3
    assert (status, b"connection: close" in head) == (408, True)
    assert "within 1 s" in answer["error"] and "--read-timeout-s" in answer["error"]
    assert closed == b""
