"""Error handling, logging, timing and the skeleton shared by the step CLIs (:class:`Step`)."""

from __future__ import annotations

import argparse
import atexit
import gc
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

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


class BadValueError(StepError):
    """A value a step refuses, named by its flag: the pre-flight turns the flag back into the
    pipeline parameter that fed it."""

    def __init__(self, flag: str, given: object, problem: str) -> None:
        self.flag, self.given, self.problem = flag, given, problem
        shown = repr(given) if isinstance(given, str) else str(given)
        super().__init__(f"{flag} {shown}: {problem}")


class StepParser(argparse.ArgumentParser):
    """A step's parser: a bad flag is an exception (one line, the flag named), never argparse's
    usage text and exit."""

    def __init__(self, prog: str, description: str | None) -> None:
        super().__init__(
            prog=prog,
            description=description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            exit_on_error=False,
        )

    def error(self, message: str) -> NoReturn:
        raise StepError(f"{self.prog}: {message}")


def step_parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    """A step CLI's parser; its help keeps the description's lines (its ``By hand::`` example)."""
    return StepParser(prog, description)


def add_executor_input_flag(parser: argparse.ArgumentParser) -> None:
    """``--executor-input``: KFP's ``{{$}}`` placeholder, optional so the step runs by hand."""
    parser.add_argument("--executor-input", default=None, help="KFP executor input JSON ({{$}})")


def parse_arguments(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """``argv`` parsed by a step's parser.

    Raises:
        BadValueError: a flag's value that its type refuses.
        StepError: an unknown or missing flag.
    """
    try:
        return parser.parse_args(list(argv))
    except argparse.ArgumentError as error:
        flag = error.argument_name or "a flag"
        given = _given(argv, flag)
        raise BadValueError(flag, given, error.message.replace("invalid choice: ", "")) from None


def _given(argv: Sequence[str], flag: str) -> str:
    for index, arg in enumerate(argv):
        if arg == flag and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(f"{flag}="):
            return arg.partition("=")[2]
    return ""


class Stopped(BaseException):
    """SIGTERM or SIGINT: not an ``Exception``, so that no library's ``except Exception`` keeps
    the step going; every ``with`` block on the way out removes what it half-wrote."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop(signum: int, _: object) -> None:
    raise Stopped(signum)


def run_step(step: Callable[[], object]) -> None:
    """Run a step's entry point, turning a :class:`StepError` into one line and exit status 2.

    Unexpected exceptions keep their traceback (they are bugs, not bad input) and exit 1.
    SIGTERM and SIGINT end the step with one line and exit status 128 + the signal, once the
    ``with`` blocks on the way out removed what they half-wrote (:class:`Stopped`). On
    success, one ``timing:`` line says where the time went (:mod:`yoda_step_io.timing`).
    """
    timing.begin()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _stop)
    # At exit, Python's last garbage collection walks every object torch and friends created
    # (0.5 s on 2 cores): freezing them first skips that walk; atexit handlers still run.
    atexit.register(gc.freeze)
    try:
        step()
    except StepError as error:
        message = " ".join(str(error).split())
        print(f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except Stopped as stop:  # a cancelled or preempted task: checkpoints stay for the retry
        print(f"error: stopped by {stop}: its partial outputs were removed", file=sys.stderr)
        sys.exit(128 + stop.signum)
    timing.mark("work")
    logger.info("timing: %s", timing.format_timing())


@dataclass(frozen=True)
class Reported:
    """What a step body returns when an output lives elsewhere than KFP placed it: ``uris``
    replace those outputs' URIs in the ExecutorOutput."""

    metadata: Metadata
    uris: Mapping[str, str] | None = None


def no_check(args: argparse.Namespace, here: bool) -> None:
    """A step whose parser alone checks its values."""


@dataclass(frozen=True)
class Step:
    """A step's command line: its parser, the checks of the parsed values that the parser
    cannot make, its body, and which flags name its outputs and (local) inputs.

    ``check(args, here)`` runs before any work, without importing torch or friends: on the step's
    own machine when it runs, and in the pipeline's pre-flight on the exact arguments a task will
    get (``here``: whether the task runs on this machine, so that files, mounts and cores here
    may be checked too). It raises :class:`BadValueError` naming the flag, or :class:`StepError`.
    """

    parser: Callable[[], argparse.ArgumentParser]
    body: Callable[[argparse.Namespace], Metadata | Reported]
    check: Callable[[argparse.Namespace, bool], None] = no_check
    outputs: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()

    def arguments(self, argv: Sequence[str], *, here: bool = True) -> argparse.Namespace:
        """``argv`` parsed and checked: what the step would refuse is refused here.

        Raises:
            BadValueError: a value the step refuses, named by its flag.
            StepError: an unknown or missing flag, or a problem no single flag owns.
        """
        args = parse_arguments(self.parser(), argv)
        self.check(args, here)
        return args

    def main(self, argv: Sequence[str] | None = None) -> None:
        """Set up logging, then, in :func:`run_step`: parse and check ``argv``, load the executor
        input, check the outputs (unset ones skipped) before any work, run the body and write
        the ExecutorOutput with the metadata it returns.

        The outputs must be writable, this step's or new, and overlap none of the inputs that
        are local paths (:func:`~yoda_step_io.files.check_outputs`).
        """
        given = sys.argv[1:] if argv is None else list(argv)
        setup_logging()

        def step() -> None:
            # here, not above: executor and files import this module's StepError
            from yoda_step_io.executor import load_executor_input, write_executor_output
            from yoda_step_io.files import check_outputs, local_inputs

            args = self.arguments(given)
            executor_input = load_executor_input(args.executor_input)
            paths = [getattr(args, name) for name in self.outputs]
            sources = local_inputs(*(getattr(args, name) for name in self.inputs))
            check_outputs(*(path for path in paths if path is not None), inputs=sources)
            result = self.body(args)
            reported = result if isinstance(result, Reported) else Reported(result)
            write_executor_output(executor_input, reported.metadata, reported.uris)

        run_step(step)
