"""The data step's transformation (``transform.py``): conversational format, seeded split,
target column, dropped rows and the splits' metadata."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from yoda_data_transformation import split_records, to_conversation, transform


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run(
    raw: Path, tmp_path: Path, **kwargs: Any
) -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]:
    result = transform(str(raw), tmp_path / "train.jsonl", tmp_path / "test.jsonl", **kwargs)
    return result, read_jsonl(tmp_path / "train.jsonl"), read_jsonl(tmp_path / "test.jsonl")


def test_to_conversation_is_the_messages_format() -> None:
    assert to_conversation("The Force is strong.", "Strong, the Force is.") == {
        "messages": [
            {"role": "user", "content": "The Force is strong."},
            {"role": "assistant", "content": "Strong, the Force is."},
        ]
    }


def test_sample_splits_into_messages_jsonl(sample_csv: Path, tmp_path: Path) -> None:
    result, train, test = run(sample_csv, tmp_path)
    assert (len(train), len(test)) == (43, 5)
    assert result.rows_read == 48
    for record in train + test:
        assert [m["role"] for m in record["messages"]] == ["user", "assistant"]
        assert all(m["content"].strip() for m in record["messages"])
    users = [r["messages"][0]["content"] for r in train + test]
    assert len(set(users)) == 48
    assert set(users[:43]).isdisjoint(users[43:])


def test_split_is_seeded(sample_csv: Path, tmp_path: Path) -> None:
    _, train_a, test_a = run(sample_csv, tmp_path / "a", seed=7)
    _, train_b, test_b = run(sample_csv, tmp_path / "b", seed=7)
    _, _, test_c = run(sample_csv, tmp_path / "c", seed=8)
    assert (train_a, test_a) == (train_b, test_b)
    assert test_a != test_c


def test_split_sizes_follow_the_fraction() -> None:
    records = [to_conversation(f"s{i}", f"t{i}") for i in range(20)]
    train, test = split_records(records, 0.25, seed=0)
    assert (len(train), len(test)) == (15, 5)
    # each side keeps the input order
    assert [r["messages"][0]["content"] for r in test] == sorted(
        (r["messages"][0]["content"] for r in test), key=lambda s: int(s[1:])
    )


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("translation_extra", "Beside the kitchen door, the old lantern hung. Yes, hrrrm."),
        ("translation", "Beside the kitchen door, the old lantern hung."),
    ],
)
def test_target_column_choice(sample_csv: Path, tmp_path: Path, target: str, expected: str) -> None:
    _, train, test = run(sample_csv, tmp_path, target_column=target, test_fraction=0.5, seed=1)
    answers = {r["messages"][0]["content"]: r["messages"][1]["content"] for r in train + test}
    assert answers["The old lantern hung beside the kitchen door."] == expected


def test_blank_and_duplicate_rows_are_dropped_and_counted(
    write_csv: Callable[..., Path], make_rows: Callable[[int], str], tmp_path: Path
) -> None:
    text = make_rows(10) + (
        ',"orphan answer","orphan answer"\n'
        "   ,x,y\n"
        'No answer here.,"",""\n'
        'Sentence number 3 is here.,"Again.","Again."\n'
        '"NA",Na it is.,Na it is.\n'
    )
    result, train, test = run(write_csv(text), tmp_path, test_fraction=0.2)
    assert result.rows_read == 15
    assert result.rows_dropped == {"blank_sentence": 2, "blank_target": 1, "duplicate_sentence": 1}
    assert len(train) + len(test) == 11  # 10 rows + the literal sentence "NA"
    meta = result.metadata("train")
    assert meta["rows"] == len(train) and meta["rows_dropped"] == 4
    assert meta["rows_dropped_blank_sentence"] == 2


def test_full_public_dataset(full_dataset: Path, tmp_path: Path) -> None:
    result, train, test = run(full_dataset, tmp_path)
    assert result.rows_read == 720
    assert len(train) + len(test) == 720 - sum(result.rows_dropped.values())
    assert len(test) == round(0.1 * (len(train) + len(test)))
