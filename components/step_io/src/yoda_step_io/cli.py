"""Error handling, logging, timing and the skeleton shared by the step CLIs (:func:`run_cli`)."""

from __future__ import annotations

import argparse
import atexit
import gc
import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from yoda_step_io import timing

logger = logging.getLogger(__name__)

#: Exit status of a step that refused its input (bad flags, data or URIs).
EXIT_BAD_INPUT = 2
#: A step's ExecutorOutput metadata: per output artifact name, its metadata.
Metadata = Mapping[str, Mapping[str, Any]]


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


def step_parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    """A step CLI's parser; its help keeps the description's lines (its ``By hand::`` example)."""
    return argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )


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


@dataclass(frozen=True)
class Reported:
    """What a step body returns when an output lives elsewhere than KFP placed it: ``uris``
    replace those outputs' URIs in the ExecutorOutput."""

    metadata: Metadata
    uris: Mapping[str, str] | None = None


def run_cli(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    body: Callable[[argparse.Namespace], Metadata | Reported],
    *,
    outputs: Sequence[str] = (),
    inputs: Sequence[str] = (),
) -> None:
    """A step CLI's ``main``: parse ``argv``, set up logging, then, in :func:`run_step`, load the
    executor input, check the ``outputs`` (flag attributes; unset ones skipped) before any work,
    run ``body`` and write the ExecutorOutput with the metadata it returns.

    The outputs must be writable, this step's or new, and overlap none of the ``inputs`` (flag
    attributes) that are local paths (:func:`~yoda_step_io.files.check_outputs`).
    """
    args = parser.parse_args(argv)
    setup_logging()

    def step() -> None:
        # here, not above: executor and files import this module's StepError
        from yoda_step_io.executor import load_executor_input, write_executor_output
        from yoda_step_io.files import check_outputs, local_inputs

        executor_input = load_executor_input(args.executor_input)
        paths = [getattr(args, name) for name in outputs]
        sources = local_inputs(*(getattr(args, name) for name in inputs))
        check_outputs(*(path for path in paths if path is not None), inputs=sources)
        result = body(args)
        reported = result if isinstance(result, Reported) else Reported(result)
        write_executor_output(executor_input, reported.metadata, reported.uris)

    run_step(step)
