"""What a step's value may be, declared once where the step declares it: a bound or a list of
choices that parses a flag's text (an argparse ``type``), checks a value given from Python, and
says in words what it allows (the step's ``--help``, the pipeline's pre-flight and
``docs/parameters.md`` all read it from here).

A config type declares its fields with :func:`value`; :func:`check_fields` checks an instance and
:func:`add_field_flags` gives the step's parser one flag per field.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from yoda_step_io.cli import BadValueError

#: A seed: what numpy, torch and Python's ``random`` all take.
SEED_MAX = 2**32 - 1


@dataclass(frozen=True)
class Allowed:
    """What one value may be: a number within bounds (plus ``also`` values), one of ``choices``,
    or text that ``rule`` accepts; ``words`` says it for people."""

    kind: type
    words: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    also: tuple[Any, ...] = ()
    choices: tuple[str, ...] = ()
    rule: Callable[[Any], str | None] | None = None
    convert: Callable[[str], Any] | None = None  # text -> value, where it is not ``kind(text)``

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed ("expected …"), or ``None``."""
        if value in self.also and type(value) is self.kind:
            return None
        if self.kind in (int, float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                return f"expected {self.words}"
            if (self.kind is int and not isinstance(value, int)) or not math.isfinite(value):
                return f"expected {self.words}"
            low_bad = self.low is not None and (
                value <= self.low if self.low_open else value < self.low
            )
            high_bad = self.high is not None and (
                value >= self.high if self.high_open else value > self.high
            )
            return f"expected {self.words}" if low_bad or high_bad else None
        if self.kind in (bool, str, tuple, dict) and not isinstance(value, self.kind):
            return f"expected {self.words}"
        if self.choices and value not in self.choices:
            return f"expected {self.words}"
        return self.rule(value) if self.rule is not None else None

    def __call__(self, text: str) -> Any:
        """argparse's ``type``: the text parsed, then checked."""
        value: Any = text
        try:
            if self.convert is not None:
                value = self.convert(text)
            elif self.kind is int:
                value = int(text.strip(), 10)
            elif self.kind is float:
                value = float(text)
            elif self.kind is bool:
                value = parse_bool(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {self.words}") from None
        problem = self.problem(value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    @property
    def __name__(self) -> str:  # argparse names the type in some messages
        return self.kind.__name__


def split_names(text: str) -> tuple[str, ...]:
    """``"a, b,,a"`` -> ``("a", "b")``: a comma list, stripped, empties and repeats dropped."""
    return tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


def json_object(text: str) -> Any:
    """JSON text, its whole numbers as integers: a JSON object that passed through a protobuf
    Struct (KFP's parameters) has every number a double (``16`` comes back ``16.0``)."""

    def plain(value: Any) -> Any:
        return int(value) if isinstance(value, float) and value.is_integer() else value

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        return plain(value)

    return walk(json.loads(text))


def names_in(allowed: tuple[str, ...], what: str) -> Allowed:
    """A comma list (a tuple once parsed) of names among ``allowed``; empty: none given."""

    def rule(names: tuple[str, ...]) -> str | None:
        unknown = [name for name in names if name not in allowed]
        return f"{', '.join(unknown)}: expected {what}" if unknown else None

    return Allowed(tuple, what, rule=rule, convert=split_names)


def parse_bool(text: str) -> bool:
    """``true``/``false`` as KFP renders them (also 1/0, yes/no)."""
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(text)


def _range(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    left = "" if low is None else f"{'>' if low_open else '≥'} {low:g}"
    right = "" if high is None else f"{'<' if high_open else '≤'} {high:g}"
    return " and ".join(part for part in (left, right) if part)


def integer(low: int | None = None, high: int | None = None, *, also: tuple[int, ...] = (),
            words: str = "") -> Allowed:  # fmt: skip
    """A whole number in ``[low, high]``, or one of ``also``."""
    text = words or (
        f"a whole number from {low} to {high}" if low is not None and high is not None
        else f"a whole number {_range(low, high, False, False)}"
    )  # fmt: skip
    if also and not words:
        text += " (or " + ", ".join(map(str, also)) + ")"
    return Allowed(int, text, low, high, also=also)


def number(*, ge: float | None = None, gt: float | None = None, le: float | None = None,
           lt: float | None = None) -> Allowed:  # fmt: skip
    """A finite number within the bounds given."""
    low, high = (gt if gt is not None else ge), (lt if lt is not None else le)
    words = f"a number {_range(low, high, gt is not None, lt is not None)}"
    return Allowed(float, words, low, high, low_open=gt is not None, high_open=lt is not None)


def one_of(*choices: str) -> Allowed:
    return Allowed(str, "one of " + ", ".join(choices), choices=choices)


def text(words: str, rule: Callable[[Any], str | None], *, kind: type = str,
         convert: Callable[[str], Any] | None = None) -> Allowed:  # fmt: skip
    """Text that ``rule`` accepts (it returns why not, or ``None``); ``convert`` makes the
    value of another ``kind`` from it (a comma list to a tuple)."""
    return Allowed(kind, words, rule=rule, convert=convert)


BOOLEAN = Allowed(bool, "true or false")
SEED = integer(0, SEED_MAX)


def value(default: Any, allowed: Allowed | None, help: str, *, flag: str = "") -> Any:
    """A config field: its default, what it allows, its help, and (when it differs from the
    field's name) its flag."""
    return dataclasses.field(
        default=default, metadata={"allowed": allowed, "help": help, "flag": flag}
    )


def field_flag(field: dataclasses.Field[Any]) -> str:
    return str(field.metadata.get("flag") or "--" + field.name.replace("_", "-"))


def check_fields(config: Any) -> None:
    """Each field of the dataclass instance ``config`` against what it allows.

    Raises:
        BadValueError: the first field that is not allowed, named by its flag.
    """
    for field in dataclasses.fields(config):
        allowed = field.metadata.get("allowed")
        given = getattr(config, field.name)
        problem = allowed.problem(given) if allowed is not None else None
        if problem:
            raise BadValueError(field_flag(field), given, problem)


def add_field_flags(parser: argparse.ArgumentParser, config: type) -> None:
    """One flag per field of the dataclass ``config``: its type and check from what it allows,
    its default and help from the field."""
    for field in dataclasses.fields(config):
        allowed: Allowed | None = field.metadata.get("allowed")
        parser.add_argument(
            field_flag(field),
            dest=field.name,
            type=allowed or str,
            default=field.default,
            help=f"{field.metadata['help']}; {allowed.words if allowed else 'any'} "
            f"(default: {field.default})",
        )


def from_args(config: type, args: argparse.Namespace) -> Any:
    """An instance of the dataclass ``config`` from the flags :func:`add_field_flags` added."""
    return config(**{field.name: getattr(args, field.name) for field in dataclasses.fields(config)})
