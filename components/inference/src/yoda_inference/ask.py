"""``yoda-predict``: the user's quick check. Download a run's model and answer a few sentences.

    yoda-predict gs://BUCKET/…/fine-tuning-component_…/model "The Force is strong with you."
    yoda-predict local_runs/run-…/outputs/…/fine-tuning-component/model "I like green tea." \
        --quantization auto
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Sequence
from pathlib import Path

from yoda_inference.generation import build_prompt, extract_response, generate_batch
from yoda_inference.model import adapter_base_model, download_model, load_finetuned, use_4bit
from yoda_step_io import StepError, run_step, setup_logging

#: How an empty answer is shown (the model ended its turn at once): not as blank lines.
EMPTY_ANSWER = "(empty answer: the model ended its turn at once)"


def local_copy(model_uri: str, cache_dir: Path) -> Path:
    """A local directory holding the model: the path itself, or a cached download of gs://."""
    if not model_uri.startswith("gs://"):
        return Path(model_uri)
    target = cache_dir / hashlib.sha256(model_uri.encode()).hexdigest()[:16]
    if not (target / "adapter_config.json").is_file():
        download_model(model_uri, target)
    return target


def answer(
    model_uri: str,
    sentences: Sequence[str],
    *,
    quantization: str,
    max_new_tokens: int,
    cache_dir: Path,
) -> list[str]:
    """The model's (extracted) answer to each sentence."""
    if not sentences or not all(s.strip() for s in sentences):
        raise StepError("give at least one non-empty sentence to answer")
    import torch

    four_bit = use_4bit(quantization, torch.cuda.is_available())
    model_dir = local_copy(model_uri, cache_dir)
    base = adapter_base_model(model_dir)
    model, tokenizer = load_finetuned(model_dir, base, four_bit=four_bit, compute_dtype="float16")
    prompts = [build_prompt(tokenizer, sentence) for sentence in sentences]
    outputs, _ = generate_batch(model, tokenizer, prompts, max_new_tokens=max_new_tokens)
    return [extract_response(output) for output in outputs]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="yoda-predict",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model_uri", help="the Model artifact: gs://… or a local directory")
    parser.add_argument("sentences", nargs="+", help="sentences to answer")
    parser.add_argument("--quantization", default="auto", help="4bit, auto or none")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--cache-dir", type=Path, default=Path("build/models"))
    args = parser.parse_args(argv)
    setup_logging()

    def step() -> None:
        answers = answer(
            args.model_uri,
            args.sentences,
            quantization=args.quantization,
            max_new_tokens=args.max_new_tokens,
            cache_dir=args.cache_dir,
        )
        for sentence, reply in zip(args.sentences, answers, strict=True):
            print(f"> {sentence}\n{reply or EMPTY_ANSWER}\n")

    run_step(step)


if __name__ == "__main__":
    main()
