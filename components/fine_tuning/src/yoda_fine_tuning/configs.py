"""How the run is set up: first the plan, how the hyper-parameters play out on this machine
(quantisation, optimizer, compute dtype); then what peft and trl are told (the LoRA adapter, the
Trainer's settings, the chat format).

(The 4-bit base's config is shared with inference: ``yoda_step_io.quantization``.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yoda_fine_tuning.distributed import COLLECTIVE_TIMEOUT
from yoda_fine_tuning.hyperparams import ALL_LINEAR, HyperParameters
from yoda_step_io import BadValueError
from yoda_step_io.chat import assistant_prefix, render_chat
from yoda_step_io.libraries import compute_dtype_for
from yoda_step_io.quantization import plan_quantization

if TYPE_CHECKING:
    from peft import LoraConfig
    from transformers import PreTrainedTokenizerBase
    from trl import SFTConfig

logger = logging.getLogger(__name__)

_BNB_OPTIMIZERS = ("8bit", "paged_")


def _needs_bnb_optimizer(optim: str) -> bool:
    return any(marker in optim for marker in _BNB_OPTIMIZERS)


@dataclass(frozen=True)
class RunPlan:
    """How the hyper-parameters play out on this machine."""

    use_cuda: bool
    use_4bit: bool
    optim: str
    compute_dtype: str = "float32"  # as used: checked against the device (compute_dtype_for)

    @property
    def needs_bitsandbytes(self) -> bool:
        """4-bit weights or an 8-bit/paged optimizer: both come from bitsandbytes."""
        return self.use_4bit or _needs_bnb_optimizer(self.optim)


def plan_run(hp: HyperParameters, cuda_available: bool, bf16_supported: bool = False) -> RunPlan:
    """Decide quantisation, optimizer and compute dtype for this machine; never fall back
    silently.

    Raises:
        BadValueError: 4-bit or a bitsandbytes optimizer was asked for explicitly without CUDA;
            bfloat16 on a GPU without it.
    """
    dtype = compute_dtype_for(hp.compute_dtype, cuda_available, bf16_supported)
    use_4bit = plan_quantization(hp.quantization, cuda_available)
    if cuda_available:
        if dtype != hp.compute_dtype:
            logger.info("compute_dtype %s: %s on this GPU", hp.compute_dtype, dtype)
        return RunPlan(True, use_4bit, hp.optim, dtype)
    optim = hp.optim
    if _needs_bnb_optimizer(hp.optim):
        if hp.quantization != "auto":
            raise BadValueError(
                "--optim", hp.optim, "it needs CUDA (bitsandbytes): pass adamw_torch, or "
                "--quantization auto",
            )  # fmt: skip
        optim = "adamw_torch"
    logger.warning(
        "CUDA is not available: training the same LoRA adapter on a full-precision base "
        "on the CPU (quantization=%s, optimizer %s)",
        hp.quantization,
        optim,
    )
    return RunPlan(use_cuda=False, use_4bit=False, optim=optim, compute_dtype=dtype)


def build_lora_config(hp: HyperParameters) -> LoraConfig:
    from peft import LoraConfig

    return LoraConfig(
        r=hp.lora_r,
        lora_alpha=hp.lora_alpha,
        lora_dropout=hp.lora_dropout,
        # peft takes its special value as a string, names as a list
        target_modules=ALL_LINEAR
        if hp.lora_target_modules == (ALL_LINEAR,)
        else list(hp.lora_target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def build_sft_config(
    hp: HyperParameters,
    plan: RunPlan,
    output_dir: Path,
    logging_dir: Path,
    world_size: int = 1,
    *,
    progress_bar: bool = True,
) -> SFTConfig:
    """Trainer settings: TensorBoard logs in ``logging_dir``, checkpoints in ``output_dir``.

    ``progress_bar=False`` (a log, not a terminal) turns the Trainer's bar off. With several
    ranks (``world_size``), DDP settings; and no ``auto_find_batch_size``: the ranks would each
    shrink their own batch and fall out of step.
    """
    from trl import SFTConfig

    ddp: dict[str, Any] = {}
    if world_size > 1:
        ddp = {
            "ddp_find_unused_parameters": False,  # every LoRA weight gets a gradient
            "ddp_timeout": int(COLLECTIVE_TIMEOUT.total_seconds()),
        }

    return SFTConfig(
        output_dir=str(output_dir),
        logging_dir=str(logging_dir),
        report_to=["tensorboard"],
        per_device_train_batch_size=hp.per_device_train_batch_size,
        per_device_eval_batch_size=hp.per_device_train_batch_size,
        auto_find_batch_size=hp.auto_find_batch_size and world_size == 1,
        max_seq_length=hp.max_seq_length,
        packing=hp.packing,
        # the chat template is the whole format: no extra BOS, as trl does for chat datasets
        dataset_kwargs={"add_special_tokens": False},
        num_train_epochs=hp.num_train_epochs,
        max_steps=hp.max_steps,
        learning_rate=hp.learning_rate,
        lr_scheduler_type=hp.lr_scheduler_type,
        warmup_ratio=hp.warmup_ratio,
        weight_decay=hp.weight_decay,
        neftune_noise_alpha=hp.neftune_noise_alpha or None,
        optim=plan.optim,
        gradient_checkpointing=hp.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        logging_steps=hp.logging_steps,
        logging_first_step=True,
        eval_strategy="steps",
        eval_steps=hp.logging_steps,
        save_strategy="steps",
        save_steps=hp.logging_steps,
        save_total_limit=2,
        seed=hp.training_seed,
        use_cpu=not plan.use_cuda,
        disable_tqdm=not progress_bar,
        **ddp,
    )


def build_data_collator(hp: HyperParameters, tokenizer: PreTrainedTokenizerBase) -> Any:
    """With ``completion_only_loss``: labels on the assistant's answers alone, found after the
    chat template's assistant prefix (trl's ``DataCollatorForCompletionOnlyLM``); else None,
    trl's default: the loss on every token."""
    if not hp.completion_only_loss:
        return None
    from trl import DataCollatorForCompletionOnlyLM

    prefix = tokenizer.encode(assistant_prefix(tokenizer), add_special_tokens=False)
    return DataCollatorForCompletionOnlyLM(response_template=prefix, tokenizer=tokenizer)


def chat_formatter(tokenizer: PreTrainedTokenizerBase) -> Any:
    """trl formatting function: the tokenizer's chat template, per example or per batch."""

    def format_messages(examples: dict[str, Any]) -> str | list[str]:
        messages = examples["messages"]
        if messages and isinstance(messages[0], dict):
            return render_chat(tokenizer, messages)
        return [render_chat(tokenizer, m) for m in messages]

    return format_messages
