"""The model ``yoda-serve`` answers with: the inference step's loading, prompting and generation
(``load_for_answers``, ``build_prompt``, ``generate``), and one lock for the tokenizer."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from yoda_inference.generation import build_prompt, generate
from yoda_inference.predict import GenerationParameters
from yoda_step_io.models import model_cache_dir


@dataclass
class Predictor:
    """The loaded model and tokenizer.

    The tokenizer is used by one thread at a time: the worker thread's ``generate()`` holds the
    lock while it encodes and decodes (not while the model generates), and a request's token
    count waits for it. A fast tokenizer used by two threads at once, one of them changing its
    padding, fails with "Already borrowed".
    """

    model: Any
    tokenizer: Any
    defaults: GenerationParameters
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        #: the longest token, in characters: a text longer than cap x this is over cap tokens
        self.chars_per_token = max(len(token) for token in self.tokenizer.get_vocab())

    @property
    def max_positions(self) -> int | None:
        positions = getattr(self.model.config, "max_position_embeddings", None)
        return positions if isinstance(positions, int) else None

    def _prompts(self, texts: list[str]) -> list[str]:
        with self.lock:
            return [build_prompt(self.tokenizer, text) for text in texts]

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Each text's prompt (chat template included), in tokens."""
        prompts = self._prompts(texts)
        with self.lock:
            ids = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        return [len(i) for i in ids]

    def answer(self, texts: list[str], params: GenerationParameters) -> list[str]:
        """The answers to ``texts``, in one ``generate()`` call: the inference step's prompts,
        padding and stop tokens (``predict.generate_answers`` does the same per batch)."""
        prompts = self._prompts(texts)
        kwargs = params.generate_kwargs()
        return generate(self.model, self.tokenizer, prompts, tokenizer_lock=self.lock,
                        **kwargs).answers  # fmt: skip


def load_predictor(
    storage_uri: str, quantization: str, defaults: GenerationParameters
) -> Predictor:
    """Download the Model artifact (``gs://``, once) or take the local folder; load the base
    model its adapter names, and the adapter."""
    from yoda_inference.model import load_for_answers

    return Predictor(*load_for_answers(storage_uri, quantization, model_cache_dir()), defaults)
