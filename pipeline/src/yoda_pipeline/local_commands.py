"""`yoda-pipeline run-local` and `run-docker`: compile, then run the pipeline offline with KFP's
local runners (:mod:`yoda_pipeline.offline`, :mod:`yoda_pipeline.local_run`, imported only when
a run starts: kfp), each step in this environment or in its image."""

from __future__ import annotations

import argparse
from pathlib import Path

from yoda_pipeline.settings import DOCKER_IMAGE_LOCK, LOCAL_IMAGE_LOCK, PipelineSettings
from yoda_pipeline.signatures import add_parameter_flag
from yoda_step_io import StepError

#: The parameters with a flag of their own on the local runs (any other: ``--set name=``).
RUN_FLAGS = ("raw_data_uri", "target_column", "test_fraction", "split_seed")


def _add_run_flags(parser: argparse.ArgumentParser, image_lock: Path) -> None:
    parser.add_argument("--image-lock", type=Path, default=image_lock)
    for name in RUN_FLAGS:
        add_parameter_flag(parser, name)
    parser.add_argument("--runs-dir", type=Path, help="parent of the per-run folders")


def add_run_local_flags(parser: argparse.ArgumentParser) -> None:
    """The data step's settings, the runs' folder and the lock of ``make run-local``."""
    _add_run_flags(parser, LOCAL_IMAGE_LOCK)


def add_run_docker_flags(parser: argparse.ArgumentParser) -> None:
    """As :func:`add_run_local_flags`, with the lock of ``make build-images-local``."""
    _add_run_flags(parser, DOCKER_IMAGE_LOCK)


def run_local_command(_: argparse.Namespace, settings: PipelineSettings) -> None:
    """run-local: every step a subprocess in this environment."""
    from yoda_pipeline.offline import run_local

    run_local(settings, runner="subprocess")


def run_docker_command(_: argparse.Namespace, settings: PipelineSettings) -> None:
    """run-docker: every step in its image, pulled by the digest in the lock.

    Raises:
        StepError: no lock: the images are not built.
    """
    if not settings.image_lock.is_file():
        raise StepError(
            f"image lock {settings.image_lock} not found: run `make build-images-local` "
            "first (it builds the step images and writes their digests there)"
        )
    from yoda_pipeline.offline import run_local

    run_local(settings, runner="docker")
