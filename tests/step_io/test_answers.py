"""Degenerate answers (yoda_step_io.answers): empty ones, and one word repeated."""

from __future__ import annotations

from yoda_step_io.answers import degenerate_counts, is_repeated_token


def test_degenerate_answers() -> None:
    assert is_repeated_token("cat cat cat") and not is_repeated_token("cat cat")
    assert not is_repeated_token("and on and on and on")
    answers = ["", "  ", "ok", "no no no no", "Strong, it is."]
    assert degenerate_counts(answers, "base_") == {"base_empty_answers": 2,
                                                   "base_repeated_answers": 1}  # fmt: skip
