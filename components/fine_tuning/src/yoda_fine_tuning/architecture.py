"""What differs between base models: the LoRA targets and the training pad token.

Any causal LM with a chat template can be the base. ``auto`` LoRA targets are the architecture's
own (Phi-3: the article's four; Llama-style models: the attention and MLP projections; any
other: peft's ``all-linear``); explicit names are checked against the loaded model's modules.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from yoda_fine_tuning.hyperparams import ALL_LINEAR, AUTO_TARGETS
from yoda_step_io import BadValueError, StepError

logger = logging.getLogger(__name__)

LLAMA_LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
#: ``auto`` LoRA targets by ``config.model_type``, which are all its linear layers but the head;
#: other architectures get ``all-linear``.
DEFAULT_TARGETS: dict[str, tuple[str, ...]] = {
    "phi3": ("o_proj", "qkv_proj", "gate_up_proj", "down_proj"),  # the article's order
    **{arch: LLAMA_LINEAR_MODULES for arch in ("llama", "mistral", "qwen2", "gemma", "gemma2")},
}
#: A base model's architecture told by a word in its name, before anything is loaded.
ARCHITECTURE_BY_NAME = {
    "phi-3": "phi3", "phi3": "phi3", "llama": "llama", "smollm": "llama", "qwen": "qwen2",
    "mistral": "mistral",
}  # fmt: skip
#: Tokens that tokenizers keep spare for padding, in order of preference.
SPARE_PAD_TOKENS = ("<|endoftext|>", "<|finetune_right_pad_id|>", "<pad>", "<|pad|>")
ADDED_PAD_TOKEN = "<|pad|>"


def architecture_of(base_model: str, here: bool) -> str | None:
    """The base's ``model_type``: its config.json's (a local folder, on this machine), else a
    word in its name (:data:`ARCHITECTURE_BY_NAME`), else unknown."""
    config = Path(base_model) / "config.json"
    if here and config.is_file():
        try:
            return str(json.loads(config.read_text(encoding="utf-8")).get("model_type") or "")
        except (OSError, ValueError, AttributeError):
            return None  # the loading reports an unreadable config
    name = base_model.lower()
    return next((arch for word, arch in ARCHITECTURE_BY_NAME.items() if word in name), None)


def check_target_names(targets: tuple[str, ...], base_model: str, here: bool) -> None:
    """Before loading: named LoRA targets must be linear layers of the base's architecture,
    where it is known (:func:`architecture_of`); the loaded model checks the rest
    (:func:`resolve_target_modules`).

    Raises:
        BadValueError: a name that architecture does not have.
    """
    if targets in ((AUTO_TARGETS,), (ALL_LINEAR,)):
        return
    known = DEFAULT_TARGETS.get(architecture_of(base_model, here) or "")
    unknown = [name for name in targets if known and name not in known]
    if known and unknown:
        raise BadValueError(
            "--lora-target-modules",
            ",".join(targets),
            f"{base_model} has the linear layers {', '.join(known)}: name some of those, or "
            f"{AUTO_TARGETS} or {ALL_LINEAR} alone",
        )


def linear_module_names(model: Any) -> list[str]:
    """The names (last part) of the model's linear layers, the output head left out."""
    import torch

    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] != "lm_head"
    }
    return sorted(names)


def resolve_target_modules(requested: tuple[str, ...], model: Any) -> tuple[str, ...]:
    """The LoRA targets for ``model``: ``auto`` by architecture, ``all-linear`` as it is, or
    the names given, each of which the model must have.

    Raises:
        StepError: a name the model has no linear layer of (the line names those it has).
    """
    if requested == (AUTO_TARGETS,):
        arch = str(getattr(model.config, "model_type", ""))
        targets = DEFAULT_TARGETS.get(arch, (ALL_LINEAR,))
        logger.info("LoRA targets for %s (auto): %s", arch or "this model", ",".join(targets))
        return targets
    if requested == (ALL_LINEAR,):
        return requested
    existing = linear_module_names(model)
    unknown = [name for name in requested if name not in existing]
    if unknown:
        raise StepError(
            f"LoRA target module(s) {', '.join(unknown)} not in this base model: its linear "
            f"layers are {', '.join(existing)} (or pass auto or {ALL_LINEAR})"
        )
    return requested


def choose_pad_token(tokenizer: Any, end_of_turn: str | None) -> tuple[str, bool]:
    """The training pad token: never the end of a turn nor the end of sequence (padding is
    masked out of the labels, so the model would never learn to stop).

    The tokenizer's own pad token where it is neither; else its unknown token (Phi-3, as in the
    article); else a spare token the vocabulary has (``<|endoftext|>``, Llama 3's
    ``<|finetune_right_pad_id|>``); else a new ``<|pad|>``, which the libraries advise where
    nothing is spare (the model's embeddings then grow by one row).

    Returns:
        The pad token and whether it was added to the vocabulary.
    """
    taken = {tokenizer.eos_token, end_of_turn} - {None}
    if tokenizer.pad_token is not None and tokenizer.pad_token not in taken:
        return str(tokenizer.pad_token), False
    vocab = tokenizer.get_vocab()
    for token in (tokenizer.unk_token, *SPARE_PAD_TOKENS):
        if token is not None and token not in taken and token in vocab:
            return str(token), False
    return ADDED_PAD_TOKEN, True
