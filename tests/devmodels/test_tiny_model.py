"""The tiny Phi-3 the offline runs and most tests train: generated the same, bytes for bytes, and
speaking Phi-3's chat format."""

from __future__ import annotations

from pathlib import Path


def test_tiny_model_is_deterministic(tmp_path: Path, tiny_model_dir: Path) -> None:
    from yoda_devmodels.tiny_model import make_tiny_model

    again = make_tiny_model(tmp_path / "again")
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (again / name).read_bytes() == (tiny_model_dir / name).read_bytes(), name


def test_tiny_model_has_phi3_tokens_and_template(tiny_model_dir: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert AutoConfig.from_pretrained(tiny_model_dir).model_type == "phi3"
    for token in ("<|user|>", "<|assistant|>", "<|end|>", "<|endoftext|>"):
        assert tokenizer.convert_tokens_to_ids(token) != tokenizer.unk_token_id, token
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt == "<|user|>\nHi<|end|>\n<|assistant|>\n"
