"""How a row of the parameter table (:mod:`yoda_pipeline.parameters`) is declared: its default,
its help, the step flags it goes to and whether it is fixed at compile time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, JsonValue

#: The steps, by their field in :class:`~yoda_pipeline.components.StepComponents`.
Step = Literal[
    "data_transformation",
    "fine_tuning",
    "champion",
    "inference",
    "evaluation",
    "report",
    "gate",
    "register",
]


@dataclass(frozen=True)
class To:
    """A parameter's destination: a step and that step's CLI flag; ``each``: an item at a time,
    in a loop over the parameter's list (the sweep's recipes, one per fine-tuning task)."""

    step: Step
    flag: str
    each: bool = False


def parameter(default: Any, help: str, *to: To, compiled: bool = False) -> Any:
    """One row: a settings field whose extra holds the flags it is passed to, and whether it is
    fixed at compile time."""
    routes: list[JsonValue] = [[route.step, route.flag, route.each] for route in to]
    extra: dict[str, JsonValue] = {"to": routes, "compiled": compiled}
    return Field(default, description=help, json_schema_extra=extra)
