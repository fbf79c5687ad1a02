"""Tiny models, generated locally: the offline stand-ins for Phi-3-mini and for Llama-style
chat models.

The Phi-3 one has Phi-3's architecture (``Phi3ForCausalLM``: ``qkv_proj``, ``o_proj``,
``gate_up_proj``, ``down_proj``), special tokens and chat template; the Llama one
(``--family llama``) has Llama's architecture (``q_proj`` … ``down_proj``) and a ChatML template
(``<|im_start|>`` / ``<|im_end|>``), with no unknown and no pad token, as Llama 3's tokenizers.
Both have random weights and a small byte-level BPE tokenizer trained on a fixed built-in text.
The same seed gives the same files, so they exercise the real loading, LoRA, training,
generation and saving code without a download.

    yoda-make-tiny-model build/tiny-phi3
    yoda-make-tiny-model --family llama build/tiny-llama
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
#: ChatML, as SmolLM2 and Qwen2.5 write it (without their default system prompts).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
FAMILIES = ("phi3", "llama")

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


def build_tokenizer(vocab_size: int = 512, family: str = "phi3") -> object:
    """A fast byte-level BPE tokenizer with the family's special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    phi3 = family == "phi3"
    specials = [UNK, BOS, EOS] if phi3 else [EOS, IM_START, IM_END]
    tokenizer = Tokenizer(models.BPE(unk_token=UNK if phi3 else None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS.splitlines(), trainer=trainer)
    if phi3:
        names = {"unk_token": UNK, "bos_token": BOS, "eos_token": EOS,
                 "pad_token": EOS,  # as in Phi-3: the pad token is the end-of-text token
                 "additional_special_tokens": CHAT_TOKENS}  # fmt: skip
    else:  # as Llama 3: no unknown token, no pad token; the end of a turn ends the sequence
        names = {"bos_token": IM_START, "eos_token": IM_END}
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        model_max_length=4096,
        clean_up_tokenization_spaces=False,
        **names,
    )
    fast.chat_template = PHI3_CHAT_TEMPLATE if phi3 else CHATML_TEMPLATE
    return fast


def _llama(vocab: int, ids: dict[str, int], size: dict[str, int]) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab, max_position_embeddings=4096,
                         bos_token_id=ids[IM_START], eos_token_id=ids[IM_END],
                         tie_word_embeddings=True, **size)  # fmt: skip
    return LlamaForCausalLM(config)


def make_tiny_model(
    output_dir: Path,
    *,
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int = 128,
    family: str = "phi3",
) -> Path:
    """Write a tiny model of ``family`` (``phi3``: ``Phi3ForCausalLM``; ``llama``:
    ``LlamaForCausalLM`` with ChatML) and its tokenizer to ``output_dir`` (replaced if present).

    Returns:
        ``output_dir``.
    """
    import torch
    from transformers import GenerationConfig, Phi3Config, Phi3ForCausalLM

    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
    tokenizer = build_tokenizer(family=family)
    vocab = len(tokenizer)  # type: ignore[arg-type]
    names = [BOS, EOS, *CHAT_TOKENS] if family == "phi3" else [EOS, IM_START, IM_END]
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in names}  # type: ignore[attr-defined]
    size = {"hidden_size": hidden_size, "intermediate_size": intermediate_size,
            "num_hidden_layers": num_layers, "num_attention_heads": num_heads,
            "num_key_value_heads": num_heads}  # fmt: skip
    torch.manual_seed(seed)
    if family == "llama":
        model = _llama(vocab, ids, size)
        model.generation_config = GenerationConfig(
            bos_token_id=ids[IM_START], eos_token_id=ids[IM_END]
        )
    else:
        config = Phi3Config(
            vocab_size=vocab,
            max_position_embeddings=4096,
            original_max_position_embeddings=4096,
            bos_token_id=ids[BOS],
            eos_token_id=ids[EOS],
            pad_token_id=ids[EOS],
            tie_word_embeddings=False,
            **size,
        )
        model = Phi3ForCausalLM(config)
        # Like Phi-3-mini's generation config: stop at end-of-text, <|end|> and <|assistant|>.
        model.generation_config = GenerationConfig(
            bos_token_id=ids[BOS],
            eos_token_id=[ids[EOS], ids["<|end|>"], ids["<|assistant|>"]],
            pad_token_id=ids[EOS],
        )
    with outputs_in_place(output_dir, owner="yoda-make-tiny-model"):
        model.save_pretrained(output_dir, safe_serialization=True)
        tokenizer.save_pretrained(output_dir)  # type: ignore[attr-defined]
    parameters = sum(p.numel() for p in model.parameters())
    logger.info("wrote tiny %s (%d parameters, vocab %d) to %s", family, parameters, vocab,
                output_dir)  # fmt: skip
    return output_dir


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="yoda-make-tiny-model", description=__doc__)
    parser.add_argument("output_dir", type=Path, nargs="?", default=Path("build/tiny-phi3"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--family", choices=FAMILIES, default="phi3")
    args = parser.parse_args(argv)
    setup_logging()
    make_tiny_model(args.output_dir, seed=args.seed, family=args.family)


if __name__ == "__main__":
    main()
