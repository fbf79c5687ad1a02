"""What no step can know, checked before anything runs: how two steps' values fit together, and
what the tasks' machines on Vertex AI can take. Every other value is its step's to check
(:mod:`.preflight`); the cloud settings are :mod:`.cloud`'s."""

from __future__ import annotations

from typing import Any

from yoda_step_io.values import split_names


def allowed(problem: str | None, value: Any) -> Any:
    """``value``, or (a ``problem``) the ValueError pydantic reports in the check's words."""
    if problem:
        raise ValueError(problem)
    return value


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


#: GPUs of one type that one machine takes (Compute Engine's shapes, which Vertex AI custom
#: training runs on), copied on 2026-12-02 as SkyPilot transcribes
#: https://cloud.google.com/compute/docs/gpus (a warning only, :func:`gpu_warnings`):
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


GPUS_PAGE = "https://cloud.google.com/compute/docs/gpus"


def gpu_warnings(gpu: str, count: int) -> list[str]:
    """What the Vertex AI client's GPU types and the shapes copied here say against ``count``
    GPUs of type ``gpu``: warnings, not refusals (Google may offer it by now; Vertex AI itself
    refuses what it cannot run)."""
    from google.cloud.aiplatform_v1.types import AcceleratorType

    known = [name for name in AcceleratorType.__members__ if name.startswith("NVIDIA_")]
    if gpu not in known:
        return [
            f"YODA_ACCELERATOR_TYPE={gpu!r} is not among the GPU types google-cloud-aiplatform "
            f"knows ({', '.join(known)}): check {GPUS_PAGE}"
        ]
    counts = GPU_COUNTS.get(gpu)
    if counts is None or count in counts:
        return []
    return [
        f"YODA_ACCELERATOR_COUNT={count} (--set accelerator_count=): one machine takes "
        f"{', '.join(map(str, counts))} of {gpu}, as copied on 2026-12-02 from {GPUS_PAGE} "
        "(via SkyPilot's catalog): Vertex AI may refuse it (docs/scaling.md)"
    ]
