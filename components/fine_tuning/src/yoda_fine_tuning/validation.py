"""The answer loss on the validation rows: the one measure recipes are compared by.

The Trainer's ``eval_loss`` changes meaning with the recipe: with packing it covers every token of
64-token chunks (the system prompt and the user's sentence included), with the loss on answers
alone it covers the answers. This measure is the same whatever the recipe: the mean
cross-entropy of each validation answer's tokens (its end of turn included), given its prompt,
as the chat template renders them. A sweep's champion is the recipe with the lowest.
"""

from __future__ import annotations

from typing import Any

from yoda_step_io.chat import render_chat

BATCH = 16


def answer_token_ids(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[list[int], int]:
    """A conversation's token ids and where its answer starts (the prompt's length)."""
    prompt = render_chat(tokenizer, messages[:-1], add_generation_prompt=True)
    whole = render_chat(tokenizer, messages)
    ids = tokenizer(whole, add_special_tokens=False)["input_ids"]
    start = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    return list(ids), start


def mean_tokens(tokenizer: Any, conversations: list[dict[str, Any]]) -> float:
    """The mean length in tokens of ``conversations`` as the chat template renders them."""
    lengths = [len(answer_token_ids(tokenizer, row["messages"])[0]) for row in conversations]
    return sum(lengths) / max(len(lengths), 1)


def answer_loss(model: Any, tokenizer: Any, conversations: list[dict[str, Any]]) -> float:
    """Mean cross-entropy per answer token over ``conversations`` (each ``{"messages": …}``,
    ending with the assistant's answer), the model in eval mode, no gradients."""
    import torch

    rows = [answer_token_ids(tokenizer, row["messages"]) for row in conversations]
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for first in range(0, len(rows), BATCH):
                batch = rows[first : first + BATCH]
                width = max(len(ids) for ids, _ in batch)
                ids = torch.full((len(batch), width), tokenizer.pad_token_id)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                labels = torch.full((len(batch), width), -100)
                for row, (tokens, start) in enumerate(batch):
                    ids[row, : len(tokens)] = torch.tensor(tokens)
                    mask[row, : len(tokens)] = 1
                    labels[row, start : len(tokens)] = torch.tensor(tokens[start:])
                logits = model(input_ids=ids.to(model.device),
                               attention_mask=mask.to(model.device)).logits.float()  # fmt: skip
                targets = labels[:, 1:].to(logits.device)
                losses = torch.nn.functional.cross_entropy(
                    logits[:, :-1].transpose(1, 2), targets, ignore_index=-100, reduction="sum"
                )
                total += float(losses)
                count += int((targets != -100).sum())
    finally:
        model.train(was_training)
    return total / max(count, 1)
