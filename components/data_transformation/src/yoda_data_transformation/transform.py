"""Raw Yoda sentences -> conversational train/test split (pure functions plus one orchestrator).

Each output line is ``{"messages": [{"role": "user", "content": SENTENCE},
{"role": "assistant", "content": YODA_TRANSLATION}]}``: the conversational format that trl's
``SFTTrainer`` and Phi-3's chat template expect.
"""

from __future__ import annotations

import io
import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from yoda_data_transformation.sources import read_bytes
from yoda_step_io import StepError, outputs_in_place, timed
from yoda_step_io.conversations import Conversation

logger = logging.getLogger(__name__)

SENTENCE_COLUMN = "sentence"
#: Columns that may serve as the assistant's answer. ``translation_extra`` adds Yoda's
#: interjections ("Yes, hrrrm."), as in the article; ``translation`` is the plain reordering.
TARGET_COLUMNS = ("translation_extra", "translation")


@dataclass(frozen=True)
class TransformResult:
    """What :func:`transform` read, dropped and wrote."""

    source: str
    target_column: str
    test_fraction: float
    seed: int
    rows_read: int
    rows_dropped: dict[str, int] = field(default_factory=dict)
    train_rows: int = 0
    test_rows: int = 0

    def metadata(self, split: str) -> dict[str, Any]:
        """Artifact metadata for the ``train`` or ``test`` output."""
        return {
            "split": split,
            "rows": self.train_rows if split == "train" else self.test_rows,
            "source": self.source,
            "target_column": self.target_column,
            "test_fraction": self.test_fraction,
            "seed": self.seed,
            "rows_read": self.rows_read,
            "rows_dropped": sum(self.rows_dropped.values()),
            **{f"rows_dropped_{reason}": count for reason, count in self.rows_dropped.items()},
            "format": "jsonl-messages",
        }


def validate_parameters(target_column: str, test_fraction: float) -> None:
    """Refuse an unknown target column or a test fraction outside (0, 1)."""
    if target_column not in TARGET_COLUMNS:
        raise StepError(
            f"unknown target column {target_column!r}: choose one of {', '.join(TARGET_COLUMNS)}"
        )
    if not 0.0 < test_fraction < 1.0:
        raise StepError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction}")


def parse_raw_csv(data: bytes, source: str, target_column: str) -> pd.DataFrame:
    """Decode and parse the raw CSV; every cell stays a string (``"NA"`` is a word, not a gap).

    Raises:
        StepError: the bytes are empty, not UTF-8, not CSV, or lack a required column.
    """
    if not data.strip():
        raise StepError(f"raw data {source} is empty: expected a CSV with a header row")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise StepError(
            f"raw data {source} is not UTF-8 (invalid byte at offset {error.start}): "
            "re-encode it as UTF-8"
        ) from error
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise StepError(f"raw data {source} is not a valid CSV: {error}") from error
    required = [SENTENCE_COLUMN, target_column]
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise StepError(
            f"raw data {source} lacks column(s) {', '.join(missing)}; "
            f"found: {', '.join(map(str, frame.columns))}"
        )
    return frame


def clean_rows(frame: pd.DataFrame, target_column: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """Strip text; drop rows with a blank sentence or answer, then repeated sentences.

    Repeated sentences are dropped (first kept) so that one sentence cannot land in both splits.

    Returns:
        The kept rows (sentence and target only, original order) and the dropped count per reason.
    """
    rows = frame[[SENTENCE_COLUMN, target_column]].apply(lambda column: column.str.strip())
    blank_sentence = rows[SENTENCE_COLUMN] == ""
    blank_target = (rows[target_column] == "") & ~blank_sentence
    kept = rows[~blank_sentence & ~blank_target]
    duplicate = kept[SENTENCE_COLUMN].duplicated(keep="first")
    dropped = {
        "blank_sentence": int(blank_sentence.sum()),
        "blank_target": int(blank_target.sum()),
        "duplicate_sentence": int(duplicate.sum()),
    }
    for reason, count in dropped.items():
        if count:
            logger.warning("dropped %d row(s): %s", count, reason.replace("_", " "))
    return kept[~duplicate].reset_index(drop=True), dropped


def to_conversation(sentence: str, answer: str) -> Conversation:
    """One training example in the conversational (``messages``) format."""
    return {
        "messages": [
            {"role": "user", "content": sentence},
            {"role": "assistant", "content": answer},
        ]
    }


def build_conversations(rows: pd.DataFrame, target_column: str) -> list[Conversation]:
    """Conversations for every row, in order."""
    return [
        to_conversation(sentence, answer)
        for sentence, answer in zip(rows[SENTENCE_COLUMN], rows[target_column], strict=True)
    ]


def n_test_rows(n_rows: int, test_fraction: float) -> int:
    """Rows in the test split: ``n_rows * test_fraction`` rounded half up."""
    return int(n_rows * test_fraction + 0.5)


def split_records(
    records: Sequence[Conversation], test_fraction: float, seed: int
) -> tuple[list[Conversation], list[Conversation]]:
    """Seeded shuffle split; each side keeps the input order. Same seed, same split.

    Raises:
        StepError: either side would be empty.
    """
    n_rows = len(records)
    n_test = n_test_rows(n_rows, test_fraction)
    if n_test < 1 or n_test >= n_rows:
        needed = next(n for n in range(2, 10_000) if 1 <= n_test_rows(n, test_fraction) < n)
        raise StepError(
            f"too few rows to split: {n_rows} usable row(s) with test_fraction {test_fraction} "
            f"leave an empty split; need at least {needed} rows"
        )
    order = list(range(n_rows))
    random.Random(seed).shuffle(order)
    test_indices = set(order[:n_test])
    train = [record for i, record in enumerate(records) if i not in test_indices]
    test = [record for i, record in enumerate(records) if i in test_indices]
    return train, test


def write_jsonl(records: Sequence[Conversation], path: Path) -> None:
    """One JSON object per line, UTF-8, non-ASCII kept as is."""
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def transform(
    raw_data_uri: str,
    train_path: Path,
    test_path: Path,
    *,
    target_column: str = "translation_extra",
    test_fraction: float = 0.1,
    seed: int = 42,
) -> TransformResult:
    """Read, validate, convert and split the raw data; write both splits or neither."""
    validate_parameters(target_column, test_fraction)
    with timed("reading raw data"):
        frame = parse_raw_csv(read_bytes(raw_data_uri), raw_data_uri, target_column)
    rows, dropped = clean_rows(frame, target_column)
    train, test = split_records(build_conversations(rows, target_column), test_fraction, seed)
    with outputs_in_place(train_path, test_path):
        write_jsonl(train, train_path)
        write_jsonl(test, test_path)
    result = TransformResult(
        source=raw_data_uri,
        target_column=target_column,
        test_fraction=test_fraction,
        seed=seed,
        rows_read=len(frame),
        rows_dropped=dropped,
        train_rows=len(train),
        test_rows=len(test),
    )
    logger.info(
        "wrote %d train rows to %s and %d test rows to %s (%d read, %d dropped)",
        len(train),
        train_path,
        len(test),
        test_path,
        len(frame),
        sum(dropped.values()),
    )
    return result
