"""The fine-tuning recipes `make bench-gpu` compares, as hyper-parameters of the real step.

``article`` is dvgodoy's recipe as published (float32 compute); ``default`` is this project's
(float16 compute: a T4 has no bfloat16, and float32 is its slow path). The others change one or
two knobs that the figures may justify on a T4: gradient checkpointing off where memory allows, a
larger batch, longer sequences at the same tokens per step, PyTorch's fused AdamW. Every knob is
a pipeline parameter; the defaults move only when measured figures say so.
"""

from __future__ import annotations

import dataclasses

from yoda_fine_tuning.hyperparams import HyperParameters

DEFAULT = HyperParameters()
RECIPES: dict[str, HyperParameters] = {
    "article": dataclasses.replace(DEFAULT, compute_dtype="float32"),
    "default": DEFAULT,
    "no-checkpointing": dataclasses.replace(DEFAULT, gradient_checkpointing=False),
    "batch-32": dataclasses.replace(
        DEFAULT, gradient_checkpointing=False, per_device_train_batch_size=32
    ),
    "seq-128": dataclasses.replace(
        DEFAULT, gradient_checkpointing=False, max_seq_length=128, per_device_train_batch_size=8
    ),
    "fused-adamw": dataclasses.replace(
        DEFAULT, gradient_checkpointing=False, optim="adamw_torch_fused"
    ),
}
