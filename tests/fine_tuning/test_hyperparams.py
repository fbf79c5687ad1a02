"""The fine-tuning hyper-parameters (``hyperparams.py``): the article's recipe as defaults, each
bad value named by its flag, and their records as JSON and as numbers."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from yoda_fine_tuning.architecture import DEFAULT_TARGETS
from yoda_fine_tuning.hyperparams import OPTIMIZERS, HyperParameters
from yoda_step_io import BadValueError


def test_defaults_are_the_articles_recipe() -> None:
    hp = HyperParameters()
    assert (hp.lora_r, hp.lora_alpha, hp.lora_dropout) == (8, 16, 0.05)
    assert hp.lora_target_modules == ("auto",)  # on Phi-3, the article's four (architecture.py)
    assert DEFAULT_TARGETS["phi3"] == ("o_proj", "qkv_proj", "gate_up_proj", "down_proj")
    assert (hp.per_device_train_batch_size, hp.max_seq_length, hp.num_train_epochs) == (16, 64, 10)
    assert (hp.learning_rate, hp.optim, hp.logging_steps) == (3e-4, "paged_adamw_8bit", 10)
    assert hp.packing and hp.gradient_checkpointing and hp.auto_find_batch_size
    assert (hp.quantization, hp.compute_dtype) == ("4bit", "float16")


@pytest.mark.parametrize(
    ("changes", "flag"),
    [
        ({"lora_r": 0}, "--lora-r"),
        ({"lora_alpha": -4}, "--lora-alpha"),
        ({"learning_rate": 0.0}, "--learning-rate"),
        ({"learning_rate": -1e-4}, "--learning-rate"),
        ({"num_train_epochs": 0}, "--num-train-epochs"),
        ({"lora_dropout": 1.0}, "--lora-dropout"),
        ({"validation_fraction": 0.0}, "--validation-fraction"),
        ({"validation_fraction": 1.0}, "--validation-fraction"),
        ({"lora_target_modules": ("auto", "o_proj")}, "--lora-target-modules"),
        ({"lora_target_modules": ("q-proj",)}, "--lora-target-modules"),
        ({"lora_target_modules": ()}, "--lora-target-modules"),
        ({"quantization": "8bit"}, "--quantization"),
        ({"compute_dtype": "int8"}, "--compute-dtype"),
        ({"training_seed": -5}, "--training-seed"),
        ({"training_seed": 2**32}, "--training-seed"),
        ({"max_steps": 0}, "--max-steps"),
        ({"max_steps": 10**12}, "--max-steps"),
        ({"max_steps": 1_000_000}, "--max-steps"),  # in range, but 1e9 tokens with 16 x 64
        ({"optim": "evil_optim"}, "--optim"),
        ({"per_device_train_batch_size": 10**6}, "--per-device-train-batch-size"),
    ],
)
def test_invalid_hyperparameters_name_their_flag(changes: dict[str, Any], flag: str) -> None:
    with pytest.raises(BadValueError) as error:
        dataclasses.replace(HyperParameters(), **changes).validate()
    assert error.value.flag == flag
    assert str(error.value).startswith(flag)


def test_the_optimizers_are_transformers_own() -> None:
    from transformers.training_args import OptimizerNames

    assert set(OPTIMIZERS) <= {name.value for name in OptimizerNames}


def test_hyperparameters_as_dict_is_json() -> None:
    values = json.loads(json.dumps(HyperParameters().as_dict()))
    assert values["lora_target_modules"] == "auto"
    assert HyperParameters().numeric()["hp_lora_r"] == 8.0
