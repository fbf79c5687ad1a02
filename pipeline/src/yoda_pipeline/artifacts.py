"""Fetch a run's artifacts for a person to look at: TensorBoard event files, from disk or GCS
(`yoda-pipeline tensorboard`), and its model's answers (`yoda-pipeline predict`)."""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

from yoda_pipeline.settings import PipelineSettings
from yoda_step_io import StepError, outputs_in_place
from yoda_step_io.contract import ADAPTER_CONFIG, METRICS, MODEL
from yoda_step_io.gcs import download_prefix

logger = logging.getLogger(__name__)

#: The task whose Model and Metrics are the run's: the sweep's champion (its recipe's copy).
CHAMPION_TASK = "champion-component"
EVENT_PREFIX = "events.out.tfevents."


def newest_run_with(
    runs_dir: Path, task: str, output: str, *, holding: str | None = None
) -> tuple[Path, Path]:
    """The newest ``run-*`` folder whose ``task`` wrote ``output`` (holding a file that matches
    the glob ``holding``, if given), and that output. Runs that failed before it are skipped,
    and the choice is said on stdout.

    Raises:
        StepError: no local run, or none with that output.
    """
    runs = sorted(runs_dir.glob("run-*"), reverse=True)
    if not runs:
        raise StepError(f"no local runs under {runs_dir}: run `make run-local` first")
    for skipped, run in enumerate(runs):
        found = run_output(run, task, output)
        if found is not None and (holding is None or any(found.rglob(holding))):
            newer = f", skipping {skipped} newer run(s) without it" if skipped else ""
            print(f"Using {run}: the newest local run with {task}/{output}{newer}")
            return run, found
    raise StepError(
        f"none of the {len(runs)} local run(s) under {runs_dir} has {task}/{output}"
        f"{' with ' + holding if holding else ''}: did they fail? run `make run-local` again"
    )


def run_output(run_dir: Path, task: str, output: str) -> Path | None:
    """The output artifact ``output`` of ``task`` in a local run folder, if the run wrote it."""
    found = sorted(run_dir.glob(f"outputs/*/{task}/{output}"))
    return found[-1] if found else None


def fine_tuning_metrics_location(source: str) -> str:
    """The fine-tuning Metrics artifact behind ``source``.

    ``source`` is that artifact itself (a ``gs://`` URI or a local directory) or a local run folder.
    """
    if source.startswith("gs://"):
        return source.rstrip("/")
    path = Path(source)
    if not path.is_dir():
        raise StepError(f"{source} is neither a gs:// URI nor a local directory")
    return str(run_output(path, CHAMPION_TASK, METRICS) or path)


def _is_event_file(relative: str) -> bool:
    return PurePosixPath(relative).name.startswith(EVENT_PREFIX)


def fetch_tensorboard_logs(source: str, logs_dir: Path) -> Path:
    """Copy the TensorBoard event files of a fine-tuning run into ``logs_dir/<run name>``.

    Returns:
        The folder written (replaced if it existed).

    Raises:
        StepError: the source does not exist or holds no event file.
    """
    location = fine_tuning_metrics_location(source)
    parts = PurePosixPath(location.removeprefix("gs://")).parts
    # .../<pipeline run>/<task>/metrics: name the folder after the run, so runs sit side by side
    destination = logs_dir / (parts[-3] if len(parts) >= 3 else parts[-1])
    if location.startswith("gs://"):
        download_prefix(location, destination, keep=_is_event_file)
        return destination
    events = sorted(p for p in Path(location).rglob(f"{EVENT_PREFIX}*") if p.is_file())
    if not events:
        raise StepError(f"no TensorBoard event files under {location}")
    with outputs_in_place(destination, inputs=[Path(location)]):
        for event in events:
            target = destination / event.relative_to(location)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(event, target)
    logger.info("copied %d event file(s) from %s to %s", len(events), location, destination)
    return destination


def add_source_argument(parser: argparse.ArgumentParser, artifact: str) -> None:
    """The optional ``source``: ``artifact`` or a local run folder, else the newest local run."""
    parser.add_argument(
        "source",
        nargs="?",
        help=f"{artifact} or a local run folder; default: the latest local run",
    )


def add_tensorboard_flags(parser: argparse.ArgumentParser) -> None:
    add_source_argument(parser, "fine-tuning metrics artifact (gs:// or local)")
    parser.add_argument("--logs-dir", type=Path, default=Path("logs"))


def tensorboard_command(args: argparse.Namespace, settings: PipelineSettings) -> None:
    """tensorboard: fetch the event files and print how to open them."""
    source: str | None = args.source
    if source is None:
        run, _ = newest_run_with(
            settings.local_runs_dir, CHAMPION_TASK, METRICS, holding=f"{EVENT_PREFIX}*"
        )
        source = str(run)
    destination = fetch_tensorboard_logs(source, args.logs_dir)
    print(f"TensorBoard logs of {source} are in {destination}")
    print(f"Open them with:  uv run tensorboard --logdir {args.logs_dir}")


def add_predict_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="Model artifact: gs://… or a local directory")


def predict_command(args: argparse.Namespace, settings: PipelineSettings) -> int:
    """predict: hand the model and sentences to ``yoda-predict`` (the inference package's own
    command); its exit status."""
    model: str | None = args.model
    if model is None:
        _, found = newest_run_with(
            settings.local_runs_dir, CHAMPION_TASK, MODEL, holding=ADAPTER_CONFIG
        )
        model = str(found)
    script = Path(sys.executable).with_name("yoda-predict")
    command = [str(script) if script.is_file() else "yoda-predict", model, *args.sentences]
    return subprocess.run(command, check=False).returncode
