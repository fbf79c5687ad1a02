"""What no step can know, checked before anything runs: how two steps' values fit together, and
what the tasks' machines on Vertex AI can take. Every other value is its step's to check
(:mod:`.preflight`); the cloud settings are :mod:`.cloud`'s."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from yoda_step_io.values import split_names


def allowed(problem: str | None, value: Any) -> Any:
    """``value``, or (a ``problem``) the ValueError pydantic reports in the check's words."""
    if problem:
        raise ValueError(problem)
    return value


def one_of(allowed: tuple[str, ...], what: str) -> Callable[[str], str | None]:
    """A check that ``value`` is among ``allowed``: "expected <what>: a, b, …" when not."""
    return lambda value: None if value in allowed else f"expected {what}: {', '.join(allowed)}"


def cross_step_problems(gate_metric: str, evaluation_metrics: str) -> list[str]:
    """The gate decides on a metric the evaluation step scores (each step alone cannot know)."""
    evaluated = split_names(evaluation_metrics)
    if evaluated and gate_metric not in evaluated:
        return [
            f"YODA_GATE_METRIC={gate_metric!r} (--set gate_metric=): not among "
            f"YODA_EVALUATION_METRICS={','.join(evaluated)!r}: the gate needs its scores; add it "
            "there, or gate on one of those"
        ]
    return []


#: The GPUs of Vertex AI custom jobs: the NVIDIA members of google-cloud-aiplatform's
#: ``aiplatform_v1.types.AcceleratorType`` (a test checks they agree; importing that module
#: takes seconds, too long for every command).
GPU_TYPES = (
    "NVIDIA_TESLA_K80",
    "NVIDIA_TESLA_P100",
    "NVIDIA_TESLA_V100",
    "NVIDIA_TESLA_P4",
    "NVIDIA_TESLA_T4",
    "NVIDIA_TESLA_A100",
    "NVIDIA_A100_80GB",
    "NVIDIA_L4",
    "NVIDIA_H100_80GB",
    "NVIDIA_H100_MEGA_80GB",
    "NVIDIA_H200_141GB",
    "NVIDIA_B200",
    "NVIDIA_GB200",
    "NVIDIA_RTX_PRO_6000",
)
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
