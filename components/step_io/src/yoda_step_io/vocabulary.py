"""The allowed values of the pipeline's parameters, declared once for the steps and the pipeline.

The pipeline package depends on ``yoda-step-io`` only, never on a step package: what it checks
before compiling (``yoda_pipeline.settings``) and what a step checks when it runs come from here.
"""

from __future__ import annotations

import re
from pathlib import Path

#: The ragas metrics of the evaluation step (``yoda_evaluation.metrics`` maps each to its
#: factory), in report order; ROUGE-L is the headline.
METRIC_NAMES = (
    "rouge_l",
    "rouge_1",
    "bleu",
    "levenshtein_similarity",
    "jaro_winkler_similarity",
    "exact_match",
    "string_present",
)

#: How the base model is loaded: "4bit" needs CUDA; "auto" = 4bit with CUDA, else full precision.
QUANTIZATION_MODES = ("4bit", "auto", "none")

#: The linear layers LoRA can adapt, by architecture.
PHI3_LINEAR_MODULES = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")
LLAMA_LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
#: peft's special value: every linear layer but the output head.
ALL_LINEAR = "all-linear"
#: The base model's own LoRA targets, chosen by its architecture (yoda_fine_tuning.architecture).
AUTO_TARGETS = "auto"

#: The GPUs of Vertex AI custom jobs: the NVIDIA members of google-cloud-aiplatform's
#: ``aiplatform_v1.types.AcceleratorType`` (tests/test_settings_validation.py checks they agree;
#: importing that module takes seconds, too long for every command).
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

#: URI schemes besides a local path: of the raw CSV, and of the fine-tuning checkpoints.
RAW_DATA_SCHEMES = ("gs://", "hf://")
CHECKPOINT_SCHEMES = ("gs://",)

#: A Hugging Face hub id: ``NAME`` or ``OWNER/NAME``, at most 96 characters, no ``..``.
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
HUB_ID_MAX_LENGTH = 96
#: ``gs://BUCKET`` or ``gs://BUCKET/PATH`` (Cloud Storage bucket naming rules).
GS_URI = re.compile(r"^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/.*)?$")
BASE_MODEL_FORMS = "a hub id like microsoft/Phi-3-mini-4k-instruct or gs://BUCKET/PATH"


def is_hub_id(text: str) -> bool:
    return len(text) <= HUB_ID_MAX_LENGTH and ".." not in text and HUB_ID.match(text) is not None


def is_gs_uri(text: str) -> bool:
    return GS_URI.match(text) is not None


def split_names(text: str) -> tuple[str, ...]:
    """``"a, b,,a"`` -> ``("a", "b")``: a comma list, stripped, empties and repeats dropped."""
    return tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


def unknown_names(text: str, allowed: tuple[str, ...]) -> list[str]:
    """The names of the comma list ``text`` that ``allowed`` does not hold."""
    return [name for name in split_names(text) if name not in allowed]


def uri_problem(value: str, schemes: tuple[str, ...], *, file: bool = False) -> str | None:
    """Why ``value`` is neither a local path nor a URI of ``schemes`` (``file``: a gs:// object,
    not a bucket), or None."""
    if "://" not in value:
        return None
    scheme = value.split("://", 1)[0] + "://"
    path = value.removeprefix(scheme).strip("/")
    if scheme not in schemes:
        return f"unsupported scheme {scheme}: expected a local path or {', '.join(schemes)}"
    if scheme == "gs://" and (not is_gs_uri(value) or (file and "/" not in path)):
        return f"expected gs://BUCKET/{'PATH/FILE' if file else 'PATH'} (a bucket name, a path)"
    return None if path else f"expected {scheme}… with a path after the scheme"


def is_local_path(text: str) -> bool:
    """A model given as a folder: absolute, ``./``-relative, or an existing folder."""
    return text.startswith(("/", ".")) or Path(text).is_dir()


def base_model_problem(value: str) -> str | None:
    """Why ``value`` is not a hub id, a gs:// URI or a local folder, or None."""
    if is_hub_id(value) or is_gs_uri(value) or is_local_path(value):
        return None
    return (
        f"expected {BASE_MODEL_FORMS} or a local folder (a hub id: letters, digits, . _ - and "
        f"at most one /, at most {HUB_ID_MAX_LENGTH} characters, no ..)"
    )


#: Base models whose module names are known before loading them, by a word in their name.
MODULES_BY_NAME = {
    "phi-3": PHI3_LINEAR_MODULES,
    "phi3": PHI3_LINEAR_MODULES,
    "llama": LLAMA_LINEAR_MODULES,
    "smollm": LLAMA_LINEAR_MODULES,
    "qwen": LLAMA_LINEAR_MODULES,
    "mistral": LLAMA_LINEAR_MODULES,
}


def lora_modules_problem(text: str, base_model: str = "") -> str | None:
    """Why ``text`` is neither ``auto`` nor ``all-linear`` alone nor a comma list of module
    names (those of ``base_model``'s architecture where its name tells it, see
    :data:`MODULES_BY_NAME`; the fine-tuning step checks them against the loaded model)."""
    names = split_names(text)
    if names in ((AUTO_TARGETS,), (ALL_LINEAR,)):
        return None
    alone = f"or {AUTO_TARGETS} or {ALL_LINEAR} alone"
    if not names or not all(name.isidentifier() for name in names):
        example = ",".join(LLAMA_LINEAR_MODULES)
        return f"expected a comma list of module names (e.g. {example}), {alone}"
    known = next((m for word, m in MODULES_BY_NAME.items() if word in base_model.lower()), None)
    if known and unknown_names(text, known):
        return f"{base_model} has the linear layers {', '.join(known)}: name some of those, {alone}"
    return None


def metric_names_problem(text: str) -> str | None:
    """Why ``text`` is not a comma list of :data:`METRIC_NAMES` (empty: all), or None."""
    if unknown_names(text, METRIC_NAMES):
        return f"expected a comma list of {', '.join(METRIC_NAMES)} (empty: all)"
    return None
