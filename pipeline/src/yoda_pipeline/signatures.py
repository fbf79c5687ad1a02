"""KFP signatures derived from the parameter table: where each parameter goes, its KFP type,
and functions whose signature KFP reads (``@dsl.pipeline``, ``@dsl.container_component``)."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal

from yoda_pipeline.parameters import ROWS, PipelineParameters
from yoda_pipeline.rows import Step, To


def routes(name: str) -> tuple[To, ...]:
    """Where the parameter ``name`` goes."""
    extra = PipelineParameters.model_fields[name].json_schema_extra
    assert isinstance(extra, dict), f"{name}: declare every parameter with parameter()"
    return tuple(To(*route) for route in typing.cast(list[list[Any]], extra["to"]))


def step_parameters(step: Step) -> dict[str, str]:
    """Parameter name -> flag, for the parameters ``step`` takes (the compiled rows too), in
    declaration order."""
    return {
        name: route.flag
        for name in ROWS
        for route in routes(name)
        if route.step == step and not route.each
    }


def kfp_type(name: str) -> type:
    """The parameter's type as KFP declares it: str, int, float or bool (a Literal: str)."""
    annotation = PipelineParameters.model_fields[name].annotation
    if typing.get_origin(annotation) is Literal:
        return type(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) is list:
        return list
    assert annotation in (str, int, float, bool), f"{name}: a KFP parameter type, not {annotation}"
    return typing.cast(type, annotation)


def add_parameter_flag(parser: Any, name: str) -> None:
    """``--name-with-dashes`` for the parameter ``name``: its type, choices and help from the
    table, no default (unset: the settings decide)."""
    field = PipelineParameters.model_fields[name]
    choices = (
        typing.get_args(field.annotation)
        if typing.get_origin(field.annotation) is Literal
        else None
    )
    parser.add_argument(
        f"--{name.replace('_', '-')}", type=kfp_type(name), choices=choices, help=field.description
    )


def kfp_function(
    name: str,
    doc: str,
    inputs: Mapping[str, Any],
    body: Callable[[dict[str, Any]], Any],
    *,
    defaults: Mapping[str, Any] | None = None,
    returns: Any = inspect.Signature.empty,
) -> Callable[..., Any]:
    """A function named ``name`` whose signature is ``inputs`` (name -> annotation, with
    ``defaults``); KFP calls it with one positional value per input, and ``body`` gets them
    by name."""

    def function(*values: Any) -> Any:
        return body(dict(zip(inputs, values, strict=True)))

    empty = inspect.Parameter.empty
    function.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                each,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=annotation,
                default=(defaults or {}).get(each, empty),
            )
            for each, annotation in inputs.items()
        ],
        return_annotation=returns,
    )
    function.__name__ = function.__qualname__ = name
    function.__doc__ = doc
    return function
