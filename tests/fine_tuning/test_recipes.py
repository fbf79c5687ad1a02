"""The GPU path as far as a CPU machine can check it: `make bench-gpu`'s recipes
(``recipes.py``), each a valid run of the real step, and its refusal without CUDA; the
Phi-3-mini architecture it measures; the merged-adapter inference mode; the real model through
`make run-local BASE_MODEL=…`; and the 4-bit path on Phi-3-mini's architecture (GPU only)."""

from __future__ import annotations

import csv
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from yoda_devmodels.phi3_mini import PHI3_MINI, parameter_count, phi3_mini_config

from yoda_fine_tuning.configs import build_sft_config, plan_run
from yoda_fine_tuning.hyperparams import HyperParameters
from yoda_fine_tuning.recipes import RECIPES
from yoda_inference.predict import GenerationParameters, predict_test_set
from yoda_pipeline.offline import offline_settings
from yoda_pipeline.settings import PipelineSettings
from yoda_step_io import StepError

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_bench_gpu_stops_at_once_without_cuda(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["bench_gpu.py"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO_ROOT / "benchmarks" / "bench_gpu.py"), run_name="__main__")
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: make bench-gpu ") and "needs a CUDA GPU" in line


def test_the_architecture_is_phi3_minis() -> None:
    config = phi3_mini_config()
    shapes = (config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
              config.intermediate_size, config.vocab_size,
              config.max_position_embeddings)  # fmt: skip
    assert shapes == (3072, 32, 32, 8192, 32064, 4096)
    assert 3.8e9 < parameter_count() < 3.9e9, "Phi-3-mini has 3.82 billion parameters"
    assert PHI3_MINI["eos_token_id"] == 32000


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_is_a_valid_run_of_the_real_step(name: str, tmp_path: Path) -> None:
    recipe = RECIPES[name]
    recipe.validate()
    plan = plan_run(recipe, cuda_available=True)
    config = build_sft_config(recipe, plan, tmp_path / "out", tmp_path / "logs")
    assert config.gradient_checkpointing is recipe.gradient_checkpointing
    assert config.per_device_train_batch_size == recipe.per_device_train_batch_size
    assert recipe.tokens_per_step() == recipe.per_device_train_batch_size * recipe.max_seq_length


def test_the_article_and_the_default_differ_only_in_compute_dtype() -> None:
    article, default = RECIPES["article"], RECIPES["default"]
    assert (article.compute_dtype, default.compute_dtype) == ("float32", "float16")
    assert default == HyperParameters()


def test_merged_adapter_answers_like_the_unmerged_one(
    tuned_model_dir: Path, sample_test_jsonl: Path, tmp_path: Path
) -> None:
    answers = {}
    for merge in (False, True):
        result = predict_test_set(tuned_model_dir, sample_test_jsonl, tmp_path / f"p{merge}",
                                  quantization="none", merge=merge,
                                  params=GenerationParameters(max_new_tokens=8))  # fmt: skip
        assert result.metadata["adapter"] == ("merged" if merge else "on")
        with (tmp_path / f"p{merge}").open(newline="", encoding="utf-8") as handle:
            answers[merge] = [row["extracted_response"] for row in csv.DictReader(handle)]
    assert answers[True] == answers[False]


def test_merging_into_a_4bit_base_is_refused_before_loading() -> None:
    from yoda_inference.model import check_mergeable

    with pytest.raises(StepError, match=r"4-bit base.*--quantization none"):
        check_mergeable(four_bit=True)
    check_mergeable(four_bit=False)


def test_run_local_with_the_real_model_lets_the_offline_defaults_step_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YODA_TINY_MODEL_DIR", str(tmp_path / "never-made"))
    settings = offline_settings(PipelineSettings(base_model="microsoft/Phi-3-mini-4k-instruct"))
    assert settings.base_model == "microsoft/Phi-3-mini-4k-instruct"
    assert settings.quantization == "auto", "4-bit where CUDA is, full precision elsewhere"
    assert not (tmp_path / "never-made").exists(), "no tiny model generated"
    command = ["make", "-n", "run-local", "BASE_MODEL=microsoft/Phi-3-mini-4k-instruct"]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    assert '--set "base_model=$YODA_MAKE_BASE_MODEL"' in done.stdout  # the value: verbatim


@pytest.mark.gpu
def test_4bit_train_save_reload_generate_on_phi3_minis_architecture(
    tmp_path: Path, tiny_model_dir: Path, sample_train_jsonl: Path, sample_test_jsonl: Path
) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from yoda_devmodels.phi3_mini import make_random_phi3_mini

    from yoda_fine_tuning.train import fine_tune

    base = make_random_phi3_mini(tmp_path / "phi3-mini", tiny_model_dir)
    hp = HyperParameters(quantization="4bit", max_steps=2, logging_steps=1)
    result = fine_tune(sample_train_jsonl, tmp_path / "model", tmp_path / "metrics",
                       base_model=str(base), hp=hp)  # fmt: skip
    assert result.model_metadata["quantized_4bit"] is True
    assert any(p.__class__.__name__ == "Params4bit" for p in result.model.parameters())
    del result
    params = GenerationParameters(max_new_tokens=4)
    predicted = predict_test_set(tmp_path / "model", sample_test_jsonl, tmp_path / "p.csv",
                                 quantization="4bit", params=params)  # fmt: skip
    assert predicted.rows == 5 and predicted.metadata["generated_tokens"] > 0
