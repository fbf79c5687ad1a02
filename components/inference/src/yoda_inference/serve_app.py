"""``yoda-serve``'s ASGI app (Starlette): the health and predict routes of the serving contract,
refusals as ``{"error": "<one line>"}``, and the batcher started and stopped with the app.

What Starlette does here: the routing (404 an unknown route, 405 a wrong method with ``Allow``),
the body read, chunked or not, and the exception handlers that make every refusal one JSON line.
pydantic parses the request (:mod:`yoda_inference.serve_request`); uvicorn the HTTP and the
connections (:mod:`yoda_inference.serve_protocol`).

The body's size limit is :func:`read_body`'s, not Starlette's ``Route(max_body_size=…)``: where the
declared ``Content-Length`` is over the limit, Starlette's replaces whatever the app answers with a
plain-text ``Content Too Large`` and leaves the connection open for the rest of the body.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from yoda_inference.predict import GenerationParameters
from yoda_inference.serve_batching import Batcher
from yoda_inference.serve_limits import (
    Limits,
    RequestError,
    check_parameters,
    check_token_counts,
    flag,
    too_long_in_characters,
)
from yoda_inference.serve_request import parse_request, request_model
from yoda_step_io.serving import SERVING, predict_answer

logger = logging.getLogger(__name__)


class Answerer(Protocol):
    """What the app asks of the model (``serve_model.Predictor``; a stand-in in tests)."""

    defaults: GenerationParameters
    chars_per_token: int

    def count_tokens(self, texts: list[str]) -> list[int]: ...

    def answer(self, texts: list[str], params: GenerationParameters) -> list[str]: ...


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())[:300]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def refuse(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split())}, status, headers)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request's body, at most ``max_bytes``.

    Raises:
        RequestError: (413) its ``Content-Length`` says more (refused unread), or its chunks
            add up to more (refused as soon as they do).
    """
    declared = request.headers.get("content-length", "")  # digits: h11 refused anything else
    if declared and (len(declared) > 18 or int(declared) > max_bytes):
        most = f"at most {max_bytes} ({flag('max_body_bytes')})"
        raise RequestError(f"the body is {declared} bytes: {most}", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise RequestError(
                f"the body is over {max_bytes} bytes ({flag('max_body_bytes')})", 413
            )
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(
    answerer: Answerer,
    limits: Limits,
    *,
    health_route: str = SERVING.health_route,
    predict_route: str = SERVING.predict_route,
) -> Starlette:
    """The app answering ``predict_route`` with ``answerer``, within ``limits``."""
    batcher = Batcher(answerer.answer, limits)
    model = request_model(answerer.defaults, limits.max_instances)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        batching = asyncio.create_task(batcher.run(), name="yoda-batcher")
        try:
            yield
        finally:
            batching.cancel()
            batcher.close()

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ready"})

    async def predict(request: Request) -> Response:
        body = await read_body(request, limits.max_body_bytes)
        texts, params = parse_request(body, answerer.defaults, model)
        check_parameters(params, limits)
        too_long_in_characters(texts, limits.max_input_tokens, answerer.chars_per_token)
        # in a thread: the tokenizer may wait for the worker's lock, the event loop never does
        counts = await asyncio.to_thread(answerer.count_tokens, texts)
        check_token_counts(counts, limits.max_input_tokens)
        try:
            answers = await batcher.answer(texts, params)
        except RequestError:
            raise
        except Exception as error:  # generating failed (a CUDA out-of-memory error): this
            # batch's requests get a 500, the server goes on
            logger.error("%s %s failed", request.method, request.url.path, exc_info=error)
            return refuse(500, f"internal error: {one_line(error)}")
        return JSONResponse(predict_answer(answers))

    async def request_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestError)
        unread = {"Connection": "close"} if error.status == 413 else None  # the rest: not read
        return refuse(error.status, str(error), unread)

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        method, path = request.method, request.url.path
        if error.status_code == 404:
            message = f"no route {path}: GET {health_route} or POST {predict_route}"
        elif error.status_code == 405:
            allowed = ", ".join(sorted((error.headers or {}).get("Allow", "").split(", ")))
            message = f"{method} is not allowed on {path}: use {allowed}"
            return refuse(405, message, {"Allow": allowed})
        else:
            message = error.detail
        return refuse(error.status_code, message, dict(error.headers or {}))

    async def client_left(request: Request, error: Exception) -> Response:
        client = f"{request.client.host}:{request.client.port}" if request.client else "a client"
        logger.info("%s left before its request arrived whole", client)
        return Response(status_code=400)  # nobody reads it

    async def internal_error(request: Request, error: Exception) -> Response:
        # Starlette raises it again once answered: uvicorn logs its traceback
        return refuse(500, f"internal error: {one_line(error)}")

    routes = [
        Route(health_route, health, methods=["GET"]),
        Route(predict_route, predict, methods=["POST"]),
    ]
    handlers = {RequestError: request_error, HTTPException: http_error,
                ClientDisconnect: client_left, Exception: internal_error}  # fmt: skip
    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
    app.state.batcher = batcher  # its queue, for a look from outside (the tests)
    return app
