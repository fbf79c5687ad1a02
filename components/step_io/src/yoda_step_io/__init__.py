"""The KFP step contract shared by every step of the Yoda pipeline.

- :mod:`.executor`: read KFP's executor input, write its ExecutorOutput (artifact metadata).
- :mod:`.files`: stage outputs beside their final path and publish them only on success.
- :mod:`.cli`: one clear error line and a non-zero exit for bad input; logging set-up.
- :mod:`.gcs`: the ``google-cloud-storage`` client and ``gs://`` URI parsing.
"""

from yoda_step_io.cli import (
    StepError,
    add_executor_input_flag,
    parse_bool,
    run_step,
    setup_logging,
    timed,
)
from yoda_step_io.executor import load_executor_input, write_executor_output
from yoda_step_io.files import staged_outputs

__all__ = [
    "StepError",
    "add_executor_input_flag",
    "load_executor_input",
    "parse_bool",
    "run_step",
    "setup_logging",
    "staged_outputs",
    "timed",
    "write_executor_output",
]
