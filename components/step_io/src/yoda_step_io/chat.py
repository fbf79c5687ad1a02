"""Chat-template facts that training and answering share, read off the template itself."""

from __future__ import annotations

from typing import Any

#: A stand-in answer whose end in the rendered chat template shows the end-of-turn token.
_PROBE = "Yoda4242"


def end_of_turn_token(tokenizer: Any) -> str | None:
    """The special token the chat template closes an assistant turn with (``<|end|>`` for
    Phi-3, ``<|im_end|>`` for ChatML, ``<|eot_id|>`` for Llama 3), read off the template itself;
    ``None`` if what follows an answer is no special token."""
    conversation = [{"role": "user", "content": "x"}, {"role": "assistant", "content": _PROBE}]
    rendered = str(tokenizer.apply_chat_template(conversation, tokenize=False))
    after = rendered.partition(_PROBE)[2]
    ids = tokenizer(after, add_special_tokens=False)["input_ids"] if after else []
    if not ids or ids[0] not in special_token_ids(tokenizer):
        return None
    return str(tokenizer.convert_ids_to_tokens(ids[0]))


def special_token_ids(tokenizer: Any) -> set[int]:
    """The named special tokens and every added token marked special (Phi-3's ``<|end|>`` is
    one: its tokenizer lists it only among the added tokens)."""
    added = getattr(tokenizer, "added_tokens_decoder", {})
    return set(tokenizer.all_special_ids) | {i for i, token in added.items() if token.special}
