"""The console output of a local run: colour only on a terminal, and a failed step's own reason.

KFP's local runners print their own log lines (coloured) and each step's output (indented) to
``sys.stdout``. :func:`watched_output` stands in for it during a run: it drops the colour codes
unless a terminal shows them, and remembers, per task, the step's own ``error:`` line (or the
last line it printed), so that a failed run can end on the failing step and its reason instead of
KFP's generic "finished with status FAILURE".
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TASK_START = re.compile(r"Executing task '([^']+)'")
_FAILED_TASK = re.compile(
    r"Inner task failed: '([^']+)'|Task '([^']+)' finished with status FAILURE"
)
#: KFP indents a step's own output; its own log lines start at the margin.
_STEP_OUTPUT = re.compile(r"^ {4}(?P<text>\S.*)$")


class StepFailedError(RuntimeError):
    """A step of a local run failed; the message names the step and says why."""


class RunLog:
    """A text stream that passes everything on to ``target`` and watches the step output.

    Whatever else a caller asks of a stream (``encoding``, ``fileno`` …) is ``target``'s.
    """

    def __init__(self, target: TextIO, *, color: bool) -> None:
        self.target, self.color = target, color
        self.task: str | None = None
        self.step_errors: dict[str, str] = {}
        self.last_lines: dict[str, str] = {}
        self._pending = ""

    def write(self, text: str) -> int:
        plain = ANSI.sub("", text)
        self.target.write(text if self.color else plain)
        *lines, self._pending = (self._pending + plain).split("\n")
        for line in lines:
            self._observe(line.rstrip("\r"))
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return self.target.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)

    def _observe(self, line: str) -> None:
        started = _TASK_START.search(line)
        if started:
            self.task = started.group(1)
            return
        output = _STEP_OUTPUT.match(line)
        if self.task is None or output is None:
            return
        text = output.group("text").strip()
        if text.startswith("error: "):
            self.step_errors[self.task] = text.removeprefix("error: ")
        self.last_lines[self.task] = text

    def reason(self, task: str) -> str | None:
        """The step's own ``error:`` line, else the last line it printed (a traceback's end)."""
        return self.step_errors.get(task) or self.last_lines.get(task)

    def explain(self, error: RuntimeError) -> StepFailedError:
        """KFP's failure, restated as the failing step and its own reason where known."""
        message = ANSI.sub("", str(error))
        failed = _FAILED_TASK.search(message)
        task = failed and (failed.group(1) or failed.group(2))
        reason = self.reason(task) if task else None
        return StepFailedError(f"step {task} failed: {reason}" if reason else message)


@contextmanager
def watched_output() -> Iterator[RunLog]:
    """``sys.stdout`` as a :class:`RunLog` for the block; colour only on a terminal."""
    target = sys.stdout
    log = RunLog(target, color=target.isatty() and "NO_COLOR" not in os.environ)
    sys.stdout = log
    try:
        yield log
    finally:
        sys.stdout = target
