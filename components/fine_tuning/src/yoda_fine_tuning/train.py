"""LoRA fine-tuning with trl's ``SFTTrainer``: QLoRA on a 4-bit base where CUDA exists.

The adapter (never merged into a 4-bit base), the tokenizer and the hyper-parameters go to the
Model artifact; TensorBoard event files and a ``metrics.json`` go under the Metrics artifact.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import resource
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yoda_fine_tuning.architecture import choose_pad_token, resolve_target_modules
from yoda_fine_tuning.checkpoints import (
    checkpoint_folder_for,
    claim_checkpoint_folder,
    last_complete_checkpoint,
    release_checkpoint_folder,
    weights_only_resume,
)
from yoda_fine_tuning.guards import check_converging, stop_on_non_finite
from yoda_fine_tuning.hyperparams import HyperParameters
from yoda_fine_tuning.logs import progress_callback
from yoda_step_io import StepError, local_inputs, outputs_in_place, timed, timing
from yoda_step_io.chat import end_of_turn_token
from yoda_step_io.conversations import Conversation, read_conversations
from yoda_step_io.libraries import (
    compute_dtype_for,
    device_support,
    quiet_progress_bars,
    skip_bitsandbytes,
)
from yoda_step_io.models import model_revision, resolve_model
from yoda_step_io.vocabulary import ALL_LINEAR

if TYPE_CHECKING:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import BitsAndBytesConfig, PreTrainedModel, PreTrainedTokenizerBase
    from trl import SFTConfig

logger = logging.getLogger(__name__)

_BNB_OPTIMIZERS = ("8bit", "paged_")
#: The Trainer's log history (losses by step), in the Metrics artifact.
LOG_HISTORY = "log_history.json"


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
        return self.use_4bit or any(marker in self.optim for marker in _BNB_OPTIMIZERS)


def plan_run(hp: HyperParameters, cuda_available: bool, bf16_supported: bool = False) -> RunPlan:
    """Decide quantisation, optimizer and compute dtype for this machine; never fall back
    silently.

    Raises:
        StepError: 4-bit or a bitsandbytes optimizer was asked for explicitly without CUDA;
            bfloat16 on a GPU without it.
    """
    needs_bnb_optim = any(marker in hp.optim for marker in _BNB_OPTIMIZERS)
    dtype = compute_dtype_for(hp.compute_dtype, cuda_available, bf16_supported)
    if cuda_available:
        if dtype != hp.compute_dtype:
            logger.info("compute_dtype %s: %s on this GPU", hp.compute_dtype, dtype)
        return RunPlan(True, hp.quantization != "none", hp.optim, dtype)
    if hp.quantization == "4bit":
        raise StepError(
            "4-bit quantisation needs a CUDA GPU and none is visible: run on a GPU, or pass "
            "--quantization auto (4-bit on CUDA, full precision elsewhere) or --quantization none"
        )
    optim = hp.optim
    if needs_bnb_optim:
        if hp.quantization != "auto":
            raise StepError(
                f"optimizer {hp.optim} needs CUDA (bitsandbytes): pass --optim adamw_torch "
                "or --quantization auto"
            )
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
        if hp.target_modules == (ALL_LINEAR,)
        else list(hp.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def build_bnb_config(compute_dtype: str) -> BitsAndBytesConfig:
    """4-bit NF4 with double quantisation; compute in ``compute_dtype`` (as planned)."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=getattr(torch, compute_dtype),
    )


def build_sft_config(
    hp: HyperParameters,
    plan: RunPlan,
    output_dir: Path,
    logging_dir: Path,
    *,
    progress_bar: bool = True,
) -> SFTConfig:
    """Trainer settings: TensorBoard logs in ``logging_dir``, checkpoints in ``output_dir``.

    ``progress_bar=False`` (a log, not a terminal) turns the Trainer's bar off.
    """
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(output_dir),
        logging_dir=str(logging_dir),
        report_to=["tensorboard"],
        per_device_train_batch_size=hp.per_device_train_batch_size,
        per_device_eval_batch_size=hp.per_device_train_batch_size,
        auto_find_batch_size=hp.auto_find_batch_size,
        max_seq_length=hp.max_seq_length,
        packing=hp.packing,
        # the chat template is the whole format: no extra BOS, as trl does for chat datasets
        dataset_kwargs={"add_special_tokens": False},
        num_train_epochs=hp.num_train_epochs,
        max_steps=hp.max_steps,
        learning_rate=hp.learning_rate,
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
        seed=hp.seed,
        use_cpu=not plan.use_cuda,
        disable_tqdm=not progress_bar,
    )


def split_validation(conversations: list[Conversation], hp: HyperParameters) -> dict[str, Dataset]:
    """Hold out ``validation_fraction`` of the rows (at least one) as the ``eval_dataset``."""
    from datasets import Dataset

    if len(conversations) < 2:
        raise StepError(
            f"the train dataset has {len(conversations)} conversation(s): need at least 2 "
            "(one to train on, one to validate)"
        )
    n_eval = max(1, round(len(conversations) * hp.validation_fraction))
    split = Dataset.from_list(conversations).train_test_split(test_size=n_eval, seed=hp.seed)
    return {"train": split["train"], "validation": split["test"]}


def check_base_model(base_model: str) -> None:
    """A local base model must be a directory with a ``config.json``; else it is a hub id."""
    path = Path(base_model)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise StepError(f"base model directory {base_model} has no config.json")
    elif path.exists() or base_model.startswith((".", "/", "~")):
        raise StepError(f"base model directory {base_model} does not exist")


def load_model(
    base_model: str, hp: HyperParameters, plan: RunPlan
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, HyperParameters]:
    """Base model (4-bit where planned) + tokenizer, wrapped with a fresh LoRA adapter; and the
    hyper-parameters with the LoRA targets resolved for this model (architecture.py)."""
    import torch
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer

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
    model = AutoModelForCausalLM.from_pretrained(
        base_model,
        quantization_config=build_bnb_config(plan.compute_dtype) if plan.use_4bit else None,
        torch_dtype=getattr(torch, plan.compute_dtype),
        device_map={"": 0} if plan.use_cuda else None,
    )
    if added:
        model.resize_token_embeddings(len(tokenizer))
    model.config.use_cache = False  # incompatible with gradient checkpointing
    hp = dataclasses.replace(hp, target_modules=resolve_target_modules(hp.target_modules, model))
    if plan.use_4bit:
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=hp.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    model = get_peft_model(model, build_lora_config(hp))
    return model, tokenizer, hp


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


def chat_formatter(tokenizer: PreTrainedTokenizerBase) -> Any:
    """trl formatting function: the tokenizer's chat template, per example or per batch."""

    def format_messages(examples: dict[str, Any]) -> str | list[str]:
        messages = examples["messages"]
        if messages and isinstance(messages[0], dict):
            return str(tokenizer.apply_chat_template(messages, tokenize=False))
        return [str(tokenizer.apply_chat_template(m, tokenize=False)) for m in messages]

    return format_messages


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


def _peak_memory_mb(use_cuda: bool) -> float:
    if use_cuda:
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _close_tensorboard(trainer: Any) -> None:
    """Flush and close TensorBoard writers (evaluate() after train() reopens one)."""
    from transformers.integrations import TensorBoardCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback) and callback.tb_writer is not None:
            callback.tb_writer.close()
            callback.tb_writer = None


@dataclass(frozen=True)
class FineTuneResult:
    """Scalar metrics (Metrics artifact), model metadata, and the trained model in memory."""

    metrics: dict[str, float]
    model_metadata: dict[str, Any]
    model: Any


def fine_tune(
    train_path: Path,
    model_output: Path,
    metrics_output: Path,
    *,
    base_model: str,
    hp: HyperParameters,
    checkpoint_dir: Path | None = None,
) -> FineTuneResult:
    """Train a LoRA adapter on ``train_path``; write the Model and Metrics outputs or neither."""
    hp.validate()  # before importing torch and friends: a bad value fails in a blink

    plan = plan_run(hp, *device_support())  # imports torch
    if not plan.needs_bitsandbytes:
        skip_bitsandbytes()
    quiet = quiet_progress_bars()

    from transformers import PrinterCallback, set_seed
    from trl import SFTTrainer

    timing.mark("imports")
    # The LoRA weights' initialisation and trl's packing shuffle draw from the global RNGs before
    # the Trainer seeds them: seed them first, or no two runs are alike.
    set_seed(hp.seed)
    source = resolve_model(base_model)  # gs:// -> the /gcs mount or a local copy
    check_base_model(source)
    datasets = split_validation(read_conversations(train_path), hp)
    logger.info(
        "training on %d conversations, validating on %d; hyper-parameters: %s",
        len(datasets["train"]),
        len(datasets["validation"]),
        hp.as_dict(),
    )
    with timed("loading the base model"):
        model, tokenizer, hp = load_model(source, hp, plan)
    # what the adapter is trained on, exactly: the hub's commit, or a content hash of the folder
    revision = model_revision(base_model, getattr(model.config, "_commit_hash", None))
    logger.info("base model %s at revision %s", base_model, revision)
    timing.mark("load")
    check_only_lora_trainable(model)
    trainable, total = count_parameters(model)
    logger.info(
        "trainable parameters: %d of %d (%.2f%%)", trainable, total, 100 * trainable / total
    )
    sources = local_inputs(train_path, base_model)
    outputs = (model_output, metrics_output)
    checkpoints = checkpoint_folder_for(model_output, checkpoint_dir)
    with (
        outputs_in_place(*outputs, inputs=sources),
        private_datasets_cache(),
    ):
        claim_checkpoint_folder(checkpoints, (*outputs, *sources))
        metrics_output.mkdir()
        try:
            trainer = SFTTrainer(
                model=model,
                args=build_sft_config(
                    hp, plan, checkpoints, metrics_output / "tensorboard", progress_bar=not quiet
                ),
                train_dataset=datasets["train"],
                eval_dataset=datasets["validation"],
                processing_class=tokenizer,
                formatting_func=chat_formatter(tokenizer),
            )
        except ValueError as error:
            if "packed sequence" not in str(error):
                raise
            raise StepError(
                f"too little text to pack into sequences of {hp.max_seq_length} tokens: "
                "use more rows, a larger validation_fraction, or --packing false"
            ) from error
        trainer.add_callback(stop_on_non_finite())
        if quiet:  # a log, not a terminal: progress lines instead of a bar and printed dicts
            trainer.remove_callback(PrinterCallback)
            trainer.add_callback(progress_callback(hp.tokens_per_step()))
        resume = last_complete_checkpoint(checkpoints)
        if resume:
            logger.info("resuming from checkpoint %s", resume)
        with timed("training"), weights_only_resume():
            train_output = trainer.train(resume_from_checkpoint=resume)
        eval_metrics = trainer.evaluate()
        _close_tensorboard(trainer)
        losses = {
            "train_loss": float(train_output.training_loss),
            "eval_loss": float(eval_metrics["eval_loss"]),
        }
        metrics = {
            **losses,
            "train_runtime_s": float(train_output.metrics["train_runtime"]),
            "train_samples_per_second": float(train_output.metrics["train_samples_per_second"]),
            "train_steps": float(train_output.global_step),
            "train_conversations": float(len(datasets["train"])),
            "validation_conversations": float(len(datasets["validation"])),
            "trainable_params": float(trainable),
            "total_params": float(total),
            "trainable_percent": 100.0 * trainable / total,
            "peak_memory_mb": _peak_memory_mb(plan.use_cuda),
            **hp.numeric(),
        }
        try:
            check_converging(trainer.state.log_history, losses, hp)
        except StepError:
            release_checkpoint_folder(checkpoints)  # nothing worth resuming from
            raise
        # the adapter names the base as the user gave it (gs://…, a hub id), not a local copy
        for config in trainer.model.peft_config.values():
            config.base_model_name_or_path = base_model
        trainer.model.save_pretrained(model_output)
        tokenizer.save_pretrained(model_output)
        model_metadata = {
            **hp.as_dict(),
            "base_model": base_model,
            "adapter": "lora",
            "quantized_4bit": plan.use_4bit,
            "optim": plan.optim,  # as used: adamw_torch where the 8-bit optimizer needs CUDA
            "compute_dtype_used": plan.compute_dtype,
            "base_model_revision": revision,
        }
        (model_output / "hyperparameters.json").write_text(json.dumps(model_metadata, indent=2))
        (model_output / "training_metrics.json").write_text(json.dumps(metrics, indent=2))
        (metrics_output / "metrics.json").write_text(json.dumps(metrics, indent=2))
        # the loss curves (training and validation, by step) for the report
        history = json.dumps(trainer.state.log_history, indent=1)
        (metrics_output / LOG_HISTORY).write_text(history, encoding="utf-8")
    release_checkpoint_folder(checkpoints)  # the run finished: nothing left to resume
    logger.info("saved the LoRA adapter to %s, metrics to %s", model_output, metrics_output)
    return FineTuneResult(metrics=metrics, model_metadata=model_metadata, model=trainer.model)
