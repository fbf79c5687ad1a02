"""`yoda-pipeline cache-base-model` (:mod:`yoda_pipeline.base_model`): the base model copied from
the hub into the bucket, once."""

from __future__ import annotations

import argparse

from yoda_pipeline.settings import PipelineSettings
from yoda_step_io import StepError


def add_cache_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", help="hub id or local folder (default: YODA_BASE_MODEL)")
    parser.add_argument("--destination", help="gs://… (default: gs://BUCKET/models/NAME)")
    parser.add_argument("--revision", help="hub revision (default: main)")


def cache_command(args: argparse.Namespace, settings: PipelineSettings) -> None:
    """cache-base-model: what was copied where, and how to use it.

    Raises:
        StepError: the base model is in a bucket already, or there is no bucket to copy into.
    """
    from yoda_pipeline.base_model import cache_base_model, default_destination

    source: str = args.source or settings.base_model
    if source.startswith("gs://"):
        raise StepError(f"the base model is {source} already: give --source HUB_ID")
    destination: str | None = args.destination
    if destination is None:
        if not settings.bucket:
            raise StepError("no YODA_BUCKET to copy into: set it or give --destination gs://…")
        destination = default_destination(settings.bucket, source)
    written = cache_base_model(source, destination, args.revision)
    print(f"Copied {len(written)} files of {source} to {destination}.")
    print(f"Use it: YODA_BASE_MODEL={destination} in .env, or SET=base_model={destination}")
