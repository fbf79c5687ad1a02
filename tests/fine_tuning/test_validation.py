"""The answer loss on the validation rows (``validation.py``): the answers' tokens alone."""

from __future__ import annotations

from pathlib import Path

from yoda_fine_tuning.validation import answer_token_ids


def test_the_answer_loss_is_the_answers_alone(tiny_model_dir: Path) -> None:
    """The validation measure scores the answer's tokens (and its end of turn), not the
    prompt's: a longer question changes nothing in what is counted."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    answer = {"role": "assistant", "content": "Strong, the Force is."}
    short = answer_token_ids(tokenizer, [{"role": "user", "content": "Hi."}, answer])
    long = answer_token_ids(tokenizer, [{"role": "user", "content": "Hi there, how are you?"},
                                        answer])  # fmt: skip
    assert short[0][short[1] :] == long[0][long[1] :]
    assert tokenizer.decode(short[0][short[1] :]).startswith("Strong, the Force is.")
