"""Step 3 of the Yoda pipeline: predictions on the test set with the fine-tuned adapter."""

from yoda_inference.generation import (
    build_prompt,
    extract_response,
    generate_batch,
    generate_response,
)
from yoda_inference.model import download_model

__all__ = [
    "build_prompt",
    "download_model",
    "extract_response",
    "generate_batch",
    "generate_response",
]
