"""Where a step process spends its time: start, imports, load, work.

``start`` runs from the process's creation to the step's entry (interpreter, the CLI's imports,
flag parsing); a step then calls :func:`mark` after its heavy imports (``"imports"``) and after
loading a model (``"load"``); :func:`~yoda_step_io.cli.run_step` marks the end of the work and
logs one ``timing:`` line, which ``make bench`` reads. The exit (interpreter shutdown) can only be
seen from outside: the bench takes it from the runner's task-finished time.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_marks: list[tuple[str, float]] = []


def process_started_at() -> float | None:
    """Epoch seconds at which this process was created (Linux ``/proc``), else ``None``."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started_ticks = int(fields[19])  # field 22 of stat(5), after pid and comm
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return time.time() - uptime + started_ticks / os.sysconf("SC_CLK_TCK")


def begin() -> None:
    """The step is entered: forget earlier marks (an in-process rerun) and take the first."""
    _marks.clear()
    mark("start")


def mark(phase: str) -> None:
    """The phase ``phase`` ends now."""
    _marks.append((phase, time.time()))


def phase_seconds() -> dict[str, float]:
    """Seconds per phase, in order; ``start`` counts from the process's creation."""
    seconds: dict[str, float] = {}
    previous = process_started_at()
    for phase, at in _marks:
        if previous is not None:
            seconds[phase] = seconds.get(phase, 0.0) + max(0.0, at - previous)
        previous = at
    return seconds


def format_timing() -> str:
    """``start 0.31 s | imports 4.10 s | load 0.52 s | work 4.40 s``."""
    return " | ".join(f"{phase} {value:.2f} s" for phase, value in phase_seconds().items())
