"""Fine-tuning's own fixtures: one short real run, a broken base, a tiny model of another
architecture."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from yoda_fine_tuning.hyperparams import HyperParameters
    from yoda_fine_tuning.train import FineTuneResult


@pytest.fixture(scope="session")
def quick_hp() -> HyperParameters:
    """A short CPU recipe: 4 steps, a log every 2, a high learning rate."""
    from yoda_fine_tuning.hyperparams import HyperParameters

    return HyperParameters(
        quantization="auto", max_steps=4, logging_steps=2, learning_rate=1e-2, num_train_epochs=1
    )


@pytest.fixture(scope="session")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_model_dir: Path,
    sample_train_jsonl: Path,
    quick_hp: HyperParameters,
) -> tuple[FineTuneResult, Path]:
    """A :func:`~yoda_fine_tuning.train.fine_tune` run of ``quick_hp`` on the tiny model: its
    result, and the folder holding its ``model`` and ``metrics`` outputs."""
    from yoda_fine_tuning.train import fine_tune

    out = tmp_path_factory.mktemp("fine-tuned")
    result = fine_tune(sample_train_jsonl, out / "model", out / "metrics",
                       base_model=str(tiny_model_dir), hp=quick_hp)  # fmt: skip
    return result, out


@pytest.fixture(scope="session")
def nan_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """The tiny model with a non-finite final norm: a broken base, whose training loss is NaN
    from the first step (what a far too high learning rate does to a real run)."""
    import shutil

    from safetensors.torch import load_file, save_file

    folder = tmp_path_factory.mktemp("models") / "nan-phi3"
    shutil.copytree(tiny_model_dir, folder)
    weights = load_file(folder / "model.safetensors")
    weights["model.norm.weight"].fill_(float("nan"))
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama-architecture model with a ChatML template and no unk or pad token."""
    from yoda_devmodels.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama", family="llama")
