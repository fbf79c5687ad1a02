"""What a run's GPU tasks cost per hour, said before submitting (as ``make deploy`` does).

Compute Engine on-demand list prices, us-central1, of the machine Vertex AI would pick for the
default 16 CPUs / 50G with N GPUs (an n1-standard-16 with N T4s; the g2-standard shape of N L4s),
as SkyPilot's catalog records them from Google's billing API:
https://github.com/skypilot-org/skypilot-catalog/blob/017e2502fb63c7a28757acd94002b2d6099d3e3d/catalogs/v7/gcp/vms.csv
(docs/scaling.md). Vertex AI bills its own rates for custom training, not on record here.
"""

from __future__ import annotations

from yoda_pipeline.settings import PipelineSettings

PRICING_PAGE = "https://cloud.google.com/vertex-ai/pricing"
#: When the prices below were copied (the catalog's commit is in the module's docstring).
COPIED = "2026-12-02"
#: (GPU type, GPUs) -> USD per hour of machine and GPUs.
USD_PER_HOUR: dict[tuple[str, int], float] = {
    ("NVIDIA_TESLA_T4", 1): 1.11,
    ("NVIDIA_TESLA_T4", 2): 1.46,
    ("NVIDIA_TESLA_T4", 4): 2.16,
    ("NVIDIA_L4", 1): 1.15,
    ("NVIDIA_L4", 2): 2.00,
    ("NVIDIA_L4", 4): 4.00,
    ("NVIDIA_L4", 8): 8.00,
}


def _price(gpu: str, count: int) -> str:
    usd = USD_PER_HOUR.get((gpu, count))
    return f"about {usd:.2f} USD/hour" if usd is not None else "no price on record"


def run_price_line(settings: PipelineSettings) -> str:
    """The GPU tasks and their price per hour while they run, in one line."""
    gpu, count, recipes = settings.accelerator_type, settings.accelerator_count, len(settings.sweep)
    each = f" each, {recipes} recipes" if recipes > 1 else ""
    return (
        f"GPU tasks: fine-tuning on {count} x {gpu}, {_price(gpu, count)}{each}; inference on 1 x "
        f"{gpu}, {_price(gpu, 1)} (Compute Engine list prices, us-central1, copied on {COPIED} "
        f"from SkyPilot's catalog of Google's billing API; Vertex AI bills its own rates: "
        f"{PRICING_PAGE})"
    )
