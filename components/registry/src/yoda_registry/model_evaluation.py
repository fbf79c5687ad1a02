"""The evaluation on a registered version: a Vertex AI model evaluation in its schema's terms, the
full set of scores beside it, imported once per version.

Vertex AI checks an import's ``metrics`` against its ``metrics_schema_uri`` and refuses what does
not fit ("400 Invalid Metrics Format", googleapis/python-aiplatform#5570). The text-generation
schema is the one Google's own importer names for ``text-generation``
(kubeflow/pipelines@7b70c7b95f6832772efd6fd0029a4024491a0f44, components/google-cloud/
google_cloud_pipeline_components/container/_implementation/model_evaluation/
import_model_evaluation.py, line 36; lines 398-399 pass the metrics through unchanged). Its YAML
is not public; its generated message is, in the Vertex AI API discovery document
(googleapis/google-api-python-client@01f367c3c9acd7001ea51f7af72352f23df8807b,
googleapiclient/discovery_cache/documents/aiplatform.v1.json,
``GoogleCloudAiplatformV1SchemaModelevaluationMetricsGeneralTextGenerationEvaluationMetrics``),
with exactly two float properties: ``bleu`` ("BLEU (bilingual evaluation understudy) scores based
on sacrebleu implementation.") and ``rougeLSum`` ("ROUGE-L (Longest Common Subsequence) scoring
at summary level."); the Vertex AI docs list "Text generation | BLEU, ROUGE-L"
(https://cloud.google.com/vertex-ai/docs/generative-ai/models/evaluate-models).

Only those two go into ``metrics``. Every aggregate (the baselines' scores and the uplifts too)
goes into the evaluation's ``metadata``, a free-form value that Google's importer fills with
``pipeline_job_id`` and the like (``ModelEvaluation.metadata``,
google/cloud/aiplatform_v1/types/model_evaluation.py, googleapis/python-aiplatform@
04e373cfb4017a33aae6ea862a14e788c0591315), and the gate metric's line into the version's
description.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from yoda_step_io import StepError

logger = logging.getLogger(__name__)

SCHEMA_URI = (
    "gs://google-cloud-aiplatform/schema/modelevaluation/general_text_generation_metrics_1.0.0.yaml"
)
#: The schema's field -> the evaluation aggregate sent as it.
#: ``bleu``: the schema gives no scale. Ours is ragas' ``BleuScore``, sacrebleu's score / 100,
#: averaged over the answers: 0-1, sent unchanged, the scale of Vertex AI's own BLEU metric
#: (``BleuSpec``: "scores ranging from 0 to 1") and of our gate and report.
#: ``rougeLSum``: ours is rouge-score's ``rougeL`` F-measure over the whole answer; the summary
#: level (``rougeLsum``) first splits on newlines, so the two agree on one-line answers (the Yoda
#: sentences) and may differ on answers of several lines.
SCHEMA_METRICS = {"bleu": "bleu_mean", "rougeLSum": "rouge_l_mean"}
#: A transient answer to the import (429, 500, 503) is retried here, for up to this many
#: seconds, without uploading again; what still fails is left to the task's retries.
IMPORT_RETRY_SECONDS = 60.0


def schema_metrics(aggregates: Mapping[str, float]) -> dict[str, float]:
    """The schema's fields that the evaluation scored, under the schema's names."""
    return {field: float(aggregates[key]) for field, key in SCHEMA_METRICS.items()
            if key in aggregates}  # fmt: skip


def evaluation_metadata(aggregates: Mapping[str, float], run_name: str) -> dict[str, Any]:
    """The full set, free-form: every aggregate under our names, with where it came from."""
    return {
        "pipeline_job_id": run_name,
        "yoda_metrics": {key: float(value) for key, value in aggregates.items()},
        "yoda_metrics_source": "yoda-evaluation (ragas), the pipeline's Metrics artifact",
        "yoda_bleu_scale": "0-1 (sacrebleu / 100)",
    }


def version_description(
    aggregates: Mapping[str, float], metric: str, run_name: str, recipe: Mapping[str, Any]
) -> str:
    """One line for the version: the gate metric, and the baselines it beat, by how much; the
    recipe it was trained with (a sweep's champion's overrides), if any."""
    parts = [f"run {run_name}: {metric} {aggregates[f'{metric}_mean']:.4f}"]
    for baseline in ("base", "echo"):
        score, uplift = f"{baseline}_{metric}_mean", f"{metric}_uplift_vs_{baseline}"
        if score in aggregates and uplift in aggregates:
            parts.append(f"{baseline} {aggregates[score]:.4f} (uplift {aggregates[uplift]:+.4f})")
    if recipe:
        parts.append("recipe " + json.dumps(dict(recipe), sort_keys=True))
    return "; ".join(parts)


def evaluation_request(aggregates: Mapping[str, float], run_name: str) -> dict[str, Any]:
    """The ``ModelEvaluation`` to import: the schema's metrics, the full set as metadata."""
    from google.protobuf import struct_pb2

    metrics, metadata = struct_pb2.Value(), struct_pb2.Value()
    metrics.struct_value.update(schema_metrics(aggregates))
    metadata.struct_value.update(evaluation_metadata(aggregates, run_name))
    return {
        "display_name": f"{run_name}-evaluation"[:128],
        "metrics_schema_uri": SCHEMA_URI,
        "metrics": metrics,
        "metadata": metadata,
    }


def _reason(error: Exception) -> str:
    """An API error in a few words: its status and message, without the request's URL."""
    from google.api_core import exceptions

    if isinstance(error, exceptions.GoogleAPICallError):
        return f"{error.code} {error.message.rsplit(': ', 1)[-1]}"
    return str(error)


def import_evaluation(
    client: Any, version_name: str, aggregates: Mapping[str, float], run_name: str
) -> str | None:
    """Import the evaluation into ``version_name`` (``…/models/ID@VERSION``) unless it has one
    (a retried step's earlier import); its resource name, or None without a schema metric.

    Raises:
        StepError: the import failed; the version stays registered, and a rerun imports it.
    """
    from google.api_core import exceptions

    existing = _existing_evaluation(client, version_name)
    if existing:
        logger.info("%s has its evaluation already: %s", version_name, existing)
        return existing
    if not schema_metrics(aggregates):
        logger.warning(
            "no evaluation imported into %s: the evaluation scored none of %s (%s), the "
            "metrics of the text-generation schema",
            version_name, ", ".join(SCHEMA_METRICS.values()), ", ".join(SCHEMA_METRICS),
        )  # fmt: skip
        return None
    try:
        imported = _import_once(client, version_name, evaluation_request(aggregates, run_name))
    except exceptions.GoogleAPIError as error:
        raise StepError(
            f"{version_name} is registered without its evaluation, the import failed "
            f"({_reason(error)}): a rerun of this step imports it, without uploading again"
        ) from error
    logger.info("imported the evaluation into %s: %s", version_name, imported)
    return imported


def _existing_evaluation(client: Any, version_name: str) -> str | None:
    existing = list(client.list_model_evaluations(parent=version_name))
    return str(existing[0].name) if existing else None


def _import_once(client: Any, version_name: str, request: dict[str, Any]) -> str:
    """Import, retrying a transient error (429, 500, 503) for :data:`IMPORT_RETRY_SECONDS`; an
    import is not idempotent, so before each retry the version is looked at again: an attempt
    that failed on the way back may have imported it."""
    from google.api_core import exceptions, retry

    deadline, pause = time.monotonic() + IMPORT_RETRY_SECONDS, 1.0
    while True:
        try:
            imported = client.import_model_evaluation(
                parent=version_name, model_evaluation=request, retry=None
            )
            return str(imported.name)
        except exceptions.GoogleAPICallError as error:
            if not retry.if_transient_error(error) or time.monotonic() + pause > deadline:
                raise
            logger.warning("importing the evaluation: %s; again in %.0f s", _reason(error), pause)
        time.sleep(pause)
        pause = min(pause * 2, 10.0)
        found = _existing_evaluation(client, version_name)
        if found:
            return found
