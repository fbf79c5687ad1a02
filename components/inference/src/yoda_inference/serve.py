"""``yoda-serve``: the inference image's online entry point, on Vertex AI's custom-container
contract, answering with the very code that made the scored batch predictions.

- ``AIP_STORAGE_URI`` (``gs://…`` or a local folder): the Model artifact (LoRA adapter, tokenizer,
  hyper-parameters), downloaded once; the base model is the one its adapter config names.
- ``AIP_HTTP_PORT`` (8080), ``AIP_HEALTH_ROUTE`` (``/health``), ``AIP_PREDICT_ROUTE``
  (``/predict``): the health route answers 200 once the model is loaded (also while a generation
  runs); the predict route takes ``{"instances": [{"text": …}, …], "parameters":
  {"max_new_tokens": …, "do_sample": …}}`` and answers ``{"predictions": [{"response": …}, …]}``,
  the instances generated in batches. The port is taken before the model loads: a bad or busy
  one is one ``error:`` line and exit status 2, at once.
- Every refusal is ``{"error": "<one line>"}``: 400 a bad request, 404 an unknown route, 405 a
  wrong method (with ``Allow``), 408 a body slower than the read timeout, 411 no
  ``Content-Length``, 413 a body over the limit (refused unread), 503 the model busy (queue
  full, or no turn within the queue timeout), 500 an unexpected error (its traceback only in the
  server's log).

Limits (flag, environment default, built-in default; see ``serve_limits.Limits``):

==========================  ==================================  =========  ======================
``--max-body-bytes``        ``YODA_SERVE_MAX_BODY_BYTES``       1500000    413 (Vertex's payload)
``--max-instances``         ``YODA_SERVE_MAX_INSTANCES``        256        400
``--max-input-tokens``      ``YODA_SERVE_MAX_INPUT_TOKENS``     1024       400, per prompt
``--max-new-tokens-limit``  ``YODA_SERVE_MAX_NEW_TOKENS_LIMIT`` 512        400
``--max-batch-size``        ``YODA_SERVE_MAX_BATCH_SIZE``       64         400
``--max-queue``             ``YODA_SERVE_MAX_QUEUE``            8          503 at once
``--read-timeout-s``        ``YODA_SERVE_READ_TIMEOUT_S``       30         408 / closed
``--queue-timeout-s``       ``YODA_SERVE_QUEUE_TIMEOUT_S``      30         503
==========================  ==================================  =========  ======================

``--max-input-tokens`` + ``--max-new-tokens-limit`` must fit the model's context
(``max_position_embeddings``), and ``--max-new-tokens`` / ``--batch-size`` (a request's
defaults) their limits: else the server refuses to start, in one line.

By hand, on a local run's model::

    AIP_STORAGE_URI=local_runs/run-…/outputs/…/fine-tuning-component/model AIP_HTTP_PORT=8080 \
        yoda-serve --quantization auto
    curl -s localhost:8080/predict -d '{"instances": [{"text": "The Force is strong."}]}'
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from yoda_inference.predict import GenerationParameters
from yoda_inference.serve_limits import (
    BadRequestError,
    Limits,
    ModelGate,
    RequestError,
    add_limit_flags,
    check_parameters,
    check_token_counts,
    content_length,
    context_problem,
    limits_from_args,
    parse_request,
    read_body,
    too_long_in_characters,
)
from yoda_step_io import StepError, run_step, setup_logging
from yoda_step_io.models import model_cache_dir
from yoda_step_io.quantization import QUANTIZATION

logger = logging.getLogger(__name__)

__all__ = [
    "BadRequestError",
    "Limits",
    "Predictor",
    "RequestError",
    "main",
    "make_handler",
    "parse_request",
]


class Answerer(Protocol):
    """What the handler asks of the model: the length check, then the answers."""

    defaults: GenerationParameters

    def check_lengths(self, texts: list[str], cap: int) -> None: ...

    def predict(self, texts: list[str], params: GenerationParameters) -> list[str]: ...


@dataclass
class Predictor:
    """The loaded model and tokenizer; batches inside one call (the handler's
    :class:`ModelGate` lets one call run at a time)."""

    model: Any
    tokenizer: Any
    defaults: GenerationParameters

    def __post_init__(self) -> None:
        # a copy to count tokens with while generate() pads with the original: a fast tokenizer
        # whose padding changes under a concurrent call fails with "Already borrowed"
        self.counter = copy.deepcopy(self.tokenizer)
        self.count_lock = threading.Lock()
        self.chars_per_token = max(len(token) for token in self.tokenizer.get_vocab())

    @property
    def max_positions(self) -> int | None:
        positions = getattr(self.model.config, "max_position_embeddings", None)
        return positions if isinstance(positions, int) else None

    def check_lengths(self, texts: list[str], cap: int) -> None:
        """Refuse a prompt (chat template included) over ``cap`` tokens."""
        from yoda_inference.generation import build_prompt

        too_long_in_characters(texts, cap, self.chars_per_token)
        prompts = [build_prompt(self.counter, text) for text in texts]
        with self.count_lock:
            ids = self.counter(prompts, add_special_tokens=False)["input_ids"]
        check_token_counts([len(i) for i in ids], cap)

    def predict(self, texts: list[str], params: GenerationParameters) -> list[str]:
        from yoda_inference.predict import generate_answers

        return generate_answers(self.model, self.tokenizer, texts, params, "answering").texts


def load_predictor(
    storage_uri: str, quantization: str, defaults: GenerationParameters
) -> Predictor:
    """Download the Model artifact (``gs://``) or take the local folder; load base + adapter."""
    from yoda_inference.model import load_for_answers

    cache = model_cache_dir()  # a restart reuses the download
    return Predictor(*load_for_answers(storage_uri, quantization, cache), defaults)


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())[:300]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def make_handler(
    predictor: Answerer, health_route: str, predict_route: str, limits: Limits | None = None
) -> type[BaseHTTPRequestHandler]:
    """The request handler of Vertex AI's custom-container contract, within ``limits``."""
    settings = limits or Limits()
    gate = ModelGate(settings.max_queue, settings.queue_timeout_s)
    allowed = {health_route: ("GET", "HEAD"), predict_route: ("POST",)}

    class Handler(BaseHTTPRequestHandler):
        timeout = settings.read_timeout_s  # each read of a request: a stalled client is let go

        def _reply(
            self, status: int, payload: dict[str, Any], headers: Sequence[tuple[str, str]] = ()
        ) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                for name, value in (("Content-Type", "application/json"), *headers):
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
            except OSError as error:  # the client left: nobody to answer
                self.close_connection = True
                logger.warning("%s left before the answer: %s", self.address_string(), error)

        def send_error(
            self, code: int, message: str | None = None, explain: str | None = None
        ) -> None:
            """http.server's own refusals (a bad request line, too long headers, an unknown
            method) in the same JSON as ours."""
            self.close_connection = True
            self._reply(code, {"error": message or self.responses.get(code, ("error",))[0]})

        def _handle(self) -> None:
            path = self.path.split("?")[0]
            try:
                if path not in allowed:
                    self._reply(404, {"error": f"no route {self.path}: GET {health_route} or "
                                               f"POST {predict_route}"})  # fmt: skip
                elif self.command not in allowed[path]:
                    methods = ", ".join(allowed[path])
                    self._reply(405, {"error": f"{self.command} is not allowed on {path}: use "
                                               f"{methods}"}, [("Allow", methods)])  # fmt: skip
                elif path == predict_route:
                    self._predict()
                else:
                    self._reply(200, {"status": "ready"})
            except Exception as error:
                logger.exception("%s %s failed", self.command, self.path)
                self.close_connection = True
                self._reply(500, {"error": f"internal error: {one_line(error)}"})

        def _predict(self) -> None:
            try:
                length = content_length(
                    self.headers.get_all("Content-Length") or [], settings.max_body_bytes
                )
                body = read_body(self.rfile, self.connection, length, settings.read_timeout_s)
                texts, params = parse_request(body, predictor.defaults, settings.max_instances)
                check_parameters(params, settings)
                predictor.check_lengths(texts, settings.max_input_tokens)
                with gate.hold():
                    answers = predictor.predict(texts, params)
            except RequestError as error:
                self.close_connection = True  # the body may be left unread
                self._reply(error.status, {"error": str(error)})
                return
            self._reply(200, {"predictions": [{"response": answer} for answer in answers]})

        def log_message(self, format: str, *args: Any) -> None:
            logger.info("%s %s", self.address_string(), format % args)

    for method in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        setattr(Handler, f"do_{method}", Handler._handle)  # routes and methods: one dispatch
    return Handler


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yoda-serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    modes = QUANTIZATION.words
    parser.add_argument(
        "--quantization",
        default=os.environ.get("YODA_QUANTIZATION", "4bit"),
        help=f"{modes} (default: $YODA_QUANTIZATION or 4bit)",
    )
    parser.add_argument("--max-new-tokens", type=int, default=64, help="default per request")
    parser.add_argument("--batch-size", type=int, default=16, help="instances per generate() call")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    add_limit_flags(parser)
    return parser


def parse_port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= 65535:
        raise StepError(f"AIP_HTTP_PORT={text!r} is not a port number (1-65535)")
    return int(text)


def listen(host: str, port: int) -> ThreadingHTTPServer:
    """The server's socket, bound and listening (its handler comes once the model is loaded)."""
    try:
        return ThreadingHTTPServer((host, port), BaseHTTPRequestHandler)
    except OSError as error:  # busy, not ours to take, or no such address
        raise StepError(f"cannot listen on {host}:{port}: {error.strerror or error}") from error


def main(argv: Sequence[str] | None = None) -> None:
    """Take the port, load the model named by ``AIP_STORAGE_URI``, then serve until stopped."""
    args = build_parser().parse_args(argv)
    setup_logging()

    def step() -> None:
        storage_uri = os.environ.get("AIP_STORAGE_URI", "").strip()
        if not storage_uri:
            raise StepError("AIP_STORAGE_URI is not set: the Model artifact's gs:// URI or folder")
        port = parse_port(os.environ.get("AIP_HTTP_PORT", "8080"))
        limits = limits_from_args(args)
        defaults = GenerationParameters(
            batch_size=args.batch_size, max_new_tokens=args.max_new_tokens
        )
        defaults.validate()
        try:
            check_parameters(defaults, limits)
        except BadRequestError as error:
            raise StepError(f"the request defaults: {error}") from error
        server = listen(args.host, port)  # before the model: a busy port costs no load
        try:
            logger.info("loading %s", storage_uri)
            predictor = load_predictor(storage_uri, args.quantization, defaults)
            problem = context_problem(limits, predictor.max_positions)
            if problem:
                raise StepError(problem)
            health = os.environ.get("AIP_HEALTH_ROUTE", "/health")
            predict = os.environ.get("AIP_PREDICT_ROUTE", "/predict")
            server.RequestHandlerClass = make_handler(predictor, health, predict, limits)
            logger.info("serving %s on %s:%s (%s, %s)", storage_uri, args.host, port, health,
                        predict)  # fmt: skip
            server.serve_forever()
        except KeyboardInterrupt:
            logger.info("stopped")
        finally:
            server.server_close()

    run_step(step)


if __name__ == "__main__":
    main()
