"""A predict request parsed and checked by pydantic: its texts and its generation parameters, or
a 400 with one line naming what is wrong.

The shape is the serving contract's (:mod:`yoda_step_io.serving`); the parameters a request may
set are :class:`~yoda_inference.predict.GenerationParameters`' fields, each of its default's
type (strict: ``"5"`` is no integer, ``1`` no boolean, ``NaN`` and ``1e999`` no number), and
their bounds are that class's own (``validate()``).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, create_model

from yoda_inference.predict import GenerationParameters
from yoda_inference.serve_limits import RequestError
from yoda_step_io import StepError
from yoda_step_io.serving import INSTANCES, PARAMETERS, TEXT

#: The request's shape, as an error names it.
SHAPE = f'{{"{INSTANCES}": [{{"{TEXT}": "…"}}, …], "{PARAMETERS}": {{…}}}}'


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("the text is empty")
    return text


def request_model(defaults: GenerationParameters, max_instances: int) -> type[BaseModel]:
    """The predict request's model: one instance or more (at most ``max_instances``), each with
    a non-blank ``text`` (its other keys ignored), and optional ``parameters``."""
    strict = ConfigDict(strict=True, allow_inf_nan=False)
    names = [f.name for f in dataclasses.fields(defaults)]
    known: dict[str, Any] = {name: (type(getattr(defaults, name)), getattr(defaults, name))
                             for name in names}  # fmt: skip
    parameters: Any = create_model(
        "Parameters",
        __config__=ConfigDict(strict=True, allow_inf_nan=False, extra="forbid"),
        **known,
    )
    text: dict[str, Any] = {TEXT: (Annotated[str, AfterValidator(_not_blank)], ...)}
    instance: Any = create_model("Instance", __config__=strict, **text)
    fields: dict[str, Any] = {
        INSTANCES: (list[instance], Field(min_length=1, max_length=max_instances)),
        PARAMETERS: (parameters | None, None),
    }
    return create_model("PredictRequest", __config__=strict, **fields)


def _shown(value: object) -> str:
    text = repr(value) if isinstance(value, str | int | float | bool) else type(value).__name__
    return text if len(text) <= 40 else f"{text[:37]}..."


def explain(error: ValidationError, known: list[str]) -> str:
    """The first problem pydantic found, in one line naming where it is."""
    first = error.errors(include_url=False)[0]
    kind, where = first["type"], ".".join(str(part) for part in first["loc"])
    if kind == "json_invalid":
        return f"the body is not JSON: {first['ctx']['error']}"
    if kind == "extra_forbidden":
        return f"unknown parameter {first['loc'][-1]}: use {', '.join(known)}"
    message = f"{where}: {first['msg']}" if where else first["msg"]
    if kind not in ("missing", "too_short", "too_long") and "input" in first:
        message += f", got {_shown(first['input'])}"
    if len(first["loc"]) <= 1:
        message += f" (expected {SHAPE})"
    more = error.error_count() - 1
    return message + (f" (and {more} more problem(s))" if more else "")


def parse_request(
    body: bytes, defaults: GenerationParameters, model: type[BaseModel]
) -> tuple[list[str], GenerationParameters]:
    """The texts to answer and the generation parameters of one predict request.

    ``model`` is :func:`request_model`'s, made once for the server's limits.

    Raises:
        RequestError: (400) not JSON, not the contract's shape, unknown, mistyped or invalid
            parameters; one line.
    """
    if not body.strip():
        raise RequestError(f"the body is empty: expected {SHAPE}")
    known = [f.name for f in dataclasses.fields(defaults)]
    try:
        request = model.model_validate_json(body)
    except ValidationError as error:
        raise RequestError(explain(error, known)) from error
    texts = [getattr(instance, TEXT) for instance in getattr(request, INSTANCES)]
    given = getattr(request, PARAMETERS)
    changes = given.model_dump(exclude_unset=True) if given is not None else {}
    params = dataclasses.replace(defaults, **changes)
    try:
        params.validate()
    except StepError as error:
        raise RequestError(f"{PARAMETERS}: {error}") from error
    return texts, params
