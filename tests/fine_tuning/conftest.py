"""Fine-tuning's own fixtures: a broken base, a tiny model of another architecture."""

from __future__ import annotations

from pathlib import Path

import pytest


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
