"""What peft and trl are told: the LoRA adapter, the Trainer's settings, the chat format.

(The 4-bit base's config is shared with inference: ``yoda_step_io.quantization``.)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from yoda_fine_tuning.distributed import COLLECTIVE_TIMEOUT
from yoda_fine_tuning.hyperparams import ALL_LINEAR, HyperParameters
from yoda_fine_tuning.plan import RunPlan
from yoda_step_io.chat import assistant_prefix, render_chat

if TYPE_CHECKING:
    from peft import LoraConfig
    from transformers import PreTrainedTokenizerBase
    from trl import SFTConfig


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
