"""The step's own checkpoint folder: made and marked by the step, removed only with its mark;
and a resume that unpickles nothing but tensors and the RNG state's plain types.

``--checkpoint-dir`` names where checkpoints may go, not a folder to take over: the step writes
them into a subfolder of its own (beside the Model output by default), marks it with
:data:`CHECKPOINT_MARK`, and removes that subfolder alone, and only where the mark is, once the
run finished or diverged. A killed run leaves it for its retry to resume from.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from yoda_step_io import StepError
from yoda_step_io.files import check_location

logger = logging.getLogger(__name__)

#: The mark inside a checkpoint folder that this step made (and so may remove).
CHECKPOINT_MARK = ".yoda-checkpoints"


def checkpoint_folder_for(model_output: Path, checkpoint_dir: Path | None) -> Path:
    """The step's own checkpoint folder: ``<model>-checkpoints`` beside the Model output, or a
    subfolder of ``checkpoint_dir`` named after the Model output (the same on a retry, which
    reuses the output paths; another run's outputs get another subfolder)."""
    if checkpoint_dir is None:
        return model_output.with_name(f"{model_output.name}-checkpoints")
    digest = hashlib.sha256(str(model_output.resolve()).encode()).hexdigest()[:12]
    return checkpoint_dir / f"yoda-checkpoints-{digest}"


def claim_checkpoint_folder(folder: Path, outputs: tuple[Path, ...]) -> Path:
    """Make and mark ``folder`` (or take the one this step marked before: a retry resumes).

    Raises:
        StepError: ``folder`` overlaps an output, is a protected folder (``/``, a bucket
            root, …), or exists without the mark (somebody else's files).
    """
    check_location(folder, inputs=outputs)
    if folder.exists() and not (folder / CHECKPOINT_MARK).is_file():
        raise StepError(
            f"checkpoint folder {folder} exists and was not made by this step (no "
            f"{CHECKPOINT_MARK} mark): it is left as it is; remove it or pick another "
            "--checkpoint-dir"
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CHECKPOINT_MARK).write_text("yoda-fine-tuning checkpoints\n", encoding="utf-8")
    return folder


def release_checkpoint_folder(folder: Path) -> None:
    """Remove the step's checkpoint folder, only where its mark says the step made it."""
    if (folder / CHECKPOINT_MARK).is_file():
        shutil.rmtree(folder, ignore_errors=True)
    elif folder.exists():
        logger.warning("left %s in place: it has no %s mark", folder, CHECKPOINT_MARK)


def last_complete_checkpoint(folder: Path, world_size: int = 1) -> str | None:
    """The newest ``checkpoint-N`` that was written to the end, to resume from.

    The Trainer writes ``trainer_state.json`` last: a task killed while saving (a preempted GPU)
    leaves a newer folder without it, which transformers' own ``get_last_checkpoint`` would pick
    and fail to load. With several ranks, rank 0 writes it while the others may still be writing
    their RNG state (``rng_state_R.pth``): a checkpoint lacking one is not complete either.
    """
    if not folder.is_dir():
        return None
    rng_states = [f"rng_state_{rank}.pth" for rank in range(world_size)] if world_size > 1 else []
    steps = [
        (int(path.name.removeprefix("checkpoint-")), path)
        for path in folder.glob("checkpoint-*")
        if path.name.removeprefix("checkpoint-").isdigit()
        and (path / "trainer_state.json").is_file()
        and all((path / name).is_file() for name in rng_states)
    ]
    return str(max(steps)[1]) if steps else None


@contextmanager
def weights_only_resume() -> Iterator[None]:
    """Resume with ``torch.load``'s weights-only unpickler (torch's default since 2.6): tensors
    and plain containers, plus the numpy types of the Trainer's saved RNG state, allow-listed
    here. A pickled object of any other kind in a checkpoint is refused, never run.
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``, which would turn full unpickling back on, is unset.

    A CPU rank's Trainer loads onto its device ``cpu:N``, which torch 2.8 cannot restore
    storages to: such loads go to ``cpu``, the same memory.
    """
    import numpy as np
    import torch

    if os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None) is not None:
        logger.warning("unset TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD: checkpoints load weights-only")
    rng_state_types = [
        np._core.multiarray._reconstruct,  # type: ignore[attr-defined]
        np.ndarray,
        np.dtype,
        type(np.dtype(np.uint32)),
    ]
    load = torch.load

    def load_on_cpu(*args: Any, **kwargs: Any) -> Any:
        if str(kwargs.get("map_location")).startswith("cpu:"):
            kwargs["map_location"] = "cpu"
        return load(*args, **kwargs)

    torch.load = load_on_cpu
    try:
        with torch.serialization.safe_globals(rng_state_types):
            yield
    except Exception as error:
        if "Weights only load failed" not in str(error):
            raise
        raise StepError(
            "a checkpoint holds pickled objects that are not tensors or RNG state, refused "
            "(weights-only loading): remove the checkpoint folder to start afresh"
        ) from error
    finally:
        torch.load = load
