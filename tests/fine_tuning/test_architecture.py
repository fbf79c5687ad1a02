"""Any causal LM as the base model (issue 18; ``architecture.py``): a Llama-architecture model
with a ChatML template trains, saves and answers through the same code as Phi-3; its LoRA
targets, stop tokens and pad token come from the model and its template, not from Phi-3's names.
(The stop tokens and answers are the inference step's, ``yoda_inference.generation``, checked here
on the same two architectures.)"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from yoda_fine_tuning.architecture import (
    LLAMA_LINEAR_MODULES,
    choose_pad_token,
    linear_module_names,
)
from yoda_fine_tuning.hyperparams import HyperParameters
from yoda_fine_tuning.train import fine_tune
from yoda_inference.generation import (
    build_prompt,
    extract_response,
    generate,
    reached_end,
    stop_token_ids,
)
from yoda_inference.predict import GenerationParameters, predict_test_set
from yoda_step_io import StepError
from yoda_step_io.chat import end_of_turn_token

QUICK = HyperParameters(quantization="auto", max_steps=3, logging_steps=3, learning_rate=5e-2)


def load(folder: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


def test_end_of_turn_and_stop_tokens_come_from_the_template(
    tiny_model_dir: Path, tiny_llama_dir: Path
) -> None:
    model, tokenizer = load(tiny_llama_dir)
    assert end_of_turn_token(tokenizer) == "<|im_end|>"
    assert stop_token_ids(model, tokenizer) == [tokenizer.convert_tokens_to_ids("<|im_end|>")]
    phi3, phi3_tokenizer = load(tiny_model_dir)
    assert end_of_turn_token(phi3_tokenizer) == "<|end|>"
    ids = phi3_tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|end|>", "<|assistant|>"])
    assert stop_token_ids(phi3, phi3_tokenizer) == ids, "Phi-3's stop tokens as before"


def test_chatml_answers_are_the_new_tokens_cut_at_the_end_of_turn(tiny_llama_dir: Path) -> None:
    """The course's Phi-3 extraction would return the whole ChatML prompt: the answer path
    decodes the new tokens alone, and an answer that stops at ``<|im_end|>`` has ended."""
    import torch
    from transformers import LogitsProcessor, LogitsProcessorList

    model, tokenizer = load(tiny_llama_dir)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    prompt = build_prompt(tokenizer, "The Force is strong.")
    assert prompt.endswith("<|im_start|>assistant\n")
    start = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])

    class EndAfterThree(LogitsProcessor):  # the model ends its turn after three tokens
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            if input_ids.shape[1] - start == 3:
                scores[:] = -torch.inf
                scores[:, im_end] = 0.0
            return scores

    ends = generate(model, tokenizer, [prompt], max_new_tokens=8,
                    logits_processor=LogitsProcessorList([EndAfterThree()]),
                    suppress_tokens=[tokenizer.convert_tokens_to_ids("<|im_start|>")])  # fmt: skip
    assert ends.ended == [True] and ends.tokens == 4
    assert ends.texts[0].startswith(prompt) and ends.texts[0].endswith("<|im_end|>")
    assert ends.answers == [ends.texts[0][len(prompt) : -len("<|im_end|>")].strip()]
    assert extract_response(ends.texts[0]) != ends.answers[0], "Phi-3's parsing would fail here"
    never = generate(model, tokenizer, [prompt], max_new_tokens=8, suppress_tokens=[im_end])
    assert never.ended == [False] and never.tokens == 8
    assert "<|im_start|>" not in never.answers[0] and "assistant" not in never.answers[0]


def test_phi3_answers_are_the_courses_extraction(tuned_model_dir: Path, tiny_model_dir: Path,
                                                 sample_test_jsonl: Path) -> None:  # fmt: skip
    """On Phi-3 the new answer path gives exactly what extract_response and reached_end gave."""
    from peft import PeftModel

    from yoda_step_io.conversations import read_conversations

    base, tokenizer = load(tiny_model_dir)
    model = PeftModel.from_pretrained(base, str(tuned_model_dir)).eval()
    users = [c["messages"][-2]["content"] for c in read_conversations(sample_test_jsonl)]
    result = generate(model, tokenizer, [build_prompt(tokenizer, u) for u in users],
                      max_new_tokens=24)  # fmt: skip
    assert result.answers == [extract_response(text) for text in result.texts]
    assert result.ended == [reached_end(text) for text in result.texts]


def test_a_llama_model_trains_and_answers_with_its_own_lora_targets(
    tiny_llama_dir: Path, sample_train_jsonl: Path, sample_test_jsonl: Path, tmp_path: Path
) -> None:
    result = fine_tune(sample_train_jsonl, tmp_path / "model", tmp_path / "metrics",
                       base_model=str(tiny_llama_dir), hp=QUICK)  # fmt: skip
    config = json.loads((tmp_path / "model" / "adapter_config.json").read_text())
    assert set(config["target_modules"]) == set(LLAMA_LINEAR_MODULES)
    hyperparameters = json.loads((tmp_path / "model" / "hyperparameters.json").read_text())
    assert hyperparameters["lora_target_modules"] == ",".join(LLAMA_LINEAR_MODULES)
    assert result.metrics["train_steps"] == 3
    saved = json.loads((tmp_path / "model" / "tokenizer_config.json").read_text())
    assert saved["pad_token"] == "<|endoftext|>", "a spare token, not the end of turn"
    predicted = predict_test_set(tmp_path / "model", sample_test_jsonl, tmp_path / "p.csv",
                                 quantization="auto",
                                 params=GenerationParameters(max_new_tokens=6))  # fmt: skip
    assert predicted.rows == 5
    answers = (tmp_path / "p.csv").read_text()
    assert "<|im_start|>" not in answers and "assistant\n" not in answers


@pytest.mark.parametrize("targets", [("all-linear",), ("q_proj", "v_proj")])
def test_explicit_and_all_linear_targets(
    tiny_llama_dir: Path, sample_train_jsonl: Path, tmp_path: Path, targets: tuple[str, ...]
) -> None:
    hp = dataclasses.replace(QUICK, max_steps=1, lora_target_modules=targets)
    fine_tune(sample_train_jsonl, tmp_path / "model", tmp_path / "metrics",
              base_model=str(tiny_llama_dir), hp=hp)  # fmt: skip
    config = json.loads((tmp_path / "model" / "adapter_config.json").read_text())
    # peft resolves all-linear into the model's linear layers, the head left out
    expected = set(LLAMA_LINEAR_MODULES) if targets == ("all-linear",) else set(targets)
    assert set(config["target_modules"]) == expected


def test_a_wrong_module_name_is_one_line_naming_those_that_exist(
    tiny_llama_dir: Path, sample_train_jsonl: Path, tmp_path: Path
) -> None:
    hp = dataclasses.replace(QUICK, lora_target_modules=("qkv_proj",))  # Phi-3's name on a Llama
    with pytest.raises(StepError) as error:
        fine_tune(sample_train_jsonl, tmp_path / "model", tmp_path / "metrics",
                  base_model=str(tiny_llama_dir), hp=hp)  # fmt: skip
    message = str(error.value)
    assert "\n" not in message and message.startswith("LoRA target module(s) qkv_proj ")
    assert ", ".join(sorted(LLAMA_LINEAR_MODULES)) in message, "the layers that exist, named"
    assert not (tmp_path / "model").exists() and not (tmp_path / "metrics").exists()


def test_a_tokenizer_without_a_chat_template_is_refused(
    tiny_llama_dir: Path, sample_train_jsonl: Path, tmp_path: Path
) -> None:
    import shutil

    base = tmp_path / "no-template"
    shutil.copytree(tiny_llama_dir, base)
    config = json.loads((base / "tokenizer_config.json").read_text())
    del config["chat_template"]
    (base / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(StepError, match=f"^base model {re.escape(str(base))} has no chat template"):
        fine_tune(sample_train_jsonl, tmp_path / "model", tmp_path / "metrics",
                  base_model=str(base), hp=QUICK)  # fmt: skip


class FakeTokenizer:
    """Just what choose_pad_token reads."""

    def __init__(self, pad: str | None, eos: str, unk: str | None, vocab: list[str]) -> None:
        self.pad_token, self.eos_token, self.unk_token = pad, eos, unk
        self._vocab = {token: i for i, token in enumerate(vocab)}

    def get_vocab(self) -> dict[str, int]:
        return self._vocab


ENDOFTEXT, IM_END, EOT = "<|endoftext|>", "<|im_end|>", "<|eot_id|>"


@pytest.mark.parametrize(
    ("tokenizer", "end_of_turn", "expected"),
    [
        # Phi-3: pad is the end of text (= eos): the unknown token, as in the article
        (FakeTokenizer(ENDOFTEXT, ENDOFTEXT, "<unk>", ["<unk>"]), "<|end|>", ("<unk>", False)),
        # SmolLM2 as converted: its own pad token, which ends nothing
        (FakeTokenizer(ENDOFTEXT, IM_END, ENDOFTEXT, []), IM_END, (ENDOFTEXT, False)),
        # pad = end of turn (Qwen-style): never; a spare token instead
        (FakeTokenizer(IM_END, IM_END, None, [ENDOFTEXT]), IM_END, (ENDOFTEXT, False)),
        # Llama 3: no pad, no unk; its reserved padding token
        (FakeTokenizer(None, EOT, None, ["<|finetune_right_pad_id|>"]), EOT,
         ("<|finetune_right_pad_id|>", False)),
        # nothing spare: a new pad token
        (FakeTokenizer(None, "</s>", None, []), "</s>", ("<|pad|>", True)),
    ],
)  # fmt: skip
def test_the_pad_token_is_never_the_end_of_a_turn(
    tokenizer: FakeTokenizer, end_of_turn: str, expected: tuple[str, bool]
) -> None:
    assert choose_pad_token(tokenizer, end_of_turn) == expected


def test_linear_module_names_leave_the_head_out(tiny_llama_dir: Path) -> None:
    model, _ = load(tiny_llama_dir)
    assert "lm_head" not in linear_module_names(model)
