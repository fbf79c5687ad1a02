"""What a pipeline parameter's value may be, beyond its type and bounds in the table: each check
says why a value is refused (None: allowed), in words for one error line."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from yoda_step_io.vocabulary import (
    CHECKPOINT_SCHEMES,
    METRIC_NAMES,
    RAW_DATA_SCHEMES,
    base_model_problem,
    lora_modules_problem,
    metric_names_problem,
    split_names,
    uri_problem,
)


def allowed(problem: str | None, value: Any) -> Any:
    """``value``, or (a ``problem``) the ValueError pydantic reports in the check's words."""
    if problem:
        raise ValueError(problem)
    return value


#: A Model Registry display name (the endpoint's too).
REGISTRY_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


def one_of(allowed: tuple[str, ...], what: str) -> Callable[[str], str | None]:
    """A check that ``value`` is among ``allowed``: "expected <what>: a, b, …" when not."""
    return lambda value: None if value in allowed else f"expected {what}: {', '.join(allowed)}"


#: parameter -> why its value is refused (None: allowed); the pydantic types check the rest.
CHECKS: dict[str, Callable[[Any], str | None]] = {
    "raw_data_uri": lambda v: uri_problem(v, RAW_DATA_SCHEMES, file=True),
    "base_model": base_model_problem,
    "max_steps": lambda v: None if v == -1 or v > 0 else "expected -1 (use the epochs) or > 0",
    "checkpoint_dir": lambda v: uri_problem(v, CHECKPOINT_SCHEMES),
    "evaluation_metrics": metric_names_problem,
    "gate_metric": one_of(METRIC_NAMES, "one of"),
    "registry_model_name": lambda v: (
        None if REGISTRY_NAME.match(v) else "expected letters, digits, _ and -, at most 100"
    ),
}


def _gate_metric_problem(value: str, others: Mapping[str, Any]) -> str | None:
    evaluated = split_names(str(others.get("evaluation_metrics", "")))
    if evaluated and value not in evaluated:
        return (
            f"not among YODA_EVALUATION_METRICS={','.join(evaluated)!r}: the gate needs its "
            "scores; add it there, or gate on one of those"
        )
    return None


#: parameter -> why its value is refused given the rows declared before it (None: allowed).
CROSS_CHECKS: dict[str, Callable[[Any, Mapping[str, Any]], str | None]] = {
    "lora_target_modules": lambda v, others: lora_modules_problem(
        v, str(others.get("base_model", ""))
    ),
    "gate_metric": _gate_metric_problem,
}


#: GPUs of one type that one machine takes (Compute Engine's shapes, which Vertex AI custom
#: training runs on), as SkyPilot transcribes https://cloud.google.com/compute/docs/gpus:
#: https://github.com/skypilot-org/skypilot/blob/005261080a6b8102f3d95ff2147a855250f40272/sky/catalog/gcp_catalog.py
#: ("8x T4 is not supported by GCP"). Types not listed are not checked.
GPU_COUNTS: dict[str, tuple[int, ...]] = {
    "NVIDIA_TESLA_T4": (1, 2, 4),
    "NVIDIA_TESLA_P4": (1, 2, 4),
    "NVIDIA_TESLA_P100": (1, 2, 4),
    "NVIDIA_TESLA_V100": (1, 2, 4, 8),
    "NVIDIA_L4": (1, 2, 4, 8),
    "NVIDIA_TESLA_A100": (1, 2, 4, 8, 16),
    "NVIDIA_A100_80GB": (1, 2, 4, 8),
    "NVIDIA_H100_80GB": (1, 2, 4, 8),
    "NVIDIA_H100_MEGA_80GB": (8,),
    "NVIDIA_H200_141GB": (8,),
    "NVIDIA_B200": (8,),
}


def gpu_count_problem(gpu: str, count: int) -> str | None:
    """Why one Vertex AI machine cannot take ``count`` GPUs of type ``gpu`` (None: it can). On
    this machine the count is only the number of CPU ranks: any is fine there."""
    counts = GPU_COUNTS.get(gpu)
    if counts is None or count in counts:
        return None
    takes = ", ".join(map(str, counts))
    return (
        f"YODA_ACCELERATOR_COUNT={count} (--set accelerator_count=): one machine takes {takes} "
        f"of YODA_ACCELERATOR_TYPE={gpu}: pick one of those counts, or another GPU type "
        "(docs/scaling.md)"
    )
