"""The chat template, rendered under a time and a size limit (a model folder's template is code
its author wrote: a loop can hang a step, or fill its memory), and the facts that training and
answering read off it."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from yoda_step_io.cli import StepError

#: The longest one rendering may take, and the most characters it may give beyond its messages'.
RENDER_SECONDS = 10.0
RENDER_EXTRA_CHARACTERS = 16_384
#: A stand-in answer whose end in the rendered chat template shows the end-of-turn token.
_PROBE = "Yoda4242"


class TemplateError(StepError):
    """A chat template that raised, ran too long or rendered too much."""


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """``TimeoutError`` after ``seconds`` of Python code (the template is Python once compiled);
    a no-op outside the main thread, where no signal can reach."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(*_: object) -> None:
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def render_chat(
    tokenizer: Any, messages: Sequence[dict[str, str]], *, add_generation_prompt: bool = False
) -> str:
    """``messages`` through the tokenizer's chat template, within :data:`RENDER_SECONDS` and
    :data:`RENDER_EXTRA_CHARACTERS` more characters than the messages hold.

    Raises:
        TemplateError: the template raised, or broke a limit; one line naming the template's model.
    """
    name = getattr(tokenizer, "name_or_path", "") or "this tokenizer"
    try:
        with _time_limit(RENDER_SECONDS):
            text = str(tokenizer.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=add_generation_prompt
            ))  # fmt: skip
    except TimeoutError:
        raise TemplateError(
            f"the chat template of {name} ran over {RENDER_SECONDS:g} s for one conversation: "
            "fix its loops, or give the model another chat_template"
        ) from None
    except Exception as error:  # the template is the model author's code: any error is theirs
        first = (str(error).strip().splitlines() or [""])[0][:200]
        raise TemplateError(
            f"the chat template of {name} fails ({type(error).__name__}: {first}): fix it, or "
            "give the model another chat_template"
        ) from None
    given = sum(len(message.get("content", "")) for message in messages)
    if len(text) > given + RENDER_EXTRA_CHARACTERS:
        raise TemplateError(
            f"the chat template of {name} renders {len(text)} characters for {given} characters "
            f"of messages: over the limit of {RENDER_EXTRA_CHARACTERS} more"
        )
    return text


def assistant_prefix(tokenizer: Any) -> str:
    """What the chat template puts before an assistant's answer (``<|assistant|>\n`` for Phi-3,
    ``<|im_start|>assistant\n`` for ChatML): the generation prompt, read off the template."""
    user = [{"role": "user", "content": "x"}]
    plain = render_chat(tokenizer, user)
    prompted = render_chat(tokenizer, user, add_generation_prompt=True)
    return prompted.removeprefix(plain)


def end_of_turn_token(tokenizer: Any) -> str | None:
    """The special token the chat template closes an assistant turn with (``<|end|>`` for
    Phi-3, ``<|im_end|>`` for ChatML, ``<|eot_id|>`` for Llama 3), read off the template itself;
    ``None`` if what follows an answer is no special token."""
    conversation = [{"role": "user", "content": "x"}, {"role": "assistant", "content": _PROBE}]
    rendered = render_chat(tokenizer, conversation)
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
