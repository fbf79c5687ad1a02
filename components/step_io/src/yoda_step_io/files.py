"""Outputs written in place, owned and removed on failure: safe on Cloud Storage FUSE, and safe
for whatever already lies where an output should go.

On Vertex AI every artifact path lies on a Cloud Storage FUSE (gcsfuse) mount. There a non-empty
directory cannot be renamed (gcsfuse's ``rename-dir-limit`` is 0 by default on flat buckets) and
a rename from another file system fails with ``EXDEV``, while a new object becomes visible only
once its file is closed. So a step never stages a directory and renames it into place: it writes
each output at its final path inside :func:`outputs_in_place`, which removes what it wrote when
the block fails. The ExecutorOutput, written last, is the commit point that tells KFP the
outputs are complete. The one rename left is :func:`write_text_atomic`'s: a single file within
its own folder, which gcsfuse supports (copy + delete).

A step deletes only what it wrote. Before it writes an output ``X`` it writes the owner mark
``.X.yoda-output`` beside it, naming the step. A retry (KFP's runners reuse the output paths, and
a killed attempt cannot clean up) finds its own mark and replaces its earlier, maybe partial,
output; anything else already at ``X`` is refused before any work (:func:`check_outputs`), and so
are outputs that overlap an input and folders such as ``.``, ``/`` or a home folder.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from yoda_step_io.cli import StepError

#: What marks an output as written by a step, beside it: ``.{name}{MARK_SUFFIX}``.
MARK_SUFFIX = ".yoda-output"
#: Owner of the shared model caches, whichever step fills them.
CACHE_OWNER = "yoda-model-cache"


def step_owner() -> str:
    """The name a step's outputs are marked with: its console script (``yoda-fine-tuning``), the
    same for ``python -m yoda_fine_tuning``; else this program's name."""
    program = Path(sys.argv[0])
    if program.name == "__main__.py":
        return program.parent.name.replace("_", "-")
    return program.name or "python"


def owner_mark(path: Path) -> Path:
    """The owner mark of output ``path``: a hidden file beside it."""
    return path.with_name(f".{path.name}{MARK_SUFFIX}")


def owned_by(path: Path) -> str | None:
    """The step that marked ``path`` as its output, or ``None``."""
    mark = owner_mark(path)
    if not mark.is_file():
        return None
    try:
        return mark.read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def remove_path(path: Path) -> None:
    """Remove a file, a symlink or a whole directory; nothing if it does not exist."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


def _protected(resolved: Path) -> str | None:
    """Why ``resolved`` may never be an output (or a checkpoint folder), or ``None``."""
    mount = Path(os.environ.get("YODA_GCS_MOUNT", "/gcs")).resolve()
    cwd = Path.cwd().resolve()
    if resolved == Path.home().resolve() or resolved.parent == Path("/home"):
        return "a home folder"
    if len(resolved.parts) <= 2:
        return "a top-level folder"
    if resolved == cwd or resolved in cwd.parents:
        return "the working folder or one above it"
    if resolved == mount or resolved.parent == mount:
        return "the Cloud Storage mount or a whole bucket"
    return None


def _overlap(resolved: Path, inputs: Iterable[Path]) -> Path | None:
    for source in inputs:
        other = Path(source).resolve()
        if resolved == other or other in resolved.parents or resolved in other.parents:
            return Path(source)
    return None


def check_location(path: Path, *, inputs: Iterable[Path] = ()) -> None:
    """Refuse a place a step may never write to or remove: ``.``, ``/``, a top-level or home
    folder, the working folder or one above it, the ``/gcs`` mount or a bucket root; a path
    that is, holds or lies inside an input; a path whose parent is a file.

    Raises:
        StepError: one line naming the path and why.
    """
    path = Path(path)
    resolved = path.resolve()
    why = _protected(resolved)
    if why or path.name in ("", ".", ".."):
        raise StepError(f"output {path} is {why or 'not a file or folder name'}: give a path of "
                        "its own, e.g. out/model")  # fmt: skip
    source = _overlap(resolved, inputs)
    if source is not None:
        raise StepError(f"output {path} overlaps the input {source}: an output must not be, hold "
                        "or lie inside an input; give another path")  # fmt: skip
    for parent in resolved.parents:
        if parent.exists() and not parent.is_dir():
            raise StepError(f"output {path}: its parent {parent} is a file, not a folder")


def check_output_path(path: Path, *, inputs: Iterable[Path] = (), owner: str | None = None) -> None:
    """Refuse an output path that would destroy what the step did not write: one that
    :func:`check_location` refuses, or an existing path that is not empty and not marked as
    this step's output.

    Raises:
        StepError: one line naming the path and why.
    """
    path = Path(path)
    check_location(path, inputs=inputs)
    exists = path.exists() or path.is_symlink()
    mine = owned_by(path) == (owner or step_owner())
    if exists and not mine and not _is_empty_dir(path):
        marked = owned_by(path)
        whose = f"the output of {marked}" if marked else "not written by this step"
        raise StepError(f"output {path} already exists and is {whose}: it is left as it is; "
                        "remove it yourself or choose another path")  # fmt: skip


def local_inputs(*values: str | Path | None) -> list[Path]:
    """The inputs among ``values`` that are existing local paths (not URIs, hub ids or unset):
    what an output must not overlap."""
    paths = [Path(v) for v in values if v and "://" not in str(v)]
    return [path for path in paths if path.exists()]


def check_outputs(*outputs: Path, inputs: Iterable[Path] = (), owner: str | None = None) -> None:
    """Before any heavy work: each output passes :func:`check_output_path` (no two outputs
    overlap either), and a probe file is written and removed beside it.

    Vertex AI and KFP's local ``DockerRunner`` mount the artifact folders with owners the image
    does not choose (the runner's bind mounts belong to root): a step that cannot write there
    should say so at once, not after training.

    Raises:
        StepError: an output that is refused, or an output folder that cannot be written.
    """
    sources = [Path(source) for source in inputs]
    for number, output in enumerate(outputs):
        try:
            check_output_path(output, inputs=sources, owner=owner)
        except PermissionError as error:  # a folder on the way this uid may not even look into
            raise _unwritable(Path(output).parent, error) from error
        other = _overlap(Path(output).resolve(), outputs[number + 1 :])
        if other is not None:
            raise StepError(f"outputs {output} and {other} overlap: give each its own path")
    for folder in dict.fromkeys(Path(output).parent for output in outputs):
        probe = folder / f".write-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise _unwritable(folder, error) from error


def _unwritable(folder: Path, error: OSError) -> StepError:
    uid = os.getuid()
    return StepError(
        f"cannot write to the output folder {folder} as uid {uid} "
        f"({error.strerror or error}): run the step's image as root (its default, like "
        f"Google's Vertex AI images) or make {folder} writable for uid {uid}"
    )


@contextmanager
def outputs_in_place(
    *finals: Path, inputs: Iterable[Path] = (), owner: str | None = None
) -> Iterator[tuple[Path, ...]]:
    """Yield the final paths for the block to write (files or directories) in place.

    Each path is checked (:func:`check_output_path`), then marked as the step's own before the
    block runs; a path the step marked earlier (a retry) is replaced, an empty folder is taken
    over. If the block raises, or leaves an output unwritten, exactly what the step wrote is
    removed again (an empty folder that was there is left as it was), so a failed step leaves no
    half-written output behind. The marks stay with finished outputs: a rerun may replace them.
    """
    paths = tuple(Path(final) for final in finals)
    sources = [Path(source) for source in inputs]
    name = owner or step_owner()
    for path in paths:
        check_output_path(path, inputs=sources, owner=name)
    empty_before = {path for path in paths if _is_empty_dir(path)}
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_path(path)  # a retry's own earlier output, or an empty folder
        owner_mark(path).write_text(f"{name}\n", encoding="utf-8")  # first: a kill leaves it
    try:
        yield paths
        missing = [str(path) for path in paths if not path.exists()]
        if missing:
            raise FileNotFoundError(f"step did not write its output(s) {', '.join(missing)}")
    except BaseException:
        for path in paths:
            remove_path(path)
            owner_mark(path).unlink(missing_ok=True)
            if path in empty_before:
                path.mkdir()
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` so readers never see a partial file.

    The text goes to a hidden file in the same folder, renamed over ``path``: a single-file
    rename within one folder, which works on Cloud Storage FUSE too.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        staging.write_text(text, encoding="utf-8")
        staging.replace(path)
    finally:
        staging.unlink(missing_ok=True)
