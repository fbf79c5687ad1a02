"""The train/test Dataset contract: JSON Lines of ``{"messages": [{"role", "content"}, …]}``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from yoda_step_io.cli import StepError

Conversation = dict[str, list[dict[str, str]]]
ROLES = ("system", "user", "assistant")


def _check_record(record: Any, where: str) -> Conversation:
    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list) or not messages:
        raise StepError(
            f'{where}: expected {{"messages": [{{"role": …, "content": …}}, …]}} '
            "(the data step's conversational format)"
        )
    for message in messages:
        if (
            not isinstance(message, dict)
            or message.get("role") not in ROLES
            or not isinstance(message.get("content"), str)
        ):
            raise StepError(
                f"{where}: every message needs a role ({', '.join(ROLES)}) and a string content"
            )
    roles = [message["role"] for message in messages]
    if "user" not in roles or "assistant" not in roles:
        raise StepError(f"{where}: a conversation needs a user and an assistant message")
    return record  # type: ignore[no-any-return]


def read_conversations(path: Path) -> list[Conversation]:
    """Read and check a conversational JSON Lines file (blank lines are skipped).

    Raises:
        StepError: missing or empty file, invalid JSON, or a line not in the messages format.
    """
    if not path.is_file():
        raise StepError(f"dataset {path} does not exist (or is not a file)")
    conversations: list[Conversation] = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise StepError(
            f"dataset {path} is not UTF-8 text (byte {error.start}): expected the data step's "
            "JSON Lines"
        ) from error
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise StepError(f"{where}: not valid JSON ({error.msg})") from error
        conversations.append(_check_record(record, where))
    if not conversations:
        raise StepError(f"dataset {path} is empty: no conversations to use")
    return conversations
