"""Raw Yoda sentences -> conversational train/test split (pure functions plus one orchestrator).

Each output line is ``{"messages": [{"role": "user", "content": SENTENCE},
{"role": "assistant", "content": YODA_TRANSLATION}]}``: the conversational format that trl's
``SFTTrainer`` and Phi-3's chat template expect.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yoda_data_transformation.sources import read_bytes
from yoda_step_io import BadValueError, StepError, local_inputs, outputs_in_place, timed
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


def parse_raw_csv(data: bytes, source: str, target_column: str) -> list[dict[str, str]]:
    """Decode and parse the raw CSV into rows of text (``"NA"`` is a word, not a gap).

    Blank lines are skipped; a row with fewer cells than the header has empty ones.

    Raises:
        StepError: the bytes are empty, not UTF-8, not CSV (bad quoting, more cells than the
            header), or lack a required column.
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
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        records = [record for record in reader if record]
    except csv.Error as error:
        raise StepError(
            f"raw data {source} is not a valid CSV: {error} (line {reader.line_num})"
        ) from error
    header, body = records[0], records[1:]
    missing = [column for column in (SENTENCE_COLUMN, target_column) if column not in header]
    if missing:
        raise StepError(
            f"raw data {source} lacks column(s) {', '.join(missing)}; found: {', '.join(header)}"
        )
    for number, record in enumerate(body, start=2):
        if len(record) > len(header):
            raise StepError(
                f"raw data {source} is not a valid CSV: row {number} has {len(record)} cells, "
                f"the header {len(header)}"
            )
    return [dict(zip(header, record + [""] * (len(header) - len(record)), strict=True))
            for record in body]  # fmt: skip


def clean_rows(
    rows: Sequence[dict[str, str]], target_column: str
) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """Strip text; drop rows with a blank sentence or answer, then repeated sentences.

    Repeated sentences are dropped (first kept) so that one sentence cannot land in both splits.

    Returns:
        The kept ``(sentence, answer)`` pairs in their original order, and the dropped count per
        reason.
    """
    dropped = {"blank_sentence": 0, "blank_target": 0, "duplicate_sentence": 0}
    kept: list[tuple[str, str]] = []
    seen: set[str] = set()
    for row in rows:
        sentence, answer = row[SENTENCE_COLUMN].strip(), row[target_column].strip()
        if not sentence:
            dropped["blank_sentence"] += 1
        elif not answer:
            dropped["blank_target"] += 1
        elif sentence in seen:
            dropped["duplicate_sentence"] += 1
        else:
            seen.add(sentence)
            kept.append((sentence, answer))
    for reason, count in dropped.items():
        if count:
            logger.warning("dropped %d row(s): %s", count, reason.replace("_", " "))
    return kept, dropped


def to_conversation(sentence: str, answer: str) -> Conversation:
    """One training example in the conversational (``messages``) format."""
    return {
        "messages": [
            {"role": "user", "content": sentence},
            {"role": "assistant", "content": answer},
        ]
    }


def build_conversations(pairs: Sequence[tuple[str, str]]) -> list[Conversation]:
    """Conversations for every ``(sentence, answer)`` pair, in order."""
    return [to_conversation(sentence, answer) for sentence, answer in pairs]


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
        fits = (
            f"with {n_rows} rows, a test_fraction from {0.5 / n_rows:.4g} to below "
            f"{(n_rows - 0.5) / n_rows:.4g}" if n_rows >= 2 else "give at least 2 rows"
        )  # fmt: skip
        raise BadValueError(
            "--test-fraction",
            test_fraction,
            f"of {n_rows} usable row(s) it leaves {n_test} test and {n_rows - n_test} train "
            f"rows: each split needs one or more ({fits})",
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
    """Read, validate, convert and split the raw data; write both splits or neither. The values
    are the CLI's, checked there."""
    with timed("reading raw data"):
        rows = parse_raw_csv(read_bytes(raw_data_uri), raw_data_uri, target_column)
    pairs, dropped = clean_rows(rows, target_column)
    train, test = split_records(build_conversations(pairs), test_fraction, seed)
    with outputs_in_place(train_path, test_path, inputs=local_inputs(raw_data_uri)):
        write_jsonl(train, train_path)
        write_jsonl(test, test_path)
    result = TransformResult(
        source=raw_data_uri,
        target_column=target_column,
        test_fraction=test_fraction,
        seed=seed,
        rows_read=len(rows),
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
        len(rows),
        sum(dropped.values()),
    )
    return result
