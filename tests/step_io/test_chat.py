"""A model folder's chat template is its author's code: it is rendered under a time and a size
limit, and a template that hangs, floods or raises is one line naming it, in every step."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from yoda_fine_tuning.cli import main as fine_tuning_main
from yoda_step_io import chat
from yoda_step_io.chat import TemplateError, render_chat

NESTED_LOOPS = (
    "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
    "{{ messages[0]['content'] }}"
)
FLOOD = "{% for a in range(100000) %}{{ messages[0]['content'] }}{% endfor %}"
RAISES = "{{ raise_exception('no system messages here') }}"
USER = [{"role": "user", "content": "The Force is strong."}]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat, "RENDER_SECONDS", 0.5)


@pytest.mark.usefixtures("quick")
@pytest.mark.parametrize(
    ("template", "said"),
    [
        (NESTED_LOOPS, "over 0.5 s"),
        (FLOOD, "2000000 characters"),
        (RAISES, "TemplateError: no system messages here"),  # the template's own words
    ],
)
def test_a_bad_template_is_one_line_naming_it(tokenizer: Any, template: str, said: str) -> None:
    tokenizer.chat_template = template
    with pytest.raises(TemplateError) as error:
        render_chat(tokenizer, USER)
    message = str(error.value)
    assert message.startswith("the chat template of ") and tokenizer.name_or_path in message
    assert said in message and "\n" not in message


def test_a_good_template_renders_as_the_tokenizer_does(
    tokenizer: Any, tiny_model_dir: Path
) -> None:
    from transformers import AutoTokenizer

    fresh = AutoTokenizer.from_pretrained(tiny_model_dir)
    expected = fresh.apply_chat_template(USER, tokenize=False, add_generation_prompt=True)
    assert render_chat(fresh, USER, add_generation_prompt=True) == expected


@pytest.mark.usefixtures("quick")
def test_fine_tuning_with_a_hanging_template_stops_with_one_line(
    tiny_model_dir: Path, sample_train_jsonl: Path, tmp_path: Path,
    one_error_line: Callable[..., str],
) -> None:  # fmt: skip
    model = tmp_path / "base"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "tokenizer_config.json").read_text())
    (model / "tokenizer_config.json").write_text(
        json.dumps({**config, "chat_template": NESTED_LOOPS})
    )
    line = one_error_line(fine_tuning_main, "--train-dataset", str(sample_train_jsonl),
                          "--base-model", str(model),
                          "--model-output", str(tmp_path / "out" / "model"),
                          "--metrics-output", str(tmp_path / "out" / "metrics"),
                          "--quantization", "auto", "--max-steps", "1")  # fmt: skip
    assert str(model) in line and "over 0.5 s" in line
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
