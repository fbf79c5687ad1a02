"""Prompting, generation and answer extraction (the course's functions), batched.

Answers come from the decoded new tokens alone, cut at the model's stop tokens (the generation
config's eos ids and the chat template's end-of-turn token), for any causal LM with a chat
template. The course's :func:`extract_response` and :func:`reached_end` read Phi-3's text
format; they stay for the course's API and are not on the answer path."""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from yoda_step_io.chat import end_of_turn_token, render_chat

#: Tokens that end the assistant's turn: anything after them is not the answer.
_TURN_END = re.compile(r"<\|end\|>|<\|endoftext\|>|<\|user\|>|<\|assistant\|>|<\|system\|>|</s>")
#: Other special tokens that may leak into decoded text; removed where they stand.
_OTHER_SPECIAL = re.compile(r"<\|[A-Za-z0-9_]+\|>|<s>|<unk>|<pad>")
_ASSISTANT = "<|assistant|>"


def build_prompt(tokenizer: Any, sentence: str) -> str:
    """The chat template applied to one user turn, with the generation prompt.

    For Phi-3 this is exactly ``<|user|>\\n{sentence}<|end|>\\n<|assistant|>\\n``.
    """
    return render_chat(
        tokenizer, [{"role": "user", "content": sentence}], add_generation_prompt=True
    )


def extract_response(model_output: str) -> str:
    """The assistant's answer alone: no prompt, no special tokens, no later turns.

    Takes the text after the first ``<|assistant|>`` (or the whole text if there is none), stops
    at the first token that ends a turn (``<|end|>``, ``<|endoftext|>``, a new role, ``</s>``; a
    missing end token is fine), drops any other special token and strips whitespace.
    """
    _, marker, after = model_output.partition(_ASSISTANT)
    answer = after if marker else model_output
    answer = _TURN_END.split(answer, maxsplit=1)[0]
    return _OTHER_SPECIAL.sub("", answer).strip()


def reached_end(model_output: str) -> bool:
    """Did the answer end its turn (a turn-ending token after the prompt), rather than run into
    ``max_new_tokens``?"""
    _, marker, after = model_output.partition(_ASSISTANT)
    return _TURN_END.search(after if marker else model_output) is not None


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Where an answer ends: the generation config's eos ids, the template's end-of-turn token
    and the tokenizer's eos token."""
    configured = getattr(model.generation_config, "eos_token_id", None)
    candidates = configured if isinstance(configured, list) else [configured]
    ids: list[int] = [int(i) for i in candidates if i is not None]
    for token in (end_of_turn_token(tokenizer), tokenizer.eos_token):
        token_id = tokenizer.convert_tokens_to_ids(token) if token else None
        if token_id is not None and token_id != tokenizer.unk_token_id and token_id not in ids:
            ids.append(token_id)
    return ids


@dataclass(frozen=True)
class Generation:
    """What one batch generated, in prompt order."""

    #: the prompt and the generated text up to and including the stop token, special tokens kept
    #: (the course's format, which :func:`extract_response` reads)
    texts: list[str]
    #: the answers: the new tokens before the first stop token, decoded without special tokens
    answers: list[str]
    #: whether each answer ended at a stop token (rather than at ``max_new_tokens``)
    ended: list[bool]
    #: tokens generated in all (stop tokens included)
    tokens: int


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    tokenizer_lock: AbstractContextManager[Any] | None = None,
    **kwargs: Any,
) -> Generation:
    """Generate for several prompts at once (left padding + attention mask); each answer comes
    from its own new tokens alone, cut at the model's stop tokens (:func:`stop_token_ids`).

    ``tokenizer_lock`` is held while the tokenizer encodes and decodes, not while the model
    generates: a fast tokenizer used by two threads at once, one of them changing its padding,
    fails with "Already borrowed" (``yoda-serve`` counts prompt tokens while a batch generates).
    """
    import torch

    with tokenizer_lock or nullcontext():
        stop_ids = stop_token_ids(model, tokenizer)
        if tokenizer.pad_token is None:  # left padding is masked out: any token will do
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"  # decoder-only: new tokens must follow the prompt directly
        inputs = tokenizer(
            list(prompts),
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,  # the chat template already is the whole format
            return_token_type_ids=False,
        )
        pad_token_id = tokenizer.pad_token_id
    inputs = inputs.to(model.device)
    settings = {"max_new_tokens": 64, "do_sample": False, **kwargs}
    if not settings["do_sample"]:
        settings.update(temperature=None, top_p=None, top_k=None)  # greedy: no sampling knobs
    with torch.inference_mode():
        output = model.generate(
            **inputs,
            eos_token_id=stop_ids,
            pad_token_id=pad_token_id,
            # one process generates alone: saying so spares generate() its FSDP check, which
            # imports torch.distributed.fsdp and the compiler stack (3 s on a 2-core machine)
            synced_gpus=False,
            **settings,
        )
    new_tokens = output[:, inputs["input_ids"].shape[1] :].tolist()
    with tokenizer_lock or nullcontext():
        return _decoded(tokenizer, prompts, new_tokens, stop_ids)


def _decoded(
    tokenizer: Any, prompts: Sequence[str], new_tokens: list[list[int]], stop_ids: list[int]
) -> Generation:
    """Each prompt's new tokens, cut at the first stop token and decoded."""
    texts, answers, ended, generated = [], [], [], 0
    for prompt, tokens in zip(prompts, new_tokens, strict=True):
        stop = next((i for i, t in enumerate(tokens) if t in stop_ids), None)
        end = len(tokens) if stop is None else stop + 1
        generated += end
        texts.append(prompt + tokenizer.decode(tokens[:end], skip_special_tokens=False))
        answer = tokenizer.decode(tokens[: end if stop is None else stop], skip_special_tokens=True)
        answers.append(answer.strip())
        ended.append(stop is not None)
    return Generation(texts, answers, ended, generated)


def generate_batch(
    model: Any, tokenizer: Any, prompts: Sequence[str], **kwargs: Any
) -> tuple[list[str], int]:
    """The course's batched generation: each output is the prompt followed by the generated
    text up to and including the first stop token, special tokens kept, so
    :func:`extract_response` can find the answer (:func:`generate` gives the answers directly).

    Returns:
        The outputs, in prompt order, and the number of tokens generated in all.
    """
    result = generate(model, tokenizer, prompts, **kwargs)
    return result.texts, result.tokens


def generate_response(model: Any, tokenizer: Any, prompt: str, **kwargs: Any) -> str:
    """Generate for one prompt (greedy by default); the prompt plus the generated text."""
    texts, _ = generate_batch(model, tokenizer, [prompt], **kwargs)
    return texts[0]
