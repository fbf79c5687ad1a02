"""Generation (yoda_inference.generation): the prompt format and answer extraction (pure text;
the tokenizer is the tiny Phi-3's), and batched generation equal to one prompt at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from yoda_inference import build_prompt, extract_response, generate_batch, generate_response
from yoda_inference.generation import reached_end

SENTENCES = [
    "The Force is strong in you!",
    "Hi.",
    "We walked along the quiet river at dawn, and the wind was cold on our faces.",
    "Patience you must have.",
]


def test_prompt_is_exactly_phi3s(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert build_prompt(tokenizer, "The Force is strong in you!") == (
        "<|user|>\nThe Force is strong in you!<|end|>\n<|assistant|>\n"
    )


PROMPT = "<|user|>\nThe Force is strong in you!<|end|>\n<|assistant|>\n"


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (PROMPT + "Strong in you, the Force is. Yes, hrrmmm.<|end|>",
         "Strong in you, the Force is. Yes, hrrmmm."),
        (PROMPT + "Strong in you, the Force is.", "Strong in you, the Force is."),
        (PROMPT + "<|end|>", ""),
        (PROMPT, ""),
        (PROMPT + "   \n<|endoftext|>", ""),
        (PROMPT + "Strong<unk> in you,<s> the Force is.<|end|>", "Strong in you, the Force is."),
        (PROMPT + "Strong, it is.<|end|>\n<|user|>\nAnd me?<|end|>\n<|assistant|>\nYou too.<|end|>",
         "Strong, it is."),
        (PROMPT + "Strong, it is.\n<|user|>\nAnd me?", "Strong, it is."),
        (PROMPT + "Strong, it is.<|endoftext|><|endoftext|>", "Strong, it is."),
        ("Strong in you, the Force is.<|end|>", "Strong in you, the Force is."),
        (PROMPT + "  Grüße, ünïcode is. 🙂 <|end|>", "Grüße, ünïcode is. 🙂"),
    ],
    ids=["normal", "no-end-token", "empty", "prompt-only", "blank", "special-in-middle",
         "extra-turns", "new-turn-without-end", "repeated-eos", "answer-only", "unicode"],
)  # fmt: skip
def test_extract_response(output: str, expected: str) -> None:
    assert extract_response(output) == expected


@pytest.mark.parametrize(
    ("output", "ended"),
    [
        ("<|user|>\nHi<|end|>\n<|assistant|>\nHello.<|end|>", True),
        ("<|user|>\nHi<|end|>\n<|assistant|>\n<|end|>", True),  # an empty answer still ended
        ("<|user|>\nHi<|end|>\n<|assistant|>\nHello hello hello", False),  # cut
        ("<|user|>\nHi<|end|>\n<|assistant|>\n", False),  # nothing generated
        ("Hello.<|endoftext|>", True),
    ],
)
def test_reached_end_tells_a_finished_answer_from_a_cut_one(output: str, ended: bool) -> None:
    assert reached_end(output) is ended


def test_batched_generation_equals_one_at_a_time(loaded: tuple[Any, Any]) -> None:
    model, tokenizer = loaded
    prompts = [build_prompt(tokenizer, s) for s in SENTENCES]
    batched, tokens = generate_batch(model, tokenizer, prompts, max_new_tokens=12)
    single = [generate_response(model, tokenizer, p, max_new_tokens=12) for p in prompts]
    assert batched == single
    assert all(out.startswith(prompt) for out, prompt in zip(batched, prompts, strict=True))
    assert 0 < tokens <= 12 * len(prompts)
