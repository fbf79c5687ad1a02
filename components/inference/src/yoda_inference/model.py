"""Getting the fine-tuned model: download it, check it, load base model + LoRA adapter."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yoda_step_io import BadValueError, StepError, outputs_in_place, timing
from yoda_step_io.contract import ADAPTER_CONFIG, ADAPTER_WEIGHTS, HYPERPARAMETERS_FILE
from yoda_step_io.gcs import download_prefix
from yoda_step_io.libraries import device_compute_dtype, quiet_progress_bars, skip_bitsandbytes
from yoda_step_io.models import (
    BASE_MODEL,
    cached_copy,
    check_local_model,
    check_revision,
    is_hub_id,
    resolve_model,
)
from yoda_step_io.quantization import build_bnb_config, plan_quantization

logger = logging.getLogger(__name__)


def download_model(model_uri: str, local_dir: str | Path) -> Path:
    """Copy the model directory at ``model_uri`` (``gs://…`` or a local path) into ``local_dir``.

    Nested files keep their relative paths; ``local_dir`` is replaced if present, and removed
    again if the copy fails.

    Raises:
        StepError: the bucket, prefix or directory does not exist or holds no file.
    """
    local_dir = Path(local_dir)
    if model_uri.startswith("gs://"):
        download_prefix(model_uri, local_dir)
        return local_dir
    source = Path(model_uri)
    if not source.is_dir():
        raise StepError(f"model directory {model_uri} does not exist")
    if not any(p.is_file() for p in source.rglob("*")):
        raise StepError(f"model directory {model_uri} holds no file")
    with outputs_in_place(local_dir, inputs=[source]):
        shutil.copytree(source, local_dir)
    return local_dir


def check_adapter(model_dir: Path) -> None:
    """``model_dir`` must hold a LoRA adapter: its config and weights.

    Raises:
        StepError: it does not.
    """
    if not model_dir.is_dir():
        raise StepError(f"model directory {model_dir} does not exist")
    config_path = model_dir / ADAPTER_CONFIG
    if not config_path.is_file() or not any((model_dir / w).is_file() for w in ADAPTER_WEIGHTS):
        raise StepError(
            f"{model_dir} holds no LoRA adapter ({ADAPTER_CONFIG} + adapter_model.safetensors): "
            "expected the fine-tuning step's Model artifact"
        )


@dataclass(frozen=True)
class TrainedOn:
    """The base model the fine-tuning step recorded in its own Model artifact
    (``hyperparameters.json``): as the user named it, and its revision (None: unknown)."""

    base_model: str
    revision: str | None


def trained_on(model_dir: Path) -> TrainedOn:
    """What the adapter in ``model_dir`` was trained on, as the fine-tuning step recorded it.
    peft's ``adapter_config.json`` is not read for this: whatever else wrote an adapter could
    name any base there, and inference would download it.

    Raises:
        StepError: no adapter, no record, or a recorded base that is no model name.
    """
    check_adapter(model_dir)
    path = model_dir / HYPERPARAMETERS_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        base = record["base_model"]
    except FileNotFoundError:
        raise StepError(
            f"{model_dir} has no {HYPERPARAMETERS_FILE}: expected a Model artifact of "
            "yoda-fine-tuning, which records the base model it trained on"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise StepError(f"{path} does not record a base model: {error}") from error
    problem = BASE_MODEL.problem(base) if isinstance(base, str) else "not text"
    if problem:
        raise StepError(f"{path} records base model {base!r}: {problem}")
    revision = record.get("base_model_revision")
    return TrainedOn(base, None if revision in (None, "unknown") else str(revision))


def base_for_run(model_dir: Path, run_base: str) -> TrainedOn:
    """The base to load: the run's own (``run_base``, the pipeline's ``base_model``), which must
    be the one the adapter was trained on; by hand (empty), the one recorded.

    Raises:
        BadValueError: the adapter was trained on another base.
    """
    trained = trained_on(model_dir)
    if run_base and run_base != trained.base_model:
        raise BadValueError(
            "--base-model", run_base, f"the adapter in {model_dir} was trained on "
            f"{trained.base_model}: inference loads the run's own base, never another",
        )  # fmt: skip
    return trained


def use_4bit(quantization: str, cuda_available: bool) -> bool:
    """:func:`~yoda_step_io.quantization.plan_quantization`, saying so where ``auto`` falls back
    to full precision."""
    four_bit = plan_quantization(quantization, cuda_available)
    if quantization == "auto" and not cuda_available:
        logger.warning("CUDA is not available: generating with a full-precision base on the CPU")
    return four_bit


def load_finetuned(
    model_dir: Path, trained: TrainedOn, *, four_bit: bool, compute_dtype: str
) -> tuple[Any, Any]:
    """The base the adapter was trained on (4-bit if ``four_bit``: see :func:`use_4bit`) + the
    LoRA adapter; the tokenizer."""
    import torch

    if not four_bit:
        skip_bitsandbytes()
    quiet_progress_bars()

    from peft import PeftModel
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    timing.mark("imports")

    cuda = torch.cuda.is_available()
    used = device_compute_dtype(compute_dtype)  # float32 on a CPU; no bfloat16 on a T4
    dtype = getattr(torch, used)
    base_model, expected = trained.base_model, trained.revision
    check_local_model(base_model)
    # a hub model: exactly the commit the adapter was trained on; gs://: the mount or a copy
    source = resolve_model(base_model, expected if is_hub_id(base_model) else None)
    try:
        base = AutoModelForCausalLM.from_pretrained(
            source,
            quantization_config=build_bnb_config(used) if four_bit else None,
            torch_dtype=dtype,
            device_map={"": 0} if cuda else None,
        )
    except OSError as error:
        raise StepError(f"cannot load base model {base_model}: {error}") from error
    if expected:
        check_revision(base_model, expected, getattr(base.config, "_commit_hash", None))
    else:
        logger.warning(
            "%s records no base model revision: %s is used as it is", model_dir, base_model
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if len(tokenizer) > base.get_input_embeddings().num_embeddings:
            # training added a pad token (no spare one): the base gets its row too
            base.resize_token_embeddings(len(tokenizer))
        model = PeftModel.from_pretrained(base, str(model_dir)).eval()
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StepError(
            f"cannot load the LoRA adapter in {model_dir} (a corrupt or truncated file?): {first}"
        ) from error
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    timing.mark("load")
    logger.info(
        "loaded %s + adapter %s (%s, %s)",
        base_model,
        model_dir,
        "4-bit" if four_bit else "full precision",
        "cuda" if cuda else "cpu",
    )
    return model, tokenizer


def check_mergeable(four_bit: bool) -> None:
    """Raise :class:`StepError` for a 4-bit base, where merging loses the adapter's precision."""
    if four_bit:
        raise StepError(
            "merging the adapter into a 4-bit base is unsafe: pass --quantization none "
            "(a float16 base) with --merge-adapter, or leave the adapter unmerged"
        )


def merge_adapter(model: Any, four_bit: bool) -> Any:
    """The adapter folded into the base weights (one matmul per layer instead of three)."""
    check_mergeable(four_bit)
    merged = model.merge_and_unload()
    logger.info("merged the LoRA adapter into the base weights")
    return merged


def load_for_answers(model_uri: str, quantization: str, cache_dir: Path) -> tuple[Any, Any]:
    """A run's Model artifact (a folder, or ``gs://`` downloaded once into ``cache_dir``) loaded
    to answer with: the base model its fine-tuning recorded, 4-bit where asked and CUDA is, plus
    the adapter; and the tokenizer. What ``yoda-predict`` and ``yoda-serve`` answer with."""
    import torch

    four_bit = use_4bit(quantization, torch.cuda.is_available())  # refused before any download
    gs = model_uri.startswith("gs://")
    model_dir = cached_copy(model_uri, cache_dir) if gs else Path(model_uri)
    return load_finetuned(
        model_dir, trained_on(model_dir), four_bit=four_bit, compute_dtype="float16"
    )
