"""Error handling, logging and timing shared by the step CLIs."""

from __future__ import annotations

import argparse
import atexit
import gc
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from yoda_step_io import timing

logger = logging.getLogger(__name__)

#: Exit status of a step that refused its input (bad flags, data or URIs).
EXIT_BAD_INPUT = 2


class StepError(Exception):
    """A problem the user can fix: the message says what, where and how, on one line."""


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr with timestamps, once per process."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


@contextmanager
def timed(label: str) -> Iterator[None]:
    """Log how long the enclosed block took."""
    start = time.perf_counter()
    yield
    logger.info("%s took %.2f s", label, time.perf_counter() - start)


def parse_bool(text: str) -> bool:
    """An argparse type for booleans: KFP renders them as ``true``/``false``."""
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_executor_input_flag(parser: argparse.ArgumentParser) -> None:
    """``--executor-input``: KFP's ``{{$}}`` placeholder, optional so the step runs by hand."""
    parser.add_argument("--executor-input", default=None, help="KFP executor input JSON ({{$}})")


def run_step(step: Callable[[], object]) -> None:
    """Run a step's entry point, turning a :class:`StepError` into one line and exit status 2.

    Unexpected exceptions keep their traceback (they are bugs, not bad input) and exit 1. On
    success, one ``timing:`` line says where the time went (:mod:`yoda_step_io.timing`).
    """
    timing.begin()
    # At exit, Python's last garbage collection walks every object torch and friends created
    # (0.5 s on 2 cores): freezing them first skips that walk; atexit handlers still run.
    atexit.register(gc.freeze)
    try:
        step()
    except StepError as error:
        message = " ".join(str(error).split())
        print(f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    timing.mark("work")
    logger.info("timing: %s", timing.format_timing())
