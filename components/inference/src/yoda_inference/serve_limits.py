"""``yoda-serve``'s limits: the settings (flags with an environment default), a request parsed
and checked against them, the bounded wait for the model and a body read with a deadline.

Every check here is cheap and runs before the request waits for the model: a refusal costs
milliseconds, not a generation.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from yoda_inference.predict import GenerationParameters
from yoda_step_io import StepError

#: The generation parameters a request may set.
PARAMETERS = {f.name for f in fields(GenerationParameters)}
#: Vertex AI's online prediction payload limit.
VERTEX_MAX_BODY_BYTES = 1_500_000
_CHUNK = 1 << 16


class RequestError(Exception):
    """A request the server refuses with ``status`` and this one-line reason."""

    status = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(" ".join(message.split()))
        if status is not None:
            self.status = status


class BadRequestError(RequestError, ValueError):
    """A request the server refuses with a 400 and this one-line reason."""


def _limit(default: float, meaning: str) -> Any:
    return field(default=default, metadata={"help": meaning})


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server; each field is a flag (``--max-body-bytes``) whose
    default comes from the environment (``YODA_SERVE_MAX_BODY_BYTES``), else from here."""

    max_body_bytes: int = _limit(VERTEX_MAX_BODY_BYTES, "the largest body; larger: 413, unread")
    max_instances: int = _limit(256, "the most instances in one request")
    max_input_tokens: int = _limit(1024, "the longest prompt, chat template included, in tokens")
    max_new_tokens_limit: int = _limit(512, "the most max_new_tokens a request may ask")
    max_batch_size: int = _limit(64, "the largest batch_size a request may ask")
    max_queue: int = _limit(8, "requests waiting for the model; one more: 503 at once (0: none)")
    read_timeout_s: float = _limit(30.0, "seconds for a request's headers and body, else 408")
    queue_timeout_s: float = _limit(30.0, "seconds a request may wait for the model, else 503")


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def env_var(name: str) -> str:
    return "YODA_SERVE_" + name.upper()


def _parser(name: str, default: float) -> Callable[[str], float]:
    """The flag's type: seconds > 0, or a whole number >= 1 (>= 0 for the queue)."""
    least = 0 if name == "max_queue" else 1
    kind = "seconds > 0" if isinstance(default, float) else f"a whole number >= {least}"
    where = f"{flag(name)} or ${env_var(name)}"

    def parse(text: str) -> float:
        try:
            value = float(text) if isinstance(default, float) else int(text.strip(), 10)
        except ValueError:
            value = -1
        if not (0 < value < float("inf") if isinstance(default, float) else value >= least):
            raise argparse.ArgumentTypeError(f"expected {kind} ({where}), got {text!r}")
        return value

    return parse


def add_limit_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`Limits` field, its default from ``YODA_SERVE_<FIELD>``."""
    for limit in fields(Limits):
        default = getattr(Limits, limit.name)
        variable = env_var(limit.name)
        parser.add_argument(
            flag(limit.name),
            dest=limit.name,
            type=_parser(limit.name, default),
            default=os.environ.get(variable, str(default)),  # argparse parses a str default
            help=f"{limit.metadata['help']} (default: ${variable} or {default})",
        )


def limits_from_args(args: argparse.Namespace) -> Limits:
    return Limits(**{limit.name: getattr(args, limit.name) for limit in fields(Limits)})


def parse_request(
    body: bytes, defaults: GenerationParameters, max_instances: int = Limits.max_instances
) -> tuple[list[str], GenerationParameters]:
    """The texts to answer and the generation parameters of one predict request.

    Raises:
        BadRequestError: not JSON, no ``instances`` list of ``{"text": str}``, too many instances,
            or unknown or invalid ``parameters`` (a number must be finite).
    """
    try:
        request = json.loads(body or b"null")
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise BadRequestError(f"the body is not JSON: {error}") from error
    except RecursionError as error:
        raise BadRequestError("the body is not JSON: nested too deeply") from error
    instances = request.get("instances") if isinstance(request, dict) else None
    if not isinstance(instances, list) or not instances:
        raise BadRequestError(
            'expected {"instances": [{"text": "…"}, …]} with one instance or more'
        )
    if len(instances) > max_instances:
        raise BadRequestError(f"{len(instances)} instances: at most {max_instances} per request")
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
        if expected is float and not math.isfinite(value):
            raise BadRequestError(f"parameter {name} must be a finite number, got {value!r}")
    params = dataclasses.replace(defaults, **parameters)
    try:
        params.validate()
    except StepError as error:
        raise BadRequestError(str(error)) from error
    return texts, params


def content_length(values: Sequence[str], max_bytes: int) -> int:
    """The body's declared length, refused before a byte of it is read.

    Raises:
        RequestError: none (411), not one number of bytes (400), or over ``max_bytes`` (413).
    """
    if not values:
        raise RequestError("a Content-Length header is required (no chunked bodies)", 411)
    texts = {value.strip() for value in values}
    text = texts.pop()
    if texts or not (text.isascii() and text.isdigit()):
        raise BadRequestError(f"Content-Length {', '.join(values)!r} is not a number of bytes")
    if len(text) > 18 or int(text) > max_bytes:  # int() refuses a string of 4301 digits
        shown = text if len(text) <= 18 else f"{text[:18]}… ({len(text)} digits)"
        raise RequestError(
            f"the body is {shown} bytes: at most {max_bytes} ({flag('max_body_bytes')})", 413
        )
    return int(text)


class Reader(Protocol):
    def read1(self, size: int = ..., /) -> bytes: ...


def read_body(rfile: Reader, connection: socket.socket, length: int, timeout_s: float) -> bytes:
    """``length`` bytes of body, all within ``timeout_s`` (a trickle does not hold the thread).

    Raises:
        RequestError: the body did not arrive in time (408) or ended early (400).
    """
    deadline = time.monotonic() + timeout_s
    chunks: list[bytes] = []
    received = 0
    try:
        while received < length:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            connection.settimeout(left)
            chunk = rfile.read1(min(length - received, _CHUNK))
            if not chunk:
                raise BadRequestError(f"the body ended after {received} of {length} bytes")
            chunks.append(chunk)
            received += len(chunk)
    except TimeoutError as error:
        raise RequestError(
            f"the body did not arrive within {timeout_s:g} s ({received} of {length} bytes)", 408
        ) from error
    finally:
        connection.settimeout(timeout_s)
    return b"".join(chunks)


def check_parameters(params: GenerationParameters, limits: Limits) -> None:
    """Refuse a ``max_new_tokens`` or ``batch_size`` over the server's limits."""
    for name, option in (
        ("max_new_tokens", "max_new_tokens_limit"),
        ("batch_size", "max_batch_size"),
    ):
        value, limit = getattr(params, name), getattr(limits, option)
        if value > limit:
            raise BadRequestError(f"{name}={value} is over the server's {flag(option)} {limit}")


def too_long_in_characters(texts: Sequence[str], cap: int, chars_per_token: int) -> None:
    """Refuse, without tokenizing it, a text too long to fit ``cap`` tokens of at most
    ``chars_per_token`` characters each (a 1 MB text costs no tokenizer pass)."""
    for number, text in enumerate(texts):
        if len(text) > cap * chars_per_token:
            raise BadRequestError(
                f"instance {number} is {len(text)} characters: over {cap} tokens "
                f"({flag('max_input_tokens')})"
            )


def check_token_counts(counts: Sequence[int], cap: int) -> None:
    for number, count in enumerate(counts):
        if count > cap:
            raise BadRequestError(
                f"instance {number} is {count} tokens with the chat template: at most {cap} "
                f"({flag('max_input_tokens')})"
            )


def context_problem(limits: Limits, max_positions: int | None) -> str | None:
    """Why the longest prompt plus the most new tokens would not fit the model's context."""
    longest = limits.max_input_tokens + limits.max_new_tokens_limit
    if max_positions is None or longest <= max_positions:
        return None
    return (
        f"{flag('max_input_tokens')} {limits.max_input_tokens} + "
        f"{flag('max_new_tokens_limit')} {limits.max_new_tokens_limit} = {longest} tokens: over "
        f"the model's context of {max_positions} (max_position_embeddings)"
    )


class ModelGate:
    """One generation at a time; at most ``max_queue`` requests wait, each ``timeout_s`` at most.

    A request beyond the queue, or one that waited too long, gets a 503 rather than a hang.
    """

    def __init__(self, max_queue: int, timeout_s: float) -> None:
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self._model = threading.Lock()
        self._count = threading.Lock()
        self.waiting = 0

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._count:
            held = self._model.acquire(blocking=False)
            if not held and self.waiting >= self.max_queue:
                raise RequestError(
                    f"busy: a generation runs and {self.waiting} request(s) wait "
                    f"({flag('max_queue')} {self.max_queue}); retry later",
                    503,
                )
            if not held:
                self.waiting += 1
        if not held:
            try:
                held = self._model.acquire(timeout=self.timeout_s)
            finally:
                with self._count:
                    self.waiting -= 1
            if not held:
                raise RequestError(
                    f"busy: waited {self.timeout_s:g} s for the model "
                    f"({flag('queue_timeout_s')}); retry later",
                    503,
                )
        try:
            yield
        finally:
            self._model.release()
