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
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from yoda_pipeline import deploy
from yoda_pipeline.artifacts import (
    add_predict_flags,
    add_tensorboard_flags,
    predict_command,
    tensorboard_command,
)
from yoda_pipeline.base_model_command import add_cache_flags, cache_command
from yoda_pipeline.cloud import submit_command
from yoda_pipeline.compile_command import add_compile_flags, compile_command
from yoda_pipeline.gcp_check import add_check_flags, check_gcp_command
from yoda_pipeline.local_commands import (
    RUN_FLAGS,
    add_run_docker_flags,
    add_run_local_flags,
    run_docker_command,
    run_local_command,
)
from yoda_pipeline.report import add_report_flags, report_command
from yoda_pipeline.run_log import ANSI
from yoda_pipeline.settings import PipelineSettings, settings_error
from yoda_step_io import StepError

logger = logging.getLogger("yoda_pipeline")

Flags = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class Command:
    """A subcommand: its name and help, what adds its flags, and what runs it with the settings
    (returning its exit status, or None)."""

    name: str
    help: str
    run: Callable[[argparse.Namespace, PipelineSettings], int | None]
    flags: tuple[Flags, ...] = ()


def add_set_flag(parser: argparse.ArgumentParser) -> None:
    """``--set NAME=VALUE`` (repeatable) and ``--sets "NAME=VALUE NAME=VALUE"`` (what
    ``make … SET=…`` passes): any pipeline parameter (:func:`parse_sets`)."""
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any pipeline parameter, e.g. --set lora_r=16 --set max_steps=5 (repeatable)",
    )
    parser.add_argument(
        "--sets",
        default="",
        metavar="'NAME=VALUE NAME=VALUE'",
        help="several pairs in one text, as make's SET passes them: a new pair starts where a "
        "space is followed by NAME=; values are taken verbatim (spaces, quotes and JSON kept)",
    )


def add_sentences(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sentences", nargs="+", help="sentences to answer")


COMMANDS = (
    Command("compile", "compile the pipeline to YAML", compile_command, (add_compile_flags,)),
    Command(
        "run-local",
        "compile, then run offline on this machine",
        run_local_command,
        (add_run_local_flags, add_set_flag),
    ),
    Command(
        "run-docker",
        "compile, then run offline in the step images (KFP's DockerRunner); "
        "the images come from `make build-images-local`",
        run_docker_command,
        (add_run_docker_flags, add_set_flag),
    ),
    Command(
        "submit",
        "check the settings, compile with the image lock, submit to Vertex AI",
        submit_command,
        (add_compile_flags, add_set_flag),
    ),
    Command("check-gcp", "check the Google Cloud set-up", check_gcp_command, (add_check_flags,)),
    Command(
        "tensorboard",
        "download a run's TensorBoard logs into logs/ and print the command",
        tensorboard_command,
        (add_tensorboard_flags,),
    ),
    Command(
        "report",
        "print a run's aggregate metrics and its best and worst samples",
        report_command,
        (add_report_flags,),
    ),
    Command(
        "predict",
        "answer sentences with a run's model (default: the newest local one)",
        predict_command,
        (add_sentences, add_predict_flags),
    ),
    Command(
        "cache-base-model",
        "copy the base model from the hub into the bucket, once",
        cache_command,
        (add_cache_flags,),
    ),
    Command(
        "deploy",
        "deploy the Model Registry's default version to an endpoint (costs!)",
        deploy.deploy_command,
    ),
    Command(
        "ask-endpoint",
        "answer sentences with the endpoint",
        deploy.ask_command,
        (add_sentences,),
    ),
    Command("undeploy", "undeploy everything and delete the endpoint", deploy.undeploy_command),
)
BY_NAME = {command.name: command for command in COMMANDS}
#: The flags that override a setting: flag attribute -> setting.
SETTING_FLAGS = {
    "image_lock": "image_lock",
    **{name: name for name in RUN_FLAGS},
    "runs_dir": "local_runs_dir",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yoda-pipeline", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        subparser = subparsers.add_parser(command.name, help=command.help)
        for add_flags in command.flags:
            add_flags(subparser)
    return parser


#: Where a new ``NAME=`` pair starts in ``--sets``: after spaces, a parameter's name and ``=``.
_NEXT_PAIR = re.compile(r"\s+(?=[a-z][a-z0-9_]*=)")


def split_sets(text: str) -> list[str]:
    """``"a=1 b=x y c=[1, 2]"`` -> ``["a=1", "b=x y", "c=[1, 2]"]``: each value verbatim, up to
    the next space followed by ``name=``."""
    return [pair for pair in _NEXT_PAIR.split(text.strip()) if pair]


def parse_sets(pairs: Sequence[str]) -> dict[str, str]:
    """``--set`` pairs -> ``{name: value}``.

    Raises:
        ValueError: a pair is not ``NAME=VALUE`` with a parameter's name.
    """
    overrides: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in PipelineSettings.ROWS:
            raise ValueError(
                f"--set {pair!r}: expected NAME=VALUE with NAME one of "
                f"{', '.join(PipelineSettings.ROWS)}"
            )
        overrides[name] = value
    return overrides


def _settings(args: argparse.Namespace) -> PipelineSettings:
    """Settings from the environment/.env, overridden by the flags given, each parsed as its
    type (what a value may be is its step's to say: :mod:`yoda_pipeline.preflight`).

    Raises:
        SettingsError: one line naming each bad setting (``YODA_NAME``, ``--set name=``).
    """
    overrides: dict[str, Any] = {
        setting: getattr(args, flag)
        for flag, setting in SETTING_FLAGS.items()
        if getattr(args, flag, None) is not None
    }
    pairs = [*split_sets(getattr(args, "sets", "")), *getattr(args, "set", [])]
    overrides.update(parse_sets(pairs))
    try:
        return PipelineSettings(**overrides)
    except ValidationError as error:
        raise settings_error(error) from None


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        status = BY_NAME[args.command].run(args, _settings(args))
    except (ValueError, StepError) as error:  # bad settings, lock or source (pydantic's too)
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        sys.exit(2)
    except RuntimeError as error:  # a local task failed: StepFailedError names it and its reason
        print(f"error: {ANSI.sub('', str(error))}", file=sys.stderr)
        sys.exit(1)
    if status is not None:
        sys.exit(status)


if __name__ == "__main__":
    main()
