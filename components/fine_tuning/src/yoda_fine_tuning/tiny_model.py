"""A tiny Phi-3-architecture model, generated locally: the offline stand-in for Phi-3-mini.

It has Phi-3's architecture (``Phi3ForCausalLM``: ``qkv_proj``, ``o_proj``, ``gate_up_proj``,
``down_proj``), Phi-3's special tokens and chat template, random weights and a small byte-level
BPE tokenizer trained on a fixed built-in text. The same seed gives the same files, so it
exercises the real loading, LoRA, training, generation and saving code without a download.

    yoda-make-tiny-model build/tiny-phi3
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from yoda_step_io import outputs_in_place, setup_logging

logger = logging.getLogger(__name__)

#: Phi-3-mini-4k-instruct's chat template (system, user and assistant turns).
PHI3_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + '<|end|>\n' }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + '<|end|>\n' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
UNK, BOS, EOS = "<unk>", "<s>", "<|endoftext|>"
CHAT_TOKENS = ["<|assistant|>", "<|end|>", "<|system|>", "<|user|>"]

#: Training text for the tokenizer's merges: fixed, so the vocabulary is reproducible.
_CORPUS = """
The Force is strong with you. Strong with you, the Force is. Yes, hrrrm.
Patience you must have, my young learner. Much to learn, you still have.
The old lantern hung beside the kitchen door, and the cat slept in the sun.
We walked along the river at dawn; the wind swept across the empty field.
Do or do not, there is no try. Fear leads to anger, anger leads to hate.
A small boat drifted toward the rocky shore while the children laughed.
She painted the fence, he fixed the chair, they packed apples and bread.
""".strip()


def build_tokenizer(vocab_size: int = 512) -> object:
    """A fast byte-level BPE tokenizer with Phi-3's special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[UNK, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS.splitlines(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=EOS,  # as in Phi-3: the pad token is the end-of-text token
        additional_special_tokens=CHAT_TOKENS,
        model_max_length=4096,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = PHI3_CHAT_TEMPLATE
    return fast


def make_tiny_model(
    output_dir: Path,
    *,
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int = 128,
) -> Path:
    """Write a tiny ``Phi3ForCausalLM`` and its tokenizer to ``output_dir`` (replaced if present).

    Returns:
        ``output_dir``.
    """
    import torch
    from transformers import GenerationConfig, Phi3Config, Phi3ForCausalLM

    tokenizer = build_tokenizer()
    vocab = len(tokenizer)  # type: ignore[arg-type]
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in [BOS, EOS, *CHAT_TOKENS]}  # type: ignore[attr-defined]
    config = Phi3Config(
        vocab_size=vocab,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=4096,
        original_max_position_embeddings=4096,
        bos_token_id=ids[BOS],
        eos_token_id=ids[EOS],
        pad_token_id=ids[EOS],
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Phi3ForCausalLM(config)
    # Like Phi-3-mini's generation config: stop at end-of-text, at <|end|> and at <|assistant|>.
    model.generation_config = GenerationConfig(
        bos_token_id=ids[BOS],
        eos_token_id=[ids[EOS], ids["<|end|>"], ids["<|assistant|>"]],
        pad_token_id=ids[EOS],
    )
    with outputs_in_place(output_dir):
        model.save_pretrained(output_dir, safe_serialization=True)
        tokenizer.save_pretrained(output_dir)  # type: ignore[attr-defined]
    parameters = sum(p.numel() for p in model.parameters())
    logger.info("wrote tiny Phi-3 (%d parameters, vocab %d) to %s", parameters, vocab, output_dir)
    return output_dir


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="yoda-make-tiny-model", description=__doc__)
    parser.add_argument("output_dir", type=Path, nargs="?", default=Path("build/tiny-phi3"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    setup_logging()
    make_tiny_model(args.output_dir, seed=args.seed)


if __name__ == "__main__":
    main()
