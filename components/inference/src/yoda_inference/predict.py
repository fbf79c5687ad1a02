"""Predictions for the whole test set: batched greedy generation -> CSV."""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yoda_inference.generation import build_prompt, generate
from yoda_inference.model import (
    base_for_run,
    check_mergeable,
    load_finetuned,
    merge_adapter,
    use_4bit,
)
from yoda_step_io import StepError, local_inputs, outputs_in_place
from yoda_step_io.answers import degenerate_counts, warn_if_degenerate
from yoda_step_io.contract import PREDICTION_COLUMNS
from yoda_step_io.conversations import Conversation, read_conversations
from yoda_step_io.progress import ProgressLog
from yoda_step_io.values import BOOLEAN, check_fields, integer, number, value

logger = logging.getLogger(__name__)


#: The most tokens one answer may have: a bound on the work of one generation.
MAX_NEW_TOKENS = 2048


@dataclass(frozen=True)
class GenerationParameters:
    """Decoding settings: greedy by default; sampling knobs apply only with ``do_sample``. Each
    field is a flag of ``yoda-inference`` (:mod:`yoda_step_io.values`)."""

    batch_size: int = value(16, integer(1, 512), "prompts per generate call")
    max_new_tokens: int = value(64, integer(1, MAX_NEW_TOKENS), "tokens per answer at most")
    do_sample: bool = value(False, BOOLEAN, "sample instead of greedy decoding")
    temperature: float = value(1.0, number(gt=0.0, le=100.0), "sampling temperature")
    top_p: float = value(1.0, number(gt=0.0, le=1.0), "nucleus sampling's p")

    def validate(self) -> None:
        """Raise :class:`~yoda_step_io.BadValueError` naming the first value not allowed."""
        check_fields(self)

    def generate_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.do_sample,
        }
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p)
        return kwargs


def user_and_reference(conversation: Conversation, where: str) -> tuple[str, str]:
    """The first user message and the assistant answer after it (the reference)."""
    messages = conversation["messages"]
    roles = [m["role"] for m in messages]
    user_index = roles.index("user")
    reference = next(
        (m["content"] for m in messages[user_index + 1 :] if m["role"] == "assistant"), None
    )
    if reference is None:
        raise StepError(f"{where}: no assistant answer after the user message")
    return messages[user_index]["content"], reference


@dataclass(frozen=True)
class Answers:
    """One model's answers to the test set, and what generating them cost."""

    texts: list[str]
    cut: int  # answers that ran into max_new_tokens
    generated_tokens: int
    seconds: float

    def metadata(self, params: GenerationParameters) -> dict[str, Any]:
        return {
            "rows": len(self.texts),
            **degenerate_counts(self.texts),
            "cut_answers": self.cut,
            "batch_size": params.batch_size,
            "max_new_tokens": params.max_new_tokens,
            "do_sample": params.do_sample,
            "generation_seconds": self.seconds,
            "samples_per_second": len(self.texts) / self.seconds if self.seconds else 0.0,
            "tokens_per_second": self.generated_tokens / self.seconds if self.seconds else 0.0,
            "generated_tokens": self.generated_tokens,
            "format": "csv:" + ",".join(PREDICTION_COLUMNS),
        }


@dataclass(frozen=True)
class InferenceResult:
    rows: int
    metadata: dict[str, Any] = field(default_factory=dict)
    base_metadata: dict[str, Any] = field(default_factory=dict)


def generate_answers(
    model: Any, tokenizer: Any, users: list[str], params: GenerationParameters, label: str
) -> Answers:
    """Batched generation for every user sentence; the extracted answers, in order."""
    texts: list[str] = []
    cut = generated_tokens = 0
    start = time.perf_counter()
    progress = ProgressLog(logger, label, len(users), "samples")
    for first in range(0, len(users), params.batch_size):
        prompts = [
            build_prompt(tokenizer, user) for user in users[first : first + params.batch_size]
        ]
        batch = generate(model, tokenizer, prompts, **params.generate_kwargs())
        texts.extend(batch.answers)
        cut += sum(not ended for ended in batch.ended)
        generated_tokens += batch.tokens
        tokens_per_second = generated_tokens / (time.perf_counter() - start)
        progress.update(len(texts), f"{tokens_per_second:.1f} tokens/s")
    return Answers(texts, cut, generated_tokens, time.perf_counter() - start)


def write_predictions(path: Path, pairs: list[tuple[str, str]], answers: list[str]) -> None:
    """The predictions CSV: exactly ``user_input,reference,extracted_response``."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(PREDICTION_COLUMNS)
        writer.writerows(
            (user, reference, answer)
            for (user, reference), answer in zip(pairs, answers, strict=True)
        )


def predict_test_set(
    model_dir: Path,
    test_path: Path,
    predictions_path: Path,
    *,
    params: GenerationParameters,
    base_predictions_path: Path | None = None,
    with_base_model: bool = True,
    base_model: str = "",
    quantization: str = "4bit",
    compute_dtype: str = "float16",
    merge: bool = False,
) -> InferenceResult:
    """Answer every test conversation with the fine-tuned model and, with the adapter switched
    off, with the base model (one load, two generations); write the predictions CSVs or nothing.

    ``base_predictions_path`` without ``with_base_model`` gets the header alone (a pipeline's
    output must exist); without ``base_predictions_path`` there is no base output at all.
    ``merge`` folds the adapter into a full-precision base before the fine-tuned answers.
    """
    params.validate()  # before importing torch

    import torch

    four_bit = use_4bit(quantization, torch.cuda.is_available())  # refuses 4-bit without CUDA
    if merge:
        check_mergeable(four_bit)  # before loading anything
    trained = base_for_run(model_dir, base_model)  # also checks that an adapter is there
    base = trained.base_model
    conversations = read_conversations(test_path)
    pairs = [
        user_and_reference(c, f"{test_path}, row {i + 1}") for i, c in enumerate(conversations)
    ]
    model, tokenizer = load_finetuned(
        model_dir, trained, four_bit=four_bit, compute_dtype=compute_dtype
    )
    users = [user for user, _ in pairs]
    base_answers: Answers | None = None
    if base_predictions_path is not None and with_base_model:
        with model.disable_adapter():  # the same weights without the LoRA: the base model
            base_answers = generate_answers(model, tokenizer, users, params, "generating (base)")
    if merge:  # after the base answers: a merged adapter cannot be switched off any more
        model = merge_adapter(model, four_bit)
    tuned = generate_answers(model, tokenizer, users, params, "generating (fine-tuned)")
    outputs = [predictions_path] + ([base_predictions_path] if base_predictions_path else [])
    with outputs_in_place(*outputs, inputs=local_inputs(model_dir, test_path)):
        write_predictions(predictions_path, pairs, tuned.texts)
        if base_predictions_path is not None:
            base_texts = base_answers.texts if base_answers else []
            write_predictions(base_predictions_path, pairs[: len(base_texts)], base_texts)
    revision = {"base_model_revision": trained.revision or "unknown"}
    metadata = {
        "base_model": base,
        **revision,
        "adapter": "merged" if merge else "on",
        **tuned.metadata(params),
    }
    counts = {k: metadata[k] for k in ("empty_answers", "repeated_answers", "cut_answers")}
    warn_if_degenerate(logger, "fine-tuned model", counts, len(pairs))
    base_metadata: dict[str, Any] = {"rows": 0, "skipped": "with_base_model is false"}
    if base_answers is not None:
        base_metadata = {"base_model": base, **revision, "adapter": "disabled",
                         **base_answers.metadata(params)}  # fmt: skip
        counts = {k: base_metadata[k] for k in counts}
        warn_if_degenerate(logger, "base model", counts, len(pairs))
    logger.info("wrote %d predictions to %s", len(pairs), predictions_path)
    return InferenceResult(rows=len(pairs), metadata=metadata, base_metadata=base_metadata)
