"""``yoda-pipeline``: compile the pipeline, run it offline (on the host or in the images), and
look at a run: its scores, its TensorBoard logs, its model's answers.

Examples::

    yoda-pipeline compile --output build/pipeline.yaml
    yoda-pipeline run-local --raw-data-uri gs://bucket/yoda.csv --set lora_r=16 --set max_steps=5
    yoda-pipeline run-docker     # the same, each step in its image (make build-images-local first)
    yoda-pipeline tensorboard gs://bucket/root/123/job-id/fine-tuning-component_456/metrics
    yoda-pipeline report --by bleu --top 5
    yoda-pipeline predict "The Force is strong with you."      # the newest local run's model
    yoda-pipeline deploy && yoda-pipeline ask-endpoint "Hello." && yoda-pipeline undeploy

Each command imports only what it needs (kfp, the Vertex AI client …), so the quick ones stay quick.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from yoda_pipeline.artifacts import (
    EVENT_PREFIX,
    FINE_TUNING_TASK,
    fetch_tensorboard_logs,
    newest_run_with,
)
from yoda_pipeline.report import (
    EVALUATION_TASK,
    evaluation_results_location,
    format_report,
    format_run_summary,
    gate_outcome,
    html_report,
    read_aggregates,
    read_results,
)
from yoda_pipeline.run_log import ANSI
from yoda_pipeline.settings import (
    DOCKER_IMAGE_LOCK,
    LOCAL_IMAGE_LOCK,
    PipelineSettings,
    SettingsError,
    local_problems,
    settings_error,
)
from yoda_step_io import StepError
from yoda_step_io.scores import format_headline

logger = logging.getLogger("yoda_pipeline")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yoda-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    compile_cmd = commands.add_parser("compile", help="compile the pipeline to YAML")
    compile_cmd.add_argument("--image-lock", type=Path, help="image lock (default: settings)")
    compile_cmd.add_argument("--output", type=Path, default=Path("build/pipeline.yaml"))

    run_cmd = commands.add_parser("run-local", help="compile, then run offline on this machine")
    run_cmd.add_argument("--image-lock", type=Path, default=LOCAL_IMAGE_LOCK)
    docker_cmd = commands.add_parser(
        "run-docker",
        help="compile, then run offline in the step images (KFP's DockerRunner); "
        "the images come from `make build-images-local`",
    )
    docker_cmd.add_argument("--image-lock", type=Path, default=DOCKER_IMAGE_LOCK)
    for command in (run_cmd, docker_cmd):
        command.add_argument("--raw-data-uri", help="raw CSV (default: the embedded sample)")
        command.add_argument("--target-column", choices=["translation_extra", "translation"])
        command.add_argument("--test-fraction", type=float)
        command.add_argument("--split-seed", type=int)
        command.add_argument("--runs-dir", type=Path, help="parent of the per-run folders")

    submit_cmd = commands.add_parser(
        "submit", help="check the settings, compile with the image lock, submit to Vertex AI"
    )
    submit_cmd.add_argument("--image-lock", type=Path, help="image lock (default: settings)")
    submit_cmd.add_argument("--output", type=Path, default=Path("build/pipeline.yaml"))

    check_cmd = commands.add_parser("check-gcp", help="check the Google Cloud set-up")
    check_cmd.add_argument("--skip", action="append", default=[], help="a check to skip")

    for command in (run_cmd, docker_cmd, submit_cmd):
        command.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="any pipeline parameter, e.g. --set lora_r=16 --set max_steps=5 (repeatable)",
        )

    board_cmd = commands.add_parser(
        "tensorboard", help="download a run's TensorBoard logs into logs/ and print the command"
    )
    board_cmd.add_argument(
        "source",
        nargs="?",
        help="fine-tuning metrics artifact (gs:// or local) or a local run folder; "
        "default: the latest local run",
    )
    board_cmd.add_argument("--logs-dir", type=Path, default=Path("logs"))

    report_cmd = commands.add_parser(
        "report", help="print a run's aggregate metrics and its best and worst samples"
    )
    report_cmd.add_argument(
        "source",
        nargs="?",
        help="evaluation_results artifact (gs:// or local file) or a local run folder; "
        "default: the latest local run",
    )
    report_cmd.add_argument("--by", default="rouge_l", help="metric that ranks the samples")
    report_cmd.add_argument("--top", type=int, default=3, help="how many best and worst")

    predict_cmd = commands.add_parser(
        "predict", help="answer sentences with a run's model (default: the newest local one)"
    )
    predict_cmd.add_argument("sentences", nargs="+", help="sentences to answer")
    predict_cmd.add_argument("--model", help="Model artifact: gs://… or a local directory")

    cache_cmd = commands.add_parser(
        "cache-base-model", help="copy the base model from the hub into the bucket, once"
    )
    cache_cmd.add_argument("--source", help="hub id or local folder (default: YODA_BASE_MODEL)")
    cache_cmd.add_argument("--destination", help="gs://… (default: gs://BUCKET/models/NAME)")
    cache_cmd.add_argument("--revision", help="hub revision (default: main)")

    commands.add_parser(
        "deploy", help="deploy the Model Registry's default version to an endpoint (costs!)"
    )
    ask_cmd = commands.add_parser("ask-endpoint", help="answer sentences with the endpoint")
    ask_cmd.add_argument("sentences", nargs="+", help="sentences to answer")
    commands.add_parser("undeploy", help="undeploy everything and delete the endpoint")
    return parser


def tensorboard(source: str | None, logs_dir: Path, settings: PipelineSettings) -> Path:
    """Fetch the event files and print how to open them."""
    if source is None:
        run, _ = newest_run_with(
            settings.local_runs_dir, FINE_TUNING_TASK, "metrics", holding=f"{EVENT_PREFIX}*"
        )
        source = str(run)
    destination = fetch_tensorboard_logs(source, logs_dir)
    print(f"TensorBoard logs of {source} are in {destination}")
    print(f"Open them with:  uv run tensorboard --logdir {logs_dir}")
    return destination


def report(source: str | None, by: str, top: int, settings: PipelineSettings) -> None:
    """Print a run's headline, its per-sample statistics, its best and worst samples and where
    its HTML report is."""
    run_dir: Path | None = None
    if source is None:
        run_dir, results = newest_run_with(
            settings.local_runs_dir, EVALUATION_TASK, "evaluation_results"
        )
        source = str(results)
    elif Path(source).is_dir():
        run_dir = Path(source)
    location = evaluation_results_location(source)
    aggregates = read_aggregates(location)
    if aggregates:
        print(format_headline(aggregates), end="\n\n")
    print(format_report(read_results(location), by, top))
    if run_dir is not None:  # a local run: the gate's outcome and the HTML report, if any
        tail = format_run_summary(None, html_report(run_dir), gate_outcome(run_dir))
        if tail:
            print(f"\n{tail}")


def predict(model: str | None, sentences: list[str], settings: PipelineSettings) -> int:
    """Hand the model and sentences to ``yoda-predict`` (the inference package's own command)."""
    if model is None:
        _, found = newest_run_with(
            settings.local_runs_dir, FINE_TUNING_TASK, "model", holding="adapter_config.json"
        )
        model = str(found)
    script = Path(sys.executable).with_name("yoda-predict")
    command = [str(script) if script.is_file() else "yoda-predict", model, *sentences]
    return subprocess.run(command, check=False).returncode


def cache_command(args: argparse.Namespace, settings: PipelineSettings) -> None:
    """cache-base-model (yoda_pipeline.base_model)."""
    from yoda_pipeline.base_model import cache_base_model, default_destination

    source = args.source or settings.base_model
    if source.startswith("gs://"):
        raise StepError(f"the base model is {source} already: give --source HUB_ID")
    destination = args.destination
    if destination is None:
        if not settings.bucket:
            raise StepError("no YODA_BUCKET to copy into: set it or give --destination gs://…")
        destination = default_destination(settings.bucket, source)
    written = cache_base_model(source, destination, args.revision)
    print(f"Copied {len(written)} files of {source} to {destination}.")
    print(f"Use it: YODA_BASE_MODEL={destination} in .env, or SET=base_model={destination}")


def endpoint_command(args: argparse.Namespace, settings: PipelineSettings) -> None:
    """deploy / ask-endpoint / undeploy (yoda_pipeline.deploy)."""
    from yoda_pipeline import deploy

    if args.command == "deploy":
        print(f"Deployed to {deploy.deploy(settings)}")
    elif args.command == "undeploy":
        print(f"Undeployed and deleted {deploy.undeploy(settings)}")
    else:
        for sentence, answer in zip(
            args.sentences, deploy.ask(settings, args.sentences), strict=True
        ):
            print(f"> {sentence}\n{answer or '(empty answer)'}\n")


def _settings(args: argparse.Namespace) -> PipelineSettings:
    """Settings from the environment/.env, overridden by the flags given, every value checked
    against what it allows (and, for a local run, against this machine).

    Raises:
        SettingsError: one line naming each bad setting (``YODA_NAME``, ``--set name=``).
    """
    flags = ("image_lock", "raw_data_uri", "target_column", "test_fraction", "split_seed")
    overrides: dict[str, Any] = {
        name: getattr(args, name) for name in flags if getattr(args, name, None) is not None
    }
    if getattr(args, "runs_dir", None) is not None:
        overrides["local_runs_dir"] = args.runs_dir
    for pair in getattr(args, "set", []):
        name, sep, value = pair.partition("=")
        if not sep or name not in PipelineSettings.PARAMETERS:
            raise ValueError(
                f"--set {pair!r}: expected NAME=VALUE with NAME one of "
                f"{', '.join(PipelineSettings.PARAMETERS)}"
            )
        overrides[name] = value
    try:
        settings = PipelineSettings(**overrides)
    except ValidationError as error:
        raise settings_error(error) from None
    problems = local_problems(settings) if args.command in ("run-local", "run-docker") else []
    if problems:
        raise SettingsError("; ".join(problems))
    return settings


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        settings = _settings(args)
        if args.command == "compile":
            from yoda_pipeline.compile import compile_pipeline

            print(compile_pipeline(settings, args.output))
        elif args.command == "tensorboard":
            tensorboard(args.source, args.logs_dir, settings)
        elif args.command == "submit":
            from yoda_pipeline.submit import submit_pipeline

            print(f"Submitted: {submit_pipeline(settings, args.output)}")
        elif args.command == "check-gcp":
            from yoda_pipeline.gcp_check import print_checks, run_checks

            sys.exit(print_checks(run_checks(settings, skip=set(args.skip))))
        elif args.command == "report":
            report(args.source, args.by, args.top, settings)
        elif args.command == "predict":
            sys.exit(predict(args.model, args.sentences, settings))
        elif args.command in ("deploy", "ask-endpoint", "undeploy"):
            endpoint_command(args, settings)
        elif args.command == "cache-base-model":
            cache_command(args, settings)
        else:
            from yoda_pipeline.offline import run_local

            if args.command == "run-docker" and not settings.image_lock.is_file():
                raise StepError(
                    f"image lock {settings.image_lock} not found: run `make build-images-local` "
                    "first (it builds the step images and writes their digests there)"
                )
            run_local(settings, runner="docker" if args.command == "run-docker" else "subprocess")
    except (ValueError, StepError) as error:  # bad settings, lock or source (pydantic's too)
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        sys.exit(2)
    except RuntimeError as error:  # a local task failed: StepFailedError names it and its reason
        print(f"error: {ANSI.sub('', str(error))}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
