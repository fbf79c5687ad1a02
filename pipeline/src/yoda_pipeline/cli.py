"""``yoda-pipeline``: compile the pipeline, or run it offline with KFP's local runner.

yoda-pipeline compile --output build/pipeline.yaml
yoda-pipeline run-local --raw-data-uri gs://bucket/yoda.csv --test-fraction 0.2
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from yoda_pipeline.compile import compile_pipeline
from yoda_pipeline.images import ImageLockError
from yoda_pipeline.local_run import run_compiled_pipeline
from yoda_pipeline.settings import LOCAL_IMAGE_LOCK, PipelineSettings, sample_data_path

logger = logging.getLogger("yoda_pipeline")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yoda-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    compile_cmd = commands.add_parser("compile", help="compile the pipeline to YAML")
    compile_cmd.add_argument("--image-lock", type=Path, help="image lock (default: settings)")
    compile_cmd.add_argument("--output", type=Path, default=Path("build/pipeline.yaml"))

    run_cmd = commands.add_parser("run-local", help="compile, then run offline on this machine")
    run_cmd.add_argument("--image-lock", type=Path, default=LOCAL_IMAGE_LOCK)
    run_cmd.add_argument("--raw-data-uri", help="raw CSV (default: the embedded sample)")
    run_cmd.add_argument("--target-column", choices=["translation_extra", "translation"])
    run_cmd.add_argument("--test-fraction", type=float)
    run_cmd.add_argument("--split-seed", type=int)
    run_cmd.add_argument("--runs-dir", type=Path, help="parent of the per-run folders")
    return parser


def _settings(args: argparse.Namespace) -> PipelineSettings:
    """Settings from the environment/.env, overridden by the flags that were given."""
    flags = ("image_lock", "raw_data_uri", "target_column", "test_fraction", "split_seed")
    overrides: dict[str, Any] = {
        name: getattr(args, name) for name in flags if getattr(args, name, None) is not None
    }
    if getattr(args, "runs_dir", None) is not None:
        overrides["local_runs_dir"] = args.runs_dir
    settings = PipelineSettings()
    return settings.model_copy(update=overrides) if overrides else settings


def run_local(settings: PipelineSettings) -> Path:
    """Compile against the local lock and run the pipeline under a fresh run folder."""
    if not settings.raw_data_uri:
        settings = settings.model_copy(update={"raw_data_uri": str(sample_data_path())})
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    run_dir = settings.local_runs_dir / f"run-{stamp}"
    pipeline_yaml = compile_pipeline(settings, run_dir / "pipeline.yaml")
    logger.info("running %s on %s", pipeline_yaml, settings.raw_data_uri)
    artifacts = run_compiled_pipeline(
        pipeline_yaml, settings.parameter_values(), run_dir / "outputs"
    )
    print(f"\nLocal run finished: {run_dir}")
    for artifact in artifacts:
        print(f"  {artifact.parent.name}/{artifact.name}: {artifact}")
    return run_dir


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        settings = _settings(args)
        if args.command == "compile":
            print(compile_pipeline(settings, args.output))
        else:
            run_local(settings)
    except (ImageLockError, ValidationError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        sys.exit(2)
    except RuntimeError as error:  # a local task failed; its own log above says why
        print(f"error: {_ANSI.sub('', str(error))}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
