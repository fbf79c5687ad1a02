"""The console of a local run (yoda_pipeline.run_log): colour only on a terminal, and a failed
run restated as the failing step and its own reason."""

from __future__ import annotations

import io

from yoda_pipeline.run_log import RunLog

KFP_LINES = (
    "\x1b[92m10:00:00.000 - INFO - Executing task \x1b[96m'data-transformation-component'\x1b[0m\n",
    "    2026-01-01 10:00:00,100 INFO yoda: read 48 rows\n",
    "\n10:00:01.000 - INFO - Task 'data-transformation-component' finished with status SUCCESS\n",
    "10:00:01.001 - INFO - Executing task 'fine-tuning-component'\n",
)
FAILURE = RuntimeError(
    "Pipeline \x1b[95m'p'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m. "
    "Inner task failed: \x1b[96m'fine-tuning-component'\x1b[0m."
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def feed(log: RunLog, *chunks: str) -> None:
    for chunk in chunks:
        # KFP's indented print writes the indent and the line separately
        if chunk.startswith("    "):
            log.write("    ")
            log.write(chunk[4:])
        else:
            log.write(chunk)


def test_colour_reaches_a_terminal_only() -> None:
    for target, colour in ((io.StringIO(), False), (Terminal(), True)):
        log = RunLog(target, color=target.isatty())
        feed(log, *KFP_LINES)
        assert ("\x1b[" in target.getvalue()) is colour
        assert "Executing task 'fine-tuning-component'" in log.target.getvalue().replace(
            "\x1b[96m", ""
        ).replace("\x1b[0m", "")


def test_a_failed_step_is_named_with_its_own_error_line() -> None:
    log = RunLog(io.StringIO(), color=False)
    failed = "10:00:03.000 - ERROR - Task 'fine-tuning-component' finished with status FAILURE\n"
    reason = "base model directory /m has no config.json"  # the step's own words
    feed(log, *KFP_LINES, "    2026-01-01 10:00:02,000 INFO yoda: loading\n",
         f"    error: {reason}\n", "\n", failed)  # fmt: skip
    said = str(log.explain(FAILURE))
    assert "fine-tuning-component" in said and said.endswith(f" failed: {reason}"), said


def test_a_crashed_step_is_named_with_its_last_line() -> None:
    log = RunLog(io.StringIO(), color=False)
    feed(log, *KFP_LINES, "    Traceback (most recent call last):\n",
         '      File "x.py", line 1, in <module>\n', "    ZeroDivisionError: division by zero\n",
         "\n")  # fmt: skip
    said = str(log.explain(FAILURE))
    assert "fine-tuning-component" in said, said
    assert said.endswith(" failed: ZeroDivisionError: division by zero"), said


def test_an_unknown_failure_keeps_kfps_message_without_colour() -> None:
    log = RunLog(io.StringIO(), color=False)
    assert str(log.explain(RuntimeError("\x1b[91mboom\x1b[0m"))) == "boom"
