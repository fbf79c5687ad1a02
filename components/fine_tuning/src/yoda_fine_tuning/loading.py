"""What a run loads: the conversations (split for validation), the base model and its tokenizer
wrapped with a fresh LoRA adapter, and a ``datasets`` cache of its own."""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yoda_fine_tuning.architecture import choose_pad_token, resolve_target_modules
from yoda_fine_tuning.configs import RunPlan, build_lora_config
from yoda_fine_tuning.hyperparams import HyperParameters
from yoda_step_io import StepError
from yoda_step_io.chat import end_of_turn_token
from yoda_step_io.conversations import Conversation
from yoda_step_io.quantization import build_bnb_config

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


def split_validation(conversations: list[Conversation], hp: HyperParameters) -> dict[str, Dataset]:
    """Hold out ``validation_fraction`` of the rows (at least one) as the ``eval_dataset``."""
    from datasets import Dataset

    if len(conversations) < 2:
        raise StepError(
            f"the train dataset has {len(conversations)} conversation(s): need at least 2 "
            "(one to train on, one to validate)"
        )
    n_eval = max(1, round(len(conversations) * hp.validation_fraction))
    rows = Dataset.from_list(conversations)
    split = rows.train_test_split(test_size=n_eval, seed=hp.training_seed)
    return {"train": split["train"], "validation": split["test"]}


def load_tokenizer(base_model: str) -> tuple[PreTrainedTokenizerBase, bool]:
    """The base model's tokenizer, padding on the right with a token that is neither the end of
    a turn nor of the sequence (both are learnt); and whether that pad token had to be added
    (the embeddings then need a row for it)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(base_model)
    except OSError as error:
        raise StepError(f"cannot load base model {base_model}: {error}") from error
    if not getattr(tokenizer, "chat_template", None):
        raise StepError(
            f"base model {base_model} has no chat template: pick an instruct (chat) model, or "
            "give its tokenizer one"
        )
    end_of_turn = end_of_turn_token(tokenizer)
    pad, added = choose_pad_token(tokenizer, end_of_turn)
    if pad != tokenizer.pad_token or added:
        tokenizer.add_special_tokens({"pad_token": pad})
    logger.info(
        "pad token %s%s (end of turn %s, end of sequence %s: neither is masked out)",
        pad, " (added: no spare token)" if added else "", end_of_turn, tokenizer.eos_token,
    )  # fmt: skip
    tokenizer.padding_side = "right"
    return tokenizer, added


def load_model(
    base_model: str, hp: HyperParameters, plan: RunPlan, device: int = 0
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, HyperParameters]:
    """Base model (4-bit where planned) + tokenizer, wrapped with a fresh LoRA adapter; and the
    hyper-parameters with the LoRA targets resolved for this model (architecture.py). With
    CUDA the model goes to GPU ``device``: each rank's own (a 4-bit model cannot move later)."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer, added = load_tokenizer(base_model)
    model = AutoModelForCausalLM.from_pretrained(
        base_model,
        quantization_config=build_bnb_config(plan.compute_dtype) if plan.use_4bit else None,
        torch_dtype=getattr(torch, plan.compute_dtype),
        device_map={"": device} if plan.use_cuda else None,
    )
    if added:
        model.resize_token_embeddings(len(tokenizer))
    model.config.use_cache = False  # incompatible with gradient checkpointing
    targets = resolve_target_modules(hp.lora_target_modules, model)
    hp = dataclasses.replace(hp, lora_target_modules=targets)
    return add_adapter(model, hp, plan), tokenizer, hp


def add_adapter(model: PreTrainedModel, hp: HyperParameters, plan: RunPlan) -> PreTrainedModel:
    """A fresh LoRA adapter on ``model``; a 4-bit base is readied for training first (peft)."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    if plan.use_4bit:
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=hp.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    model = get_peft_model(model, build_lora_config(hp))
    return model


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameters; 4-bit weights count as their unpacked size."""
    trainable = total = 0
    for parameter in model.parameters():
        count = parameter.numel()
        if parameter.__class__.__name__ == "Params4bit":
            count *= 2  # two 4-bit values per stored byte
        total += count
        if parameter.requires_grad:
            trainable += count
    return trainable, total


def check_only_lora_trainable(model: Any) -> None:
    """The base stays frozen: every trainable parameter must belong to a LoRA adapter."""
    frozen_leak = [n for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n]
    if frozen_leak:
        raise RuntimeError(f"base parameters are trainable (LoRA set-up bug): {frozen_leak[:3]}")


@contextmanager
def private_datasets_cache() -> Iterator[Path]:
    """A fresh ``datasets`` cache for this run, removed after it.

    trl packs the data with ``Dataset.from_generator``, which writes into the shared
    ``~/.cache/huggingface/datasets`` and reuses what an earlier run with the same fingerprint
    left there (packed before this step seeded its shuffle, for one). The packed files stay
    memory-mapped while training, so the folder lives as long as the block.
    """
    import datasets

    shared = datasets.config.HF_DATASETS_CACHE
    with tempfile.TemporaryDirectory(prefix="yoda-datasets-") as folder:
        datasets.config.HF_DATASETS_CACHE = Path(folder)
        try:
            yield Path(folder)
        finally:
            datasets.config.HF_DATASETS_CACHE = shared
