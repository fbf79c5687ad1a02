"""`yoda-pipeline compile` (:mod:`yoda_pipeline.compile`, imported only when it runs: kfp), and
the flags it shares with `submit`."""

from __future__ import annotations

import argparse
from pathlib import Path

from yoda_pipeline.settings import PipelineSettings


def add_compile_flags(parser: argparse.ArgumentParser) -> None:
    """``--image-lock`` and ``--output``: what to compile against, and where to."""
    parser.add_argument("--image-lock", type=Path, help="image lock (default: settings)")
    parser.add_argument("--output", type=Path, default=Path("build/pipeline.yaml"))


def compile_command(args: argparse.Namespace, settings: PipelineSettings) -> None:
    """compile: the compiled YAML's path."""
    from yoda_pipeline.compile import compile_pipeline

    print(compile_pipeline(settings, args.output))
