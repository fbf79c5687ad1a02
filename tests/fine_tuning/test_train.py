"""A real (short) CPU fine-tuning run (``train.py``'s ``fine_tune``) on the tiny Phi-3 model: the
LoRA weights alone train, a seed makes runs alike, bad datasets and bases fail without output,
and QLoRA trains on a GPU. (What the run publishes: test_outputs.py.)"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest

from yoda_fine_tuning.hyperparams import HyperParameters
from yoda_fine_tuning.train import FineTuneResult, fine_tune
from yoda_step_io import StepError


def test_lora_weights_change_and_base_weights_do_not(
    trained: tuple[FineTuneResult, Path], tiny_model_dir: Path
) -> None:
    import torch
    from safetensors.torch import load_file

    result, _ = trained
    base = load_file(str(tiny_model_dir / "model.safetensors"))
    lora_b = {n: p for n, p in result.model.named_parameters() if "lora_B" in n}
    assert lora_b, "no LoRA parameters in the trained model"
    assert all(p.abs().sum() > 0 for p in lora_b.values()), "lora_B starts at 0 and must move"
    checked = 0
    for name, parameter in result.model.named_parameters():
        if "lora_" in name:
            continue
        key = name.removeprefix("base_model.model.").replace(".base_layer", "")
        assert torch.equal(parameter.detach().cpu(), base[key]), f"base weight {key} changed"
        checked += 1
    assert checked == len(base)


def write_lines(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


@pytest.mark.parametrize(
    ("lines", "fragment"),
    [
        ([], "is empty"),
        ([{"text": "hello"}], 'line 1: expected {"messages"'),
        ([{"messages": [{"role": "user", "content": "hi"}]}], "an assistant message"),
        ([{"messages": [{"role": "bot", "content": "hi"}]}], "needs a role"),
        (["not json"], "line 1: not valid JSON"),
        (
            [
                {
                    "messages": [
                        {"role": "user", "content": "a"},
                        {"role": "assistant", "content": "b"},
                    ]
                }
            ],
            "need at least 2",
        ),
    ],
    ids=["empty", "not-messages", "no-assistant", "bad-role", "not-json", "one-row"],
)
def test_bad_datasets_fail_clearly_without_output(
    tmp_path: Path, tiny_model_dir: Path, quick_hp: HyperParameters, lines: list[Any],
    fragment: str,
) -> None:  # fmt: skip
    data = write_lines(tmp_path / "train.jsonl", lines)
    with pytest.raises(StepError) as error:
        fine_tune(data, tmp_path / "model", tmp_path / "metrics",
                  base_model=str(tiny_model_dir), hp=quick_hp)  # fmt: skip
    assert "\n" not in str(error.value) and fragment in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.jsonl"]


def test_missing_base_model_dir(
    tmp_path: Path, sample_train_jsonl: Path, quick_hp: HyperParameters
) -> None:
    with pytest.raises(StepError, match=r"^--base-model '.*/nope': no such folder$"):
        fine_tune(sample_train_jsonl, tmp_path / "model", tmp_path / "metrics",
                  base_model=str(tmp_path / "nope"), hp=quick_hp)  # fmt: skip


@pytest.mark.gpu
def test_qlora_4bit_on_gpu(
    tmp_path: Path, tiny_model_dir: Path, sample_train_jsonl: Path, quick_hp: HyperParameters
) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU: 4-bit quantisation (bitsandbytes) has no CPU path")
    hp = dataclasses.replace(quick_hp, quantization="4bit", optim="paged_adamw_8bit")
    result = fine_tune(sample_train_jsonl, tmp_path / "model", tmp_path / "metrics",
                       base_model=str(tiny_model_dir), hp=hp)  # fmt: skip
    assert result.model_metadata["quantized_4bit"] is True
    assert math.isfinite(result.metrics["train_loss"]) and math.isfinite(
        result.metrics["eval_loss"]
    )
    assert any(p.__class__.__name__ == "Params4bit" for p in result.model.parameters())


def test_the_same_seed_trains_the_same_adapter(
    trained: tuple[FineTuneResult, Path], tmp_path: Path, tiny_model_dir: Path,
    sample_train_jsonl: Path, quick_hp: HyperParameters,
) -> None:  # fmt: skip
    """LoRA's initial weights and trl's packing shuffle are seeded: two runs are alike (and a run
    in the step image equals one on the host, tests/e2e/test_docker_images.py)."""
    first, first_out = trained
    base = str(tiny_model_dir)
    again = fine_tune(
        sample_train_jsonl, tmp_path / "a", tmp_path / "am", base_model=base, hp=quick_hp
    )
    assert again.metrics["train_loss"] == first.metrics["train_loss"]
    weights = "adapter_model.safetensors"
    assert (tmp_path / "a" / weights).read_bytes() == (first_out / "model" / weights).read_bytes()
    reseeded = dataclasses.replace(quick_hp, training_seed=7)
    other = fine_tune(
        sample_train_jsonl, tmp_path / "b", tmp_path / "bm", base_model=base, hp=reseeded
    )
    assert other.metrics["train_loss"] != first.metrics["train_loss"]
