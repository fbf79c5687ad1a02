"""``yoda-serve``: the inference image's online entry point, on Vertex AI's custom-container
contract (``yoda_step_io.serving``), answering with the very code that made the scored batch
predictions; a Starlette app under uvicorn, with dynamic batching.

- ``AIP_STORAGE_URI`` (``gs://…`` or a local folder): the Model artifact (LoRA adapter, tokenizer,
  hyper-parameters), downloaded once; the base model is the one its adapter config names.
- ``AIP_HTTP_PORT`` (8080), ``AIP_HEALTH_ROUTE`` (``/health``), ``AIP_PREDICT_ROUTE``
  (``/predict``): the health route answers 200 once the model is loaded (also while a batch
  generates); the predict route takes ``{"instances": [{"text": …}, …], "parameters":
  {"max_new_tokens": …, "do_sample": …}}`` and answers ``{"predictions": [{"response": …}, …]}``.
  The port is taken before the model loads: a bad or busy one is one ``error:`` line and exit
  status 2, at once.
- Requests with the same parameters that arrive while the model is busy, or within
  ``--max-batch-delay-ms`` of each other, are answered by one ``generate()`` call of up to
  ``--max-batch-size`` texts (``yoda_inference.serve_batching``); 1 turns batching off.
- Every refusal is ``{"error": "<one line>"}``: 400 a bad request (or bad HTTP), 404 an unknown
  route, 405 a wrong method (with ``Allow``), 408 a body not whole within the read timeout, 413
  a body over the limit, 503 the model busy (queue full, or no turn within the queue timeout),
  500 an error while generating (its traceback only in the log). uvicorn answers 503 in plain
  text over ``--max-connections``.

Every limit below is a flag whose default comes from a ``YODA_SERVE_*`` variable.
``--max-input-tokens`` + ``--max-new-tokens-limit`` must fit the model's context
(``max_position_embeddings``), and ``--max-new-tokens`` (a request's default) its limit: else the
server refuses to start, in one line.

By hand, on a local run's model::

    AIP_STORAGE_URI=local_runs/run-…/outputs/…/fine-tuning-component/model AIP_HTTP_PORT=8080 \
        yoda-serve --quantization auto
    curl -s localhost:8080/predict -d '{"instances": [{"text": "The Force is strong."}]}'
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
from collections.abc import Sequence

import uvicorn
from starlette.types import ASGIApp

from yoda_inference.predict import GenerationParameters
from yoda_inference.serve_limits import (
    Limits,
    RequestError,
    add_limit_flags,
    check_parameters,
    context_problem,
    limits_from_args,
)
from yoda_inference.serve_protocol import with_read_timeout
from yoda_step_io import StepError, run_step, setup_logging
from yoda_step_io.quantization import QUANTIZATION
from yoda_step_io.serving import (
    HEALTH_ROUTE_VARIABLE,
    PORT_VARIABLE,
    PREDICT_ROUTE_VARIABLE,
    SERVING,
    STORAGE_URI_VARIABLE,
)

logger = logging.getLogger(__name__)


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
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    add_limit_flags(parser)
    return parser


def parse_port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= 65535:
        raise StepError(f"{PORT_VARIABLE}={text!r} is not a port number (1-65535)")
    return int(text)


def route(variable: str, default: str) -> str:
    path = os.environ.get(variable, default)
    if not path.startswith("/") or any(c.isspace() for c in path):
        raise StepError(f"{variable}={path!r} is not a route: a path such as {default}")
    return path


def request_defaults(max_new_tokens: int, limits: Limits) -> GenerationParameters:
    """A request's generation parameters where it sets none: greedy, ``max_new_tokens``, a batch
    as large as the server makes them."""
    defaults = GenerationParameters(batch_size=limits.max_batch_size, max_new_tokens=max_new_tokens)
    defaults.validate()
    try:
        check_parameters(defaults, limits)
    except RequestError as error:
        raise StepError(f"the request defaults: {error}") from error
    return defaults


def listen(host: str, port: int) -> socket.socket:
    """The server's socket, bound and listening (it serves once the model is loaded)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as error:  # busy, not ours to take, or no such address
        sock.close()
        raise StepError(f"cannot listen on {host}:{port}: {error.strerror or error}") from error
    return sock


def uvicorn_server(app: ASGIApp, limits: Limits) -> uvicorn.Server:
    """uvicorn serving ``app`` over HTTP/1.1 (h11, with the request deadline), within
    ``limits``; its log goes through ours."""
    config = uvicorn.Config(
        app,
        http=with_read_timeout(limits.read_timeout_s),
        ws="none",
        lifespan="on",
        log_config=None,
        limit_concurrency=limits.max_connections,
        server_header=False,
    )
    return uvicorn.Server(config)


def main(argv: Sequence[str] | None = None) -> None:
    """Take the port, load the model named by ``AIP_STORAGE_URI``, then serve until stopped."""
    args = build_parser().parse_args(argv)
    setup_logging()

    def step() -> None:
        storage_uri = os.environ.get(STORAGE_URI_VARIABLE, "").strip()
        if not storage_uri:
            raise StepError(
                f"{STORAGE_URI_VARIABLE} is not set: the Model artifact's gs:// URI or folder"
            )
        port = parse_port(os.environ.get(PORT_VARIABLE, str(SERVING.port)))
        health = route(HEALTH_ROUTE_VARIABLE, SERVING.health_route)
        predict = route(PREDICT_ROUTE_VARIABLE, SERVING.predict_route)
        limits = limits_from_args(args)
        defaults = request_defaults(args.max_new_tokens, limits)
        sock = listen(args.host, port)  # before the model: a busy port costs no load
        try:
            from yoda_inference.serve_app import build_app
            from yoda_inference.serve_model import load_predictor

            logger.info("loading %s", storage_uri)
            predictor = load_predictor(storage_uri, args.quantization, defaults)
            problem = context_problem(limits, predictor.max_positions)
            if problem:
                raise StepError(problem)
            app = build_app(predictor, limits, health_route=health, predict_route=predict)
            logger.info("serving %s on %s:%s (GET %s, POST %s; batches of up to %d texts)",
                        storage_uri, args.host, port, health, predict,
                        limits.max_batch_size)  # fmt: skip
            uvicorn_server(app, limits).run(sockets=[sock])
        except KeyboardInterrupt:
            logger.info("stopped")
        finally:
            sock.close()

    run_step(step)


if __name__ == "__main__":
    main()
