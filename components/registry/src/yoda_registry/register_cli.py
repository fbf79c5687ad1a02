"""``yoda-register``'s command line: the flags, and the offline run that registers nothing
(the registration itself: :mod:`yoda_registry.register`)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from yoda_registry import register
from yoda_registry.register import REGISTRY_NAME
from yoda_step_io import Reported, Step, add_executor_input_flag, step_parser
from yoda_step_io.contract import read_metrics
from yoda_step_io.executor import input_metadata, load_executor_input
from yoda_step_io.scores import METRIC_NAMES
from yoda_step_io.values import one_of
from yoda_step_io.vertex import ENDPOINT_VARIABLE, vertex_errors

logger = logging.getLogger(__name__)


#: Why an offline run's passing model is not registered.
NOT_REGISTERED = (
    "no Google Cloud project (an offline run): `make submit` registers in Vertex AI Model "
    "Registry once YODA_PROJECT_ID and YODA_REGION are set"
)


def build_parser() -> argparse.ArgumentParser:
    parser = step_parser("yoda-register", register.__doc__)
    parser.add_argument("--model-uri", required=True, help="the Model artifact (gs:// or folder)")
    parser.add_argument("--evaluation-metrics", type=Path, required=True, help="metrics folder")
    parser.add_argument("--project", default="", help="Google Cloud project")
    parser.add_argument("--location", default="", help="Vertex AI region")
    parser.add_argument(
        "--display-name", type=REGISTRY_NAME, default="yoda-phi3", help=REGISTRY_NAME.words
    )
    parser.add_argument("--serving-image", required=True, help="inference image, by digest")
    parser.add_argument(
        "--metric", type=one_of(*METRIC_NAMES), default="rouge_l", help="the gate's metric"
    )
    parser.add_argument("--run-name", default="by-hand", help="the pipeline run")
    add_executor_input_flag(parser)
    return parser


def trained_recipe(executor_input: str | None) -> dict[str, Any]:
    """The ``recipe`` (JSON) the sweep's champion step put on the Model; {} by hand."""
    recipe = json.loads(input_metadata(load_executor_input(executor_input), "model").get(
        "recipe") or "{}")  # fmt: skip
    return recipe if isinstance(recipe, dict) else {}


def body(args: argparse.Namespace) -> Reported:
    """Register (not offline); the registered version, by its API URL."""
    import os

    aggregates = read_metrics(args.evaluation_metrics)
    if not args.project and not os.environ.get(ENDPOINT_VARIABLE):
        # an offline run (make run-local): no registry to register in, and nothing failed
        logger.warning("not registered: %s", NOT_REGISTERED)
        return Reported({"vertex_model": {"registered": False, "reason": NOT_REGISTERED}})
    endpoint = os.environ.get(ENDPOINT_VARIABLE) or None
    recipe = trained_recipe(args.executor_input)
    with vertex_errors("registering the model", endpoint):
        registered = register.register_model(
            args.model_uri, aggregates, project=args.project, location=args.location,
            display_name=args.display_name, serving_image=args.serving_image,
            metric=args.metric, run_name=args.run_name, endpoint=endpoint,
            recipe=recipe,
        )  # fmt: skip
    logger.info("registered %s (default version: %s)", registered.resource_name,
                registered.is_default)  # fmt: skip
    metadata = {
        "resourceName": registered.resource_name,
        "version_id": registered.version_id,
        "is_default_version": registered.is_default,
        "reused": registered.reused,
        f"{args.metric}_mean": registered.score,
        "recipe": json.dumps(recipe),
    }
    if registered.replaced_score is not None:
        metadata["previous_default_score"] = registered.replaced_score
    uris = {"vertex_model": registered.api_uri(args.location)}
    return Reported({"vertex_model": metadata}, uris=uris)


STEP = Step(build_parser, body)
main = STEP.main

if __name__ == "__main__":
    main()
