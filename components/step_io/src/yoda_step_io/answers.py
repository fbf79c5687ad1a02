"""Degenerate answers, counted where they are made (inference) and where they are scored.

A model that learnt nothing useful often answers with nothing at all (it ends its turn at once:
a chat template or end-of-turn masking gone wrong) or with one token over and over. Scores of 0
hide that; these counts say it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

#: Above this share of degenerate answers, a step warns in its log.
WARN_SHARE = 0.05
_KINDS = {"empty": "empty", "repeated": "one word repeated", "cut": "cut at max_new_tokens"}


def is_empty(answer: str) -> bool:
    return not answer.strip()


def is_repeated_token(answer: str) -> bool:
    """Three or more words, all the same (``cat cat cat``)."""
    words = answer.split()
    return len(words) >= 3 and len(set(words)) == 1


def degenerate_counts(answers: Sequence[str], prefix: str = "") -> dict[str, int]:
    """``{prefix}empty_answers`` and ``{prefix}repeated_answers``."""
    return {
        f"{prefix}empty_answers": sum(is_empty(a) for a in answers),
        f"{prefix}repeated_answers": sum(is_repeated_token(a) for a in answers),
    }


def warn_if_degenerate(
    logger: logging.Logger, who: str, counts: dict[str, int], total: int
) -> None:
    """One warning per kind of degenerate answer above :data:`WARN_SHARE` of ``total``."""
    for name, count in counts.items():
        if total and count / total > WARN_SHARE:
            kind = _KINDS.get(name.removeprefix("base_").removesuffix("_answers"), name)
            logger.warning(
                "%s: %d of %d answers (%.0f%%) are %s: check the chat template, the end-of-turn "
                "tokens and the training loss",
                who, count, total, 100 * count / total, kind,
            )  # fmt: skip
