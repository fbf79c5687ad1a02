"""``yoda-serve``'s limits: each a flag whose default comes from a ``YODA_SERVE_*`` variable, and
the cheap checks a request passes before it waits for the model.

A bad flag or variable is one ``yoda-serve: error: …`` line and exit status 2, before anything is
imported or loaded (argparse's own refusal).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from yoda_inference.predict import GenerationParameters

#: Vertex AI's online prediction payload limit.
VERTEX_MAX_BODY_BYTES = 1_500_000


class RequestError(Exception):
    """A request the server refuses with ``status`` and this one-line reason."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(" ".join(message.split()))
        self.status = status


def _limit(default: float, meaning: str, least: float = 1) -> Any:
    return field(default=default, metadata={"help": meaning, "least": least})


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server, and how it batches; each field is a flag
    (``--max-body-bytes``) whose default comes from the environment
    (``YODA_SERVE_MAX_BODY_BYTES``), else from here."""

    max_body_bytes: int = _limit(VERTEX_MAX_BODY_BYTES, "the largest body; larger: 413")
    max_instances: int = _limit(256, "the most instances in one request")
    max_input_tokens: int = _limit(1024, "the longest prompt, chat template included, in tokens")
    max_new_tokens_limit: int = _limit(512, "the most max_new_tokens a request may ask")
    max_batch_size: int = _limit(16, "the most texts in one generate() call (1: no batching)")
    max_batch_delay_ms: float = _limit(
        10.0, "how long a request waits for others to batch with when the model is idle", 0
    )
    max_queue: int = _limit(64, "requests waiting for the model; one more: 503 at once", 0)
    read_timeout_s: float = _limit(30.0, "seconds for a request's headers and body together")
    queue_timeout_s: float = _limit(30.0, "seconds a request may wait for the model, else 503")
    max_connections: int = _limit(1000, "open connections; over it uvicorn answers 503")

    @property
    def max_batch_delay_s(self) -> float:
        return self.max_batch_delay_ms / 1000


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def env_var(name: str) -> str:
    return "YODA_SERVE_" + name.upper()


def _parser(name: str, default: float, least: float) -> Callable[[str], float]:
    """The flag's type: a finite number (``float`` fields) or a whole number, at least
    ``least`` (above 0 for seconds)."""
    number = isinstance(default, float)
    unit = "milliseconds" if name.endswith("_ms") else "seconds"
    kind = (f"{unit} > 0" if least else f"{unit} >= 0") if number else f"a whole number >= {least}"
    where = f"{flag(name)} or ${env_var(name)}"

    def parse(text: str) -> float:
        try:
            value = float(text) if number else int(text.strip(), 10)
        except ValueError:
            value = -1
        fits = 0 < value < float("inf") if least else 0 <= value < float("inf")
        if not (fits if number else value >= least):
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
            type=_parser(limit.name, default, limit.metadata["least"]),
            default=os.environ.get(variable, str(default)),  # argparse parses a str default
            help=f"{limit.metadata['help']} (default: ${variable} or {default})",
        )


def limits_from_args(args: argparse.Namespace) -> Limits:
    return Limits(**{limit.name: getattr(args, limit.name) for limit in fields(Limits)})


def check_parameters(params: GenerationParameters, limits: Limits) -> None:
    """Refuse a ``max_new_tokens`` or ``batch_size`` over the server's limits."""
    for name, option in (
        ("max_new_tokens", "max_new_tokens_limit"),
        ("batch_size", "max_batch_size"),
    ):
        value, limit = getattr(params, name), getattr(limits, option)
        if value > limit:
            raise RequestError(f"{name}={value} is over the server's {flag(option)} {limit}")


def too_long_in_characters(texts: Sequence[str], cap: int, chars_per_token: int) -> None:
    """Refuse, without tokenizing it, a text too long to fit ``cap`` tokens of at most
    ``chars_per_token`` characters each (a 1 MB text costs no tokenizer pass)."""
    for number, text in enumerate(texts):
        if len(text) > cap * chars_per_token:
            raise RequestError(
                f"instance {number} is {len(text)} characters: over {cap} tokens "
                f"({flag('max_input_tokens')})"
            )


def check_token_counts(counts: Sequence[int], cap: int) -> None:
    for number, count in enumerate(counts):
        if count > cap:
            raise RequestError(
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
