"""Predictions for the whole test set: batched greedy generation -> CSV."""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yoda_inference.generation import build_prompt, extract_response, generate_batch
from yoda_inference.model import adapter_base_model, load_finetuned, use_4bit
from yoda_step_io import StepError, outputs_in_place
from yoda_step_io.conversations import Conversation, read_conversations
from yoda_step_io.progress import ProgressLog

logger = logging.getLogger(__name__)

PREDICTION_COLUMNS = ("user_input", "reference", "extracted_response")


@dataclass(frozen=True)
class GenerationParameters:
    """Decoding settings: greedy by default; sampling knobs apply only with ``do_sample``."""

    batch_size: int = 16
    max_new_tokens: int = 64
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0

    def validate(self) -> None:
        if self.batch_size <= 0:
            raise StepError(f"batch_size must be > 0, got {self.batch_size}")
        if self.max_new_tokens <= 0:
            raise StepError(f"max_new_tokens must be > 0, got {self.max_new_tokens}")
        if self.do_sample and self.temperature <= 0:
            raise StepError(f"temperature must be > 0 when sampling, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise StepError(f"top_p must be in (0, 1], got {self.top_p}")

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
class InferenceResult:
    rows: int
    metadata: dict[str, Any] = field(default_factory=dict)


def predict_test_set(
    model_dir: Path,
    test_path: Path,
    predictions_path: Path,
    *,
    params: GenerationParameters,
    base_model: str = "",
    quantization: str = "4bit",
    compute_dtype: str = "float16",
) -> InferenceResult:
    """Generate an answer for every test conversation; write the predictions CSV or nothing."""
    params.validate()  # before importing torch

    import torch

    four_bit = use_4bit(quantization, torch.cuda.is_available())  # refuses 4-bit without CUDA
    named_base = adapter_base_model(model_dir)  # also checks that an adapter is there
    base = base_model or named_base
    conversations = read_conversations(test_path)
    pairs = [
        user_and_reference(c, f"{test_path}, row {i + 1}") for i, c in enumerate(conversations)
    ]
    model, tokenizer = load_finetuned(
        model_dir, base, four_bit=four_bit, compute_dtype=compute_dtype
    )
    responses: list[str] = []
    generated_tokens = 0
    start = time.perf_counter()
    progress = ProgressLog(logger, "generating", len(pairs), "samples")
    for first in range(0, len(pairs), params.batch_size):
        batch = pairs[first : first + params.batch_size]
        prompts = [build_prompt(tokenizer, user) for user, _ in batch]
        outputs, tokens = generate_batch(model, tokenizer, prompts, **params.generate_kwargs())
        responses.extend(extract_response(output) for output in outputs)
        generated_tokens += tokens
        tokens_per_second = generated_tokens / (time.perf_counter() - start)
        progress.update(len(responses), f"{tokens_per_second:.1f} tokens/s")
    elapsed = time.perf_counter() - start
    with (
        outputs_in_place(predictions_path),
        predictions_path.open("w", encoding="utf-8", newline="") as handle,
    ):
        writer = csv.writer(handle)
        writer.writerow(PREDICTION_COLUMNS)
        writer.writerows(
            (user, reference, response)
            for (user, reference), response in zip(pairs, responses, strict=True)
        )
    metadata = {
        "rows": len(pairs),
        "empty_responses": sum(1 for r in responses if not r),
        "base_model": base,
        "batch_size": params.batch_size,
        "max_new_tokens": params.max_new_tokens,
        "do_sample": params.do_sample,
        "generation_seconds": elapsed,
        "samples_per_second": len(pairs) / elapsed,
        "tokens_per_second": generated_tokens / elapsed,
        "generated_tokens": generated_tokens,
        "format": "csv:" + ",".join(PREDICTION_COLUMNS),
    }
    logger.info("wrote %d predictions to %s", len(pairs), predictions_path)
    return InferenceResult(rows=len(pairs), metadata=metadata)
