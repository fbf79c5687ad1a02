"""The KFP step contract shared by every step of the Yoda pipeline.

- :mod:`.executor`: read KFP's executor input, write its ExecutorOutput (artifact metadata).
- :mod:`.files`: outputs written in place (safe on Cloud Storage FUSE), removed on failure;
  a write probe of the output folders before heavy work.
- :mod:`.cli`: one clear error line and a non-zero exit for bad input; logging set-up; the
  skeleton of a step's command line (:class:`Step`).
- :mod:`.gcs`: the ``google-cloud-storage`` client and ``gs://`` URI parsing.
- :mod:`.contract`: the artifacts' file names and CSV columns, and the one reader of the
  evaluation's metrics.
- :mod:`.serving`: the serving contract (command, port, routes, environment, request and
  answer shapes) of the inference image online.
- :mod:`.models`: base models and adapters from ``gs://``: the one cache, with its completion mark.
- :mod:`.quantization`: 4-bit or full precision, and the one NF4 config.
- :mod:`.values`: what a value may be, declared where a step declares its flag.
"""

from yoda_step_io.cli import (
    BadValueError,
    Metadata,
    Reported,
    Step,
    StepError,
    add_executor_input_flag,
    run_step,
    setup_logging,
    step_parser,
    timed,
)
from yoda_step_io.executor import load_executor_input, write_executor_output
from yoda_step_io.files import check_outputs, local_inputs, outputs_in_place

__all__ = [
    "BadValueError",
    "Metadata",
    "Reported",
    "Step",
    "StepError",
    "add_executor_input_flag",
    "check_outputs",
    "load_executor_input",
    "local_inputs",
    "outputs_in_place",
    "run_step",
    "setup_logging",
    "step_parser",
    "timed",
    "write_executor_output",
]
