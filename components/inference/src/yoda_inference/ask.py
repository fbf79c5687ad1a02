"""``yoda-predict``: the user's quick check. Download a run's model and answer a few sentences.

    yoda-predict gs://BUCKET/…/fine-tuning-component_…/model "The Force is strong with you."
    yoda-predict local_runs/run-…/outputs/…/fine-tuning-component/model "I like green tea." \
        --quantization auto
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from yoda_inference.generation import build_prompt, generate
from yoda_inference.model import load_for_answers
from yoda_step_io import StepError, run_step, setup_logging
from yoda_step_io.models import model_cache_dir

#: How an empty answer is shown (the model ended its turn at once): not as blank lines.
EMPTY_ANSWER = "(empty answer: the model ended its turn at once)"


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
    model, tokenizer = load_for_answers(model_uri, quantization, cache_dir)
    prompts = [build_prompt(tokenizer, sentence) for sentence in sentences]
    return generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens).answers


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
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=model_cache_dir(),
        help="the folder a gs:// model is downloaded into once, then reused (default: "
        "%(default)s: $YODA_MODEL_CACHE, else yoda-phi3/models under $XDG_CACHE_HOME or ~/.cache)",
    )
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
