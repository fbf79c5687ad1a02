"""``docs/parameters.md``, written from the parameter table (``make parameters-doc``); a test
checks the committed page is current."""

from __future__ import annotations

import sys
import typing
from typing import Any, Literal

import annotated_types

from yoda_pipeline.checks import CHECKS, CROSS_CHECKS
from yoda_pipeline.parameters import FIXED, PARAMETERS, PipelineParameters
from yoda_pipeline.signatures import kfp_type, routes

_SIGNS = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}


def _bounds(name: str) -> str:
    field = PipelineParameters.model_fields[name]
    if typing.get_origin(field.annotation) is Literal:
        return "one of " + ", ".join(f"`{value}`" for value in typing.get_args(field.annotation))
    parts = [
        f"{_SIGNS[key]} {getattr(bound, key)}"
        for bound in field.metadata
        if isinstance(bound, annotated_types.Gt | annotated_types.Ge | annotated_types.Lt
                      | annotated_types.Le)
        for key in _SIGNS
        if hasattr(bound, key)
    ]  # fmt: skip
    if name in CHECKS or name in CROSS_CHECKS:
        parts.append("checked")
    return ", ".join(parts)


def _cell(value: Any) -> str:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return f"`{text}`" if text else "(empty)"


def parameters_page() -> str:
    """The parameter table as Markdown."""
    lines = [
        "# Pipeline parameters",
        "",
        "Written by `make parameters-doc` from `pipeline/src/yoda_pipeline/parameters.py`, the one",
        "place each parameter is declared. Each is a setting too: `YODA_<NAME>` in the",
        "environment or `.env`, or `--set name=value` on the `yoda-pipeline` commands that run",
        "the pipeline (`SET='name=value …'` on their make targets). \"checked\": a value outside",
        "what is allowed is refused with one line naming its variable, before anything runs.",
        "",
        "| parameter | type | default | bounds | step flag | what it does |",
        "|---|---|---|---|---|---|",
    ]
    for name in PARAMETERS:
        field = PipelineParameters.model_fields[name]
        flags = "<br>".join(f"{route.step} `{route.flag}`" for route in routes(name))
        lines.append(
            f"| `{name}` | {kfp_type(name).__name__} | {_cell(field.default)} | {_bounds(name)} "
            f"| {flags} | {field.description} |"
        )
    lines += ["", "## Step flags the pipeline leaves at the step's default", ""]
    lines += [
        f"- {step} `{flag}`: {reason}."
        for step, flags in FIXED.items()
        for flag, reason in flags.items()
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(parameters_page())
