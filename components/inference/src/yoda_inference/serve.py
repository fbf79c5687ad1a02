"""``yoda-serve``: the inference image's online entry point, on Vertex AI's custom-container
contract, answering with the very code that made the scored batch predictions.

- ``AIP_STORAGE_URI`` (``gs://…`` or a local folder): the Model artifact (LoRA adapter, tokenizer,
  hyper-parameters), downloaded once; the base model is the one its adapter config names.
- ``AIP_HTTP_PORT`` (8080), ``AIP_HEALTH_ROUTE`` (``/health``), ``AIP_PREDICT_ROUTE``
  (``/predict``): the health route answers 200 once the model is loaded; the predict route takes
  ``{"instances": [{"text": …}, …], "parameters": {"max_new_tokens": …, "do_sample": …}}`` and
  answers ``{"predictions": [{"response": …}, …]}``, the instances generated in batches.
- A bad request gets a 400 and ``{"error": "<one line>"}``.

By hand, on a local run's model::

    AIP_STORAGE_URI=local_runs/run-…/outputs/…/fine-tuning-component/model AIP_HTTP_PORT=8080 \
        yoda-serve --quantization auto
    curl -s localhost:8080/predict -d '{"instances": [{"text": "The Force is strong."}]}'
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from yoda_inference.model import QUANTIZATION_MODES
from yoda_inference.predict import GenerationParameters
from yoda_step_io import StepError, run_step, setup_logging

logger = logging.getLogger(__name__)

#: Most instances one request may carry (Vertex AI's online payloads stay under 1.5 MB).
MAX_INSTANCES = 256
PARAMETERS = {f.name for f in fields(GenerationParameters)}


class BadRequestError(ValueError):
    """A request the server refuses with a 400 and this one-line reason."""


def parse_request(
    body: bytes, defaults: GenerationParameters
) -> tuple[list[str], GenerationParameters]:
    """The texts to answer and the generation parameters of one predict request.

    Raises:
        BadRequestError: not JSON, no ``instances`` list of ``{"text": str}``, too many instances,
            or unknown or invalid ``parameters``.
    """
    try:
        request = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadRequestError(f"the body is not JSON: {error}") from error
    instances = request.get("instances") if isinstance(request, dict) else None
    if not isinstance(instances, list) or not instances:
        raise BadRequestError(
            'expected {"instances": [{"text": "…"}, …]} with one instance or more'
        )
    if len(instances) > MAX_INSTANCES:
        raise BadRequestError(f"{len(instances)} instances: at most {MAX_INSTANCES} per request")
    texts = []
    for number, instance in enumerate(instances):
        text = instance.get("text") if isinstance(instance, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise BadRequestError(f'instance {number} has no non-empty "text" string')
        texts.append(text)
    parameters = request.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequestError('"parameters" must be an object')
    unknown = sorted(set(parameters) - PARAMETERS)
    if unknown:
        known = ", ".join(sorted(PARAMETERS))
        raise BadRequestError(f"unknown parameter(s) {', '.join(unknown)}: use {known}")
    for name, value in parameters.items():
        expected = type(getattr(defaults, name))
        number = expected is float and type(value) is int
        if type(value) is not expected and not number:
            raise BadRequestError(f"parameter {name} must be a {expected.__name__}, got {value!r}")
    params = dataclasses.replace(defaults, **parameters)
    try:
        params.validate()
    except StepError as error:
        raise BadRequestError(str(error)) from error
    return texts, params


@dataclass
class Predictor:
    """The loaded model and tokenizer; one generation at a time (a lock), batches inside."""

    model: Any
    tokenizer: Any
    defaults: GenerationParameters

    def __post_init__(self) -> None:
        self.lock = threading.Lock()

    def predict(self, texts: list[str], params: GenerationParameters) -> list[str]:
        from yoda_inference.predict import generate_answers

        with self.lock:
            return generate_answers(self.model, self.tokenizer, texts, params, "answering").texts


def load_predictor(
    storage_uri: str, quantization: str, defaults: GenerationParameters
) -> Predictor:
    """Download the Model artifact (``gs://``) or take the local folder; load base + adapter."""
    from yoda_inference.model import load_for_answers

    cache = Path(tempfile.gettempdir()) / "yoda-serve-models"  # a restart reuses the download
    return Predictor(*load_for_answers(storage_uri, quantization, cache), defaults)


def make_handler(
    predictor: Predictor, health_route: str, predict_route: str
) -> type[BaseHTTPRequestHandler]:
    """The request handler of Vertex AI's custom-container contract."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.split("?")[0] == health_route:
                self._reply(200, {"status": "ready"})
            else:
                self._reply(
                    404, {"error": f"no route {self.path}: use {health_route} or {predict_route}"}
                )

        def do_POST(self) -> None:
            if self.path.split("?")[0] != predict_route:
                self._reply(404, {"error": f"no route {self.path}: POST to {predict_route}"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                texts, params = parse_request(self.rfile.read(length), predictor.defaults)
            except BadRequestError as error:
                self._reply(400, {"error": " ".join(str(error).split())})
                return
            answers = predictor.predict(texts, params)
            self._reply(200, {"predictions": [{"response": answer} for answer in answers]})

        def log_message(self, format: str, *args: Any) -> None:
            logger.info("%s %s", self.address_string(), format % args)

    return Handler


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yoda-serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    modes = ", ".join(QUANTIZATION_MODES)
    parser.add_argument(
        "--quantization",
        default=os.environ.get("YODA_QUANTIZATION", "4bit"),
        help=f"{modes} (default: $YODA_QUANTIZATION or 4bit)",
    )
    parser.add_argument("--max-new-tokens", type=int, default=64, help="default per request")
    parser.add_argument("--batch-size", type=int, default=16, help="instances per generate() call")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Load the model named by ``AIP_STORAGE_URI``, then serve until stopped."""
    args = build_parser().parse_args(argv)
    setup_logging()

    def step() -> None:
        storage_uri = os.environ.get("AIP_STORAGE_URI", "").strip()
        if not storage_uri:
            raise StepError("AIP_STORAGE_URI is not set: the Model artifact's gs:// URI or folder")
        port = os.environ.get("AIP_HTTP_PORT", "8080")
        if not port.isdigit():
            raise StepError(f"AIP_HTTP_PORT={port!r} is not a port number")
        defaults = GenerationParameters(
            batch_size=args.batch_size, max_new_tokens=args.max_new_tokens
        )
        defaults.validate()
        predictor = load_predictor(storage_uri, args.quantization, defaults)
        health = os.environ.get("AIP_HEALTH_ROUTE", "/health")
        predict = os.environ.get("AIP_PREDICT_ROUTE", "/predict")
        server = ThreadingHTTPServer(
            (args.host, int(port)), make_handler(predictor, health, predict)
        )
        logger.info("serving %s on %s:%s (%s, %s)", storage_uri, args.host, port, health, predict)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            logger.info("stopped")
        finally:
            server.server_close()

    run_step(step)


if __name__ == "__main__":
    main()
