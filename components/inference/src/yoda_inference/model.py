"""Getting the fine-tuned model: download it, check it, load base model + LoRA adapter."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from yoda_step_io import StepError, outputs_in_place, timing
from yoda_step_io.contract import ADAPTER_CONFIG, ADAPTER_WEIGHTS, HYPERPARAMETERS_FILE
from yoda_step_io.gcs import download_prefix
from yoda_step_io.libraries import device_compute_dtype, quiet_progress_bars, skip_bitsandbytes
from yoda_step_io.models import cached_copy, check_revision, resolve_model
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


def adapter_base_model(model_dir: Path) -> str:
    """The base model named in the adapter config.

    Raises:
        StepError: ``model_dir`` is not a LoRA adapter directory.
    """
    config_path = model_dir / ADAPTER_CONFIG
    if not model_dir.is_dir():
        raise StepError(f"model directory {model_dir} does not exist")
    if not config_path.is_file() or not any((model_dir / w).is_file() for w in ADAPTER_WEIGHTS):
        raise StepError(
            f"{model_dir} holds no LoRA adapter ({ADAPTER_CONFIG} + adapter_model.safetensors): "
            "expected the fine-tuning step's Model artifact"
        )
    try:
        base = json.loads(config_path.read_text(encoding="utf-8"))["base_model_name_or_path"]
    except (json.JSONDecodeError, KeyError) as error:
        raise StepError(f"{config_path} does not name a base model: {error}") from error
    return str(base)


def trained_revision(model_dir: Path) -> str | None:
    """The base model revision the adapter was trained on (its hyper-parameters file)."""
    path = model_dir / HYPERPARAMETERS_FILE
    if not path.is_file():
        return None
    try:
        revision = json.loads(path.read_text(encoding="utf-8")).get("base_model_revision")
    except json.JSONDecodeError as error:
        raise StepError(f"{path} is not valid JSON: {error}") from error
    return None if revision in (None, "unknown") else str(revision)


def _is_folder(base_model: str) -> bool:
    return base_model.startswith("gs://") or Path(base_model).is_dir()


def use_4bit(quantization: str, cuda_available: bool) -> bool:
    """:func:`~yoda_step_io.quantization.plan_quantization`, saying so where ``auto`` falls back
    to full precision."""
    four_bit = plan_quantization(quantization, cuda_available)
    if quantization == "auto" and not cuda_available:
        logger.warning("CUDA is not available: generating with a full-precision base on the CPU")
    return four_bit


def load_finetuned(
    model_dir: Path, base_model: str, *, four_bit: bool, compute_dtype: str
) -> tuple[Any, Any]:
    """Base model (4-bit if ``four_bit``: see :func:`use_4bit`) + LoRA adapter; tokenizer."""
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
    expected = trained_revision(model_dir)
    pinned = {"revision": expected} if expected and not _is_folder(base_model) else {}
    try:
        base = AutoModelForCausalLM.from_pretrained(
            resolve_model(base_model),  # gs:// -> the /gcs mount or a local copy
            **pinned,  # a hub model: exactly the commit the adapter was trained on
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
    to answer with: the base model its adapter names, 4-bit where asked and CUDA is, plus the
    adapter; and the tokenizer. What ``yoda-predict`` and ``yoda-serve`` answer with."""
    import torch

    four_bit = use_4bit(quantization, torch.cuda.is_available())  # refused before any download
    gs = model_uri.startswith("gs://")
    model_dir = cached_copy(model_uri, cache_dir) if gs else Path(model_uri)
    return load_finetuned(
        model_dir, adapter_base_model(model_dir), four_bit=four_bit, compute_dtype="float16"
    )
