"""Prompt format and answer extraction (pure text; the tokenizer is the tiny Phi-3's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from yoda_inference import build_prompt, extract_response
from yoda_inference.generation import reached_end


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
